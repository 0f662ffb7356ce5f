"""The one place Invoke configuration is read, defensively (see pyinvoke #736 and #782).

The `dolt` defaults Invoke sees are all None ("use gt-dolt's default"): every key exists, so each
INVOKE_DOLT_* variable works, and no value is ever cast by Invoke (which raises tracebacks on
`INVOKE_DOLT_PORT=abc`); the settings parse every value, once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Context
from invoke.exceptions import Exit

from ..commands.runner import Env, run_guarded
from ..exits import guarded
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
    unmergeable = _unmergeable_file(exc)
    if unmergeable is not None:
        path, data = unmergeable
        return (
            f"{path} cannot be read as Invoke configuration: its top level is a {type(data).__name__}, and "
            "Invoke needs a mapping of settings (dolt:, onboard:, ...); fix the file"
        )
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "an Invoke config file"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"invalid YAML in {where}: {problem}; fix the file"
    if type(exc).__module__.startswith("invoke") and isinstance(exc, ValueError | TypeError | KeyError):
        return f"the Invoke configuration cannot be read: {exc}; check invoke.yaml and the INVOKE_* variables"
    return None


def _unmergeable_file(exc: BaseException) -> tuple[str, Any] | None:
    """The config file Invoke failed to merge because its top level is not a mapping (a list, a
    number): Invoke says only "'list' object has no attribute 'items'"."""
    if not isinstance(exc, AttributeError):
        return None
    tb, found = exc.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_merge_file" and frame.f_globals.get("__name__") == "invoke.config":
            data = frame.f_locals.get("data")
            if not isinstance(data, dict):
                found = str(frame.f_locals.get("path")), data
        tb = tb.tb_next
    return found


def json_asked() -> bool:
    """--json on the command line: an error before any task runs is then JSON on stdout too."""
    return "--json" in sys.argv[1:] or "-j" in sys.argv[1:]


def guard_phase(step: Callable[[], Any], as_json: bool) -> Any:
    """One of Invoke's Program phases inside the package's boundary: what goes wrong is one line and
    its exit code (Invoke's Exit), Invoke's own configuration errors exit 2.  Invoke's Exit, its
    parse errors and failed commands stay Invoke's to say."""
    from invoke.exceptions import ParseError, UnexpectedExit

    result: list[Any] = []
    code = guarded(
        lambda: result.append(step()),
        as_json=as_json,
        explain=config_error_message,
        passes=(Exit, ParseError, UnexpectedExit),
    )
    if code:
        raise Exit(code=code)
    return result[0] if result else None


def guard_host_program(ns: Any) -> None:
    """Under `invoke`, a project's configuration is read after its tasks.py (which called add_dolt)
    loaded, and before any task of ours runs: Invoke would end a bad invoke.yaml in a traceback.

    The Invoke program loading this tasks.py (found on the call stack) gets the boundary around its
    remaining phases, and uses it only when the command line asks for one of our tasks: nothing
    process-wide is installed, and the town's own tasks keep Invoke's own behaviour."""
    from invoke import Program

    program = _loading(Program)
    if program is None or getattr(program, "gastown_guarded", False):
        return
    program.gastown_guarded = True

    def ours() -> bool:
        unparsed = list(getattr(getattr(program, "core", None), "unparsed", None) or [])
        name = unparsed[0] if unparsed and not unparsed[0].startswith("-") else None
        try:
            task = ns[name]
        except Exception:  # not a task of this namespace (Invoke will say so)
            return False
        return str(getattr(getattr(task, "body", None), "__module__", "")).startswith(f"{__package__}.")

    def guard(step: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(step)
        def phase(*args: Any, **kwargs: Any) -> Any:
            if not ours():
                return step(*args, **kwargs)
            return guard_phase(lambda: step(*args, **kwargs), json_asked())

        return phase

    program.config.load_project = guard(program.config.load_project)
    program.update_config = guard(program.update_config)
    program.execute = guard(program.execute)


def _loading(kind: type) -> Any:
    """The nearest caller that is a `kind` (the Invoke program whose loader imports a tasks.py)."""
    frame = sys._getframe(1)
    for _ in range(64):
        if frame.f_back is None:
            return None
        frame = frame.f_back
        found = frame.f_locals.get("self")
        if isinstance(found, kind):
            return found
    return None
