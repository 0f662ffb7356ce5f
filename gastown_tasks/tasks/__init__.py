"""Thin Invoke adapters over gastown_tasks.ops: arguments in, an ops call, output and exit code."""
