"""Dolt server settings: one frozen value built from defaults, config, env and flags.

Precedence, lowest first: DEFAULTS < a config mapping (Invoke's ``dolt`` tree: collection config,
invoke.yaml, ``INVOKE_DOLT_*``) < Gas Town's ``GT_DOLT_*`` variables < explicit overrides
(command-line flags).  Every value is parsed here, once, into its type, before anything starts; an
invalid one is a ConfigError (exit 2) naming where it came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 3307,
    "user": "root",
    "password": "",
    "binary": "",
    "start_timeout": 60.0,
    "stop_timeout": 30.0,
    "log_level": "warning",  # gt's: Dolt logs each connection at info
    "town_root": "",
    "allow_passwordless_bind": False,
    "allow_outside_paths": False,
    "wait_timeout": 30,  # seconds before an idle connection is closed: the read timeout (serverconfig)
    "drain_timeout": 10.0,
    "metrics_port": 0,
    "log_max_mb": 100.0,
    "log_keep": 3,
    "backup_max_age_hours": 24.0,
    "watch_interval": 10.0,
    "server": {},
    "cluster": {},
}

# Gas Town's own variables, shared with `gt dolt`, mapped onto our keys.
GT_ENV: dict[str, str] = {
    "GT_DOLT_HOST": "host",
    "GT_DOLT_PORT": "port",
    "GT_DOLT_USER": "user",
    "GT_DOLT_PASSWORD": "password",
    "GT_DOLT_LOGLEVEL": "log_level",
    "GT_DOLT_WAIT_TIMEOUT": "wait_timeout",
    "GT_DOLT_LOG_MAX_MB": "log_max_mb",
}
FLAGS = {
    "port": "--port",
    "start_timeout": "--timeout",
    "stop_timeout": "--timeout",
    "drain_timeout": "--drain-timeout",
    "watch_interval": "--interval",
}

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal")
LOOPBACK_NAMES = {"localhost": "127.0.0.1", "ip6-localhost": "::1"}


def parse_port(value: Any) -> int | None:
    """A TCP port from any source (file, flag, another process's arguments), or None."""
    if isinstance(value, bool):
        return None
    text = str(value).strip() if isinstance(value, int | str) else ""
    # ASCII digits, at most five: int() accepts "³" and strings of thousands of digits.
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
        "": False,
    }.get(text)


HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def normalize_host(value: Any) -> str | None:
    """An address to listen on or connect to: an IP address, or a host name whose every label is
    1-63 letters, digits, '-' or '_' (what the resolver takes; `localhost` is 127.0.0.1, so that
    Dolt makes no unix socket in /tmp)."""
    host = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    host = host[:-1] if host.endswith(".") else host  # the root label: "localhost." is localhost
    if not host or len(host) > 253 or not all(HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return None
    return LOOPBACK_NAMES.get(host.lower(), host)


class DoltSettings(NamedTuple):
    host: str = DEFAULTS["host"]
    port: int = DEFAULTS["port"]
    user: str = DEFAULTS["user"]
    password: str = DEFAULTS["password"]
    binary: str = DEFAULTS["binary"]
    start_timeout: float = DEFAULTS["start_timeout"]
    stop_timeout: float = DEFAULTS["stop_timeout"]
    log_level: str = DEFAULTS["log_level"]
    town_root: str = DEFAULTS["town_root"]
    allow_passwordless_bind: bool = DEFAULTS["allow_passwordless_bind"]
    allow_outside_paths: bool = DEFAULTS["allow_outside_paths"]
    wait_timeout: int = DEFAULTS["wait_timeout"]
    drain_timeout: float = DEFAULTS["drain_timeout"]
    metrics_port: int = DEFAULTS["metrics_port"]
    log_max_mb: float = DEFAULTS["log_max_mb"]
    log_keep: int = DEFAULTS["log_keep"]
    backup_max_age_hours: float = DEFAULTS["backup_max_age_hours"]
    watch_interval: float = DEFAULTS["watch_interval"]
    server: Mapping[str, Any] = MappingProxyType({})
    cluster: Mapping[str, Any] = MappingProxyType({})

    @property
    def url_host(self) -> str:
        """The host as it appears in URLs and host:port pairs (IPv6 in brackets)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def address(self) -> str:
        return f"{self.url_host}:{self.port}"

    @property
    def connection_string(self) -> str:
        auth = self.user if not self.password else f"{self.user}:***"
        return f"mysql://{auth}@{self.address}/"

    @property
    def is_loopback(self) -> bool:
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return False
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1
        return ip.is_loopback or bool(mapped and mapped.is_loopback)

    @property
    def lock_wait(self) -> float:
        """How long a mutating command waits for the town lock: a whole start and stop of another."""
        return self.start_timeout + self.stop_timeout + self.drain_timeout + LOCK_SLACK

    def with_overrides(self, **overrides: Any) -> DoltSettings:
        """A copy with the non-None overrides applied and validated."""
        merged = self._asdict()
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return settings_from_mapping(merged)


LOCK_SLACK = 15.0  # seconds beyond another command's own timeouts that a lock waiter allows


def where_to_set(key: str) -> str:
    """Every place a setting can be given, for messages: dolt.KEY, its variables, its flag."""
    places = [f"dolt.{key} (invoke.yaml)", f"INVOKE_DOLT_{key.upper()}"]
    places += [var for var, name in GT_ENV.items() if name == key]
    if key in FLAGS:
        places.append(FLAGS[key])
    return ", ".join(places[:-1]) + " or " + places[-1]


def _bad(key: str, value: Any, rule: str, origin: str | None) -> ConfigError:
    where = origin or f"dolt.{key}"
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(f"invalid {key} {shown} (from {where}): {rule}; set {where_to_set(key)}")


# Upper bounds: a wait longer than these is a typo (and `1e10` seconds overflows the OS's timers).
MAX_SECONDS = 30 * 86400.0
MAX_NUMBER = {"log_max_mb": 1024.0 * 1024, "backup_max_age_hours": 24.0 * 3650}
MAX_LOG_KEEP = 1000


def _seconds(key: str, value: Any, origin: str | None) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        seconds = -1.0
    high = MAX_NUMBER.get(key, MAX_SECONDS)
    if isinstance(value, bool) or not (0 <= seconds <= high):
        unit = "a number of seconds" if key not in MAX_NUMBER else "a number"
        raise _bad(key, value, f"it must be {unit}, 0 or more (at most {high:g})", origin)
    return seconds


def _count(key: str, value: Any, origin: str | None, *, low: int = 0, high: int = 999_999_999) -> int:
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not low <= int(text) <= high:
        raise _bad(key, value, f"it must be a whole number from {low} to {high}", origin)
    return int(text)


def _parse(key: str, value: Any, origin: str | None) -> Any:
    if key == "port":
        port = parse_port(value)
        if port is None:
            raise _bad(key, value, f"it must be a whole number from 1 to 65535, such as {DEFAULTS['port']}", origin)
        return port
    if key == "metrics_port":
        if str(value).strip() in ("0", "") and not isinstance(value, bool):
            return 0
        port = parse_port(value)
        if port is None:
            raise _bad(key, value, "0 (off) or a port from 1 to 65535", origin)
        return port
    if key == "host":
        host = normalize_host(value)
        if host is None:
            raise _bad(key, value, "give an address such as 127.0.0.1", origin)
        return host
    if key == "log_level":
        level = str(value).strip().lower()
        level = "warning" if level == "warn" else level
        if level not in LOG_LEVELS:
            raise _bad(key, value, f"use one of {', '.join(LOG_LEVELS)}", origin)
        return level
    if key in ("allow_passwordless_bind", "allow_outside_paths"):
        flag = parse_bool(value)
        if flag is None:
            raise _bad(key, value, "true or false", origin)
        return flag
    if key == "wait_timeout":
        text = str(value).strip()
        if text.startswith("-") and text[1:].isdigit():
            return 0  # Gas Town's `gt` reads a negative GT_DOLT_WAIT_TIMEOUT as "leave Dolt's"
        return _count(key, value, origin)
    if key == "log_keep":
        return _count(key, value, origin, low=1, high=MAX_LOG_KEEP)
    if key in ("start_timeout", "stop_timeout", "drain_timeout", "log_max_mb", "backup_max_age_hours"):
        return _seconds(key, value, origin)
    if key == "watch_interval":
        interval = _seconds(key, value, origin)
        if interval < 0.1:
            raise _bad(key, value, "at least 0.1 seconds", origin)
        return interval
    if key in ("server", "cluster"):
        if value in (None, ""):
            return {}
        if not isinstance(value, Mapping):
            raise _bad(key, value, f"dolt.{key} must be a mapping (YAML keys under dolt.{key})", origin)
        return _plain_tree(value)
    return "" if value is None else str(value)


def _plain_tree(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain_tree(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def settings_from_mapping(values: Mapping[str, Any], origins: Mapping[str, str] | None = None) -> DoltSettings:
    """Validate and coerce a mapping of setting names; unknown keys are ignored."""
    origins = origins or {}
    merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS and v is not None}}
    return DoltSettings(**{key: _parse(key, merged[key], origins.get(key)) for key in DEFAULTS})


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
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = dict(DEFAULTS)
    origins: dict[str, str] = {}
    for key, value in (config or {}).items():
        if value is not None and key in DEFAULTS:
            merged[key] = value
            invoke_var = f"INVOKE_DOLT_{key.upper()}"
            origins[key] = invoke_var if env.get(invoke_var) == str(value) else f"dolt.{key} in the Invoke config"
    for var, key in GT_ENV.items():
        if env.get(var, "").strip():
            merged[key] = env[var]
            origins[key] = var
    for key, value in flags.items():
        if value is not None:
            merged[key] = value
            origins[key] = FLAGS.get(key, f"--{key.replace('_', '-')}")
    return settings_from_mapping(merged, origins)
