"""Dolt's own cluster replication: its configuration, role changes, and fencing."""
