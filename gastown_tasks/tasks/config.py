"""The one place Invoke configuration is read, defensively (see pyinvoke #736 and #782)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Context
from invoke.exceptions import Exit

from ..ops.errors import GastownError
from ..ops.settings import DEFAULTS, DoltSettings, resolve_settings
from ..ops.town import Town, find_town

F = TypeVar("F", bound=Callable[..., Any])


def root_defaults() -> dict[str, Any]:
    return {"dolt": dict(DEFAULTS)}


def _plain(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    items = getattr(value, "items", None)
    return {key: val for key, val in items()} if callable(items) else {}


def settings_from_context(c: Context, **flags: Any) -> DoltSettings:
    """defaults < Invoke config (files, INVOKE_DOLT_*) < GT_DOLT_* < flags.

    A pre-task may see only the root config, and the `dolt` tree may be partial: both are fine
    because every missing key falls back to DEFAULTS.
    """
    try:
        tree = c.config.get("dolt", None)
    except Exception:  # a config object that is not a mapping at all
        tree = None
    return resolve_settings(_plain(tree), **flags)


def town_for(settings: DoltSettings) -> Town:
    return find_town(configured=settings.town_root or None)


def town_and_settings(c: Context, **flags: Any) -> tuple[Town, DoltSettings]:
    """What almost every task starts with: the settings, then the town they point at."""
    settings = settings_from_context(c, **flags)
    return town_for(settings), settings


def reports_errors(func: F) -> F:
    """Turn the package's errors into one message and the error's exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GastownError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]
