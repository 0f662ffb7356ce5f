"""Using a server rather than running it: the `sql` shell, and a server on another host."""
