"""Invoke task collections that manage a Gas Town workspace's Dolt SQL server.

    from gastown_tasks import dolt            # the `dolt` Invoke collection module
    import gastown_tasks; gastown_tasks.install(ns)

`gastown_tasks.ops` is the same functionality without Invoke.  The Invoke parts are imported
lazily so that `gastown_tasks.ops` stays free of Invoke.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "dolt", "install"]


def install(ns: Any, name: str = "dolt") -> None:
    """Add the dolt collection to a root namespace and lift its defaults to the root.

    Invoke gives pre-tasks only the root's config and merges collection config shallowly
    (pyinvoke #736, #782); defaults at the root survive both.
    """
    from .tasks import dolt as dolt_tasks
    from .tasks.config import root_defaults

    ns.add_collection(dolt_tasks.ns, name)
    ns.configure(root_defaults())


def __getattr__(name: str) -> Any:
    if name == "dolt":
        from .tasks import dolt as dolt_tasks

        return dolt_tasks
    raise AttributeError(f"module 'gastown_tasks' has no attribute {name!r}")
