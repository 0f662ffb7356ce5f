"""Rig databases as a whole: listing, creating, migrating, backing up, onboarding."""
