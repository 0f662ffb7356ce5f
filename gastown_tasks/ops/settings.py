"""Dolt server settings: one frozen value built from defaults, config, env and flags.

Precedence, lowest first: DEFAULTS < a config mapping (Invoke's ``dolt`` tree) < Gas Town's
``GT_DOLT_*`` environment variables < explicit overrides (command-line flags).  Everything is
validated here, before anything is started, so a bad port never reaches a process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 3307,
    "user": "root",
    "password": "",
    "binary": "",
    "start_timeout": 60.0,
    "stop_timeout": 30.0,
    "log_level": "info",
    "town_root": "",
}

# Gas Town's own variables, shared with `gt dolt`, mapped onto our keys.
GT_ENV: dict[str, str] = {
    "GT_DOLT_HOST": "host",
    "GT_DOLT_PORT": "port",
    "GT_DOLT_USER": "user",
    "GT_DOLT_PASSWORD": "password",
    "GT_DOLT_LOGLEVEL": "log_level",
}

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal")


@dataclass(frozen=True)
class DoltSettings:
    host: str = DEFAULTS["host"]
    port: int = DEFAULTS["port"]
    user: str = DEFAULTS["user"]
    password: str = DEFAULTS["password"]
    binary: str = DEFAULTS["binary"]
    start_timeout: float = DEFAULTS["start_timeout"]
    stop_timeout: float = DEFAULTS["stop_timeout"]
    log_level: str = DEFAULTS["log_level"]
    town_root: str = DEFAULTS["town_root"]

    @property
    def connection_string(self) -> str:
        auth = self.user if not self.password else f"{self.user}:***"
        return f"mysql://{auth}@{self.host}:{self.port}/"

    def with_overrides(self, **overrides: Any) -> DoltSettings:
        """A copy with the non-None overrides applied and validated."""
        merged = asdict(self)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return settings_from_mapping(merged)


def _port(value: Any) -> int:
    text = str(value).strip()
    # ASCII digits, at most five: int() rejects "³" and strings of thousands of digits.
    digits = text.isascii() and text.isdigit() and len(text) <= 5
    if isinstance(value, bool) or not digits or not 1 <= int(text) <= 65535:
        raise ConfigError(
            f"invalid port {value!r}: it must be a whole number from 1 to 65535; "
            "set dolt.port (or GT_DOLT_PORT, or --port) to a free port such as 3307"
        )
    return int(text)


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(
            f"invalid {name} {value!r}: it must be a number of seconds, 0 or more; "
            f"fix dolt.{name} or the --timeout flag"
        )
    return seconds


def _log_level(value: Any) -> str:
    level = str(value).strip().lower()
    if level == "warn":
        level = "warning"
    if level not in LOG_LEVELS:
        raise ConfigError(f"invalid log_level {value!r}: use one of {', '.join(LOG_LEVELS)} (dolt.log_level)")
    return level


def _host(value: Any) -> str:
    host = str(value).strip()
    if not host or any(ch.isspace() for ch in host):
        raise ConfigError(
            f"invalid host {value!r}: give an address to listen on, such as 127.0.0.1 (dolt.host)"
        )
    return host


def settings_from_mapping(values: Mapping[str, Any]) -> DoltSettings:
    """Validate and coerce a mapping of setting names; unknown keys are ignored."""
    merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS and v is not None}}
    return DoltSettings(
        host=_host(merged["host"]),
        port=_port(merged["port"]),
        user=str(merged["user"]),
        password=str(merged["password"]),
        binary=str(merged["binary"] or ""),
        start_timeout=_seconds("start_timeout", merged["start_timeout"]),
        stop_timeout=_seconds("stop_timeout", merged["stop_timeout"]),
        log_level=_log_level(merged["log_level"]),
        town_root=str(merged["town_root"] or ""),
    )


def gt_env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings named by Gas Town's GT_DOLT_* variables; empty values count as unset."""
    env = os.environ if environ is None else environ
    return {key: env[var] for var, key in GT_ENV.items() if env.get(var, "").strip()}


def resolve_settings(
    config: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **flags: Any,
) -> DoltSettings:
    """defaults < config < GT_DOLT_* < flags (flags that are None are not given)."""
    merged: dict[str, Any] = dict(DEFAULTS)
    merged.update({k: v for k, v in (config or {}).items() if v is not None})
    merged.update(gt_env_overrides(environ))
    merged.update({k: v for k, v in flags.items() if v is not None})
    return settings_from_mapping(merged)
