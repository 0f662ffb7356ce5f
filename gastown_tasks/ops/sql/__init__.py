"""Talking to the server over the MySQL protocol."""
