"""Manage the town's Dolt SQL server (one dolt sql-server for every rig database).

The `dolt` collection: `invoke dolt.<task>` and `gt-dolt <task>` run these same tasks, and a
town's tasks.py can chain them (`@task(pre=[dolt.start])`).
"""

from invoke import Collection

from .config import root_defaults
from .lifecycle import install, restart, start, status, stop

__all__ = ["install", "ns", "restart", "start", "status", "stop"]

ns = Collection(install, start, stop, restart, status)
ns.configure(root_defaults())
