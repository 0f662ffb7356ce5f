"""The one place Invoke configuration is read, defensively (see pyinvoke #736 and #782).

The `dolt` defaults Invoke sees are all None ("use gt-dolt's default"): every key exists, so each
INVOKE_DOLT_* variable works, and no value is ever cast by Invoke (which raises tracebacks on
`INVOKE_DOLT_PORT=abc`); the settings parse every value, once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from invoke import Context
from invoke.exceptions import Exit

from ..commands.runner import Env, run_guarded
from ..ops.settings import DEFAULTS, DoltSettings
from ..ops.town import Town

F = TypeVar("F", bound=Callable[..., Any])
ONBOARD_DEFAULTS = {"rigs": "hq"}


def root_defaults() -> dict[str, Any]:
    # Mappings stay mappings (Invoke merges a file's mapping into them); everything else is None.
    dolt: dict[str, Any] = {key: ({} if isinstance(value, dict) else None) for key, value in DEFAULTS.items()}
    return {"dolt": dolt, "onboard": dict(ONBOARD_DEFAULTS)}


def plain(value: Any) -> Any:
    """Invoke's DataProxy trees as plain dicts (recursively); anything else as it is."""
    items = getattr(value, "items", None)
    if callable(items) and not isinstance(value, str | bytes):
        try:
            return {str(key): plain(val) for key, val in items()}
        except Exception:  # a config object that only looks like a mapping
            return {}
    return value


def env_of(c: Context) -> Env:
    """The trees a command reads: `dolt` (settings) and `onboard` (the onboarding chain)."""
    trees: dict[str, Any] = {}
    for name in ("dolt", "onboard"):
        try:
            trees[name] = plain(c.config.get(name, None))
        except Exception:  # not a mapping at all: the settings say so
            trees[name] = None
    return Env(trees)


def settings_from_context(c: Context, **flags: Any) -> DoltSettings:
    """defaults < Invoke config (files, INVOKE_DOLT_*) < GT_DOLT_* < flags; inside a town, its port
    and log level as gt reads them unless the config or a flag names them (docs/gastown.md)."""
    from ..ops.errors import NotInTown

    env = env_of(c)
    settings: DoltSettings = env.settings(**flags)
    try:
        return env.located(settings, **flags)[1]  # type: ignore[no-any-return]
    except NotInTown:
        return settings


def town_and_settings(c: Context, **flags: Any) -> tuple[Town, DoltSettings]:
    """What almost every task starts with: the settings, then the town they point at."""
    town, settings = env_of(c).town_and_settings(**flags)
    return town, settings


def reports_errors(func: F) -> F:
    """The command boundary for Invoke-only tasks: one message and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        code = run_guarded(lambda: func(*args, **kwargs) or 0)
        if code:
            raise Exit(code=code)

    return wrapper  # type: ignore[return-value]


def config_error_message(exc: BaseException) -> str | None:
    """One line for an error in Invoke's own configuration loading, or None when it is not one."""
    from invoke.exceptions import AmbiguousEnvVar, UncastableEnvVar
    from invoke.util import yaml

    if isinstance(exc, UncastableEnvVar | AmbiguousEnvVar):
        return (
            f"an INVOKE_* variable cannot be applied: {exc}; Invoke cannot put a text variable over a list "
            "or mapping from a config file: write that setting as text in the file (onboard.rigs: "
            '"hq,gastown"), or unset the variable'
        )
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "an Invoke config file"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"invalid YAML in {where}: {problem}; fix the file"
    if type(exc).__module__.startswith("invoke") and isinstance(exc, ValueError | TypeError | KeyError):
        return f"the Invoke configuration cannot be read: {exc}; check invoke.yaml and the INVOKE_* variables"
    return None


def install_config_error_hook() -> None:
    """Under `invoke`, configuration errors happen before any task of ours runs: one line, exit 2."""
    previous = sys.excepthook
    if getattr(previous, "gastown_tasks", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        message = config_error_message(exc)
        if message is None:
            previous(kind, exc, tb)
            return
        if "--json" in sys.argv or "-j" in sys.argv:
            import json

            print(json.dumps({"error": message, "exit_code": 2}), flush=True)  # os._exit flushes nothing
        print(f"error: {message}", file=sys.stderr, flush=True)
        import os

        os._exit(2)

    hook.gastown_tasks = True  # type: ignore[attr-defined]
    sys.excepthook = hook
