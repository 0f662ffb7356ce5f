"""Invoke task collections that manage a Gas Town workspace's Dolt SQL server.

    from gastown_tasks import dolt            # the `dolt` Invoke collection module (dolt.start, ...)
    import gastown_tasks; gastown_tasks.add_dolt(ns)

`gastown_tasks.ops` is the same functionality without Invoke.  The Invoke parts are imported
lazily, so `gastown_tasks.ops` and the `gt-dolt` fast path stay free of Invoke.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False  # typing is not imported here: this module runs before gt-dolt's Ctrl-C guard
if TYPE_CHECKING:
    from typing import Any

__all__ = ["__version__", "add_dolt", "dolt", "install"]


def add_dolt(ns: Any, name: str = "dolt") -> None:
    """Add the dolt collection to a root namespace and lift its defaults to the root.

    Invoke gives pre-tasks only the root's config and merges collection config shallowly
    (pyinvoke #736, #782); defaults at the root survive both.  Also makes Invoke's own
    configuration errors (bad YAML, an INVOKE_* value it cannot cast) one line and exit 2 when the
    command line runs one of our tasks (tasks/config.py: guard_host_program); nothing process-wide.
    """
    from .tasks import dolt
    from .tasks.config import guard_host_program, root_defaults

    ns.add_collection(dolt.ns, name)
    ns.configure(root_defaults())
    guard_host_program(ns)


install = add_dolt  # the earlier name, kept so existing tasks.py files keep working


def __getattr__(name: str) -> Any:
    if name == "dolt":
        import importlib

        return importlib.import_module(".tasks.dolt", __name__)
    raise AttributeError(f"module 'gastown_tasks' has no attribute {name!r}")
