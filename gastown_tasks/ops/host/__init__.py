"""This machine: which process is which, whether anything listens on a port, which addresses are ours."""
