"""This machine's processes and ports: which process is which, and whether anything listens."""
