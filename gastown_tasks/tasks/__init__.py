"""Thin Invoke adapters: the dolt collection built from the command surface, and onboarding."""
