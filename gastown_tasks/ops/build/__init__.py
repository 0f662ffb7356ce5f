"""The dolt binary: where it is, which Dolt it is, and building the pinned Go tools."""
