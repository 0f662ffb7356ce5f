"""Operations on a town's Dolt server: plain Python, no Invoke.

Tasks, the gt-dolt console script, other Python code and tests all call these functions.  The
names below are imported on first use, so `import gastown_tasks.ops.errors` loads nothing else.
Beside the base modules here (errors, settings, town, polling), each subpackage owns one thing, in
layers, lowest first: host; files; build, sql; cluster, beads; server; rigs; doctor; access.  A part
imports only from the layers below it (import-linter contracts in pyproject.toml, run by `invoke lint`).

Imports are kept cheap, because agents run `status` and `list` all day: values are NamedTuples
(defining a dataclass costs 0.5-0.9 ms, a NamedTuple about 0.1 ms, and a command defines about
twenty; only the watcher, an object whose state changes, is a dataclass), and what only some
commands need (the launcher, backups, the cluster) is imported where it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULTS": "settings",
    "DoltSettings": "settings",
    "resolve_settings": "settings",
    "GastownError": "errors",
    "Town": "town",
    "find_town": "town",
    "Rig": "files.datadir",
    "rigs_on_disk": "files.datadir",
    "DOLT_VERSION": "build.binary",
    "find_dolt": "build.binary",
    "StartResult": "server.launch",
    "StopResult": "server.server",
    "start": "server.server",
    "stop": "server.server",
    "restart": "server.server",
    "server_running": "server.server",
    "Status": "server.serverstatus",
    "status": "server.serverstatus",
    "find_running": "server.discovery",
    "settings_for_town": "beads.gtconfig",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gastown_tasks.ops' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
