"""What beads (`bd`) and Gas Town's `gt` keep in a town, read and written as they do."""
