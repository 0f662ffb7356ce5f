"""Manage the town's Dolt SQL server (one dolt sql-server for every rig database).

The `dolt` collection: `invoke dolt.<task>` and `gt-dolt <task>` run these same tasks, and a
town's tasks.py can chain them (`@task(pre=[dolt.start])`).
"""

from invoke import Collection

from .config import root_defaults
from .console import logs, sql
from .doctor import doctor
from .lifecycle import install, restart, start, status, stop
from .rigs import init_rig, list_, migrate

__all__ = [
    "init_rig",
    "install",
    "list_",
    "logs",
    "migrate",
    "ns",
    "restart",
    "sql",
    "start",
    "status",
    "stop",
]

ns = Collection(install, start, stop, restart, status, logs, sql, list_, init_rig, migrate, doctor)
ns.configure(root_defaults())
