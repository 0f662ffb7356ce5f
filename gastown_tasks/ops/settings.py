"""Dolt server settings: one table, and one frozen value built from defaults, config, env and flags.

`SETTINGS` is the one place a setting is declared: its name, default, parser, the rule an invalid
value breaks, Gas Town's variable, the command-line flag and the README's line; DEFAULTS, GT_ENV
and FLAGS derive from it (and tests/unit/test_settings_table.py holds the README's table to it).

Precedence, lowest first: DEFAULTS < a config mapping (Invoke's ``dolt`` tree: collection config,
invoke.yaml, ``INVOKE_DOLT_*``) < Gas Town's ``GT_DOLT_*`` variables < explicit overrides
(command-line flags).  Every value is parsed here, once, into its type, before anything starts; an
invalid one is a ConfigError (exit 2) naming where it came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .errors import ConfigError

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


def parse_count(value: Any, low: int, high: int) -> int | None:
    """A whole number from `low` to `high` written in ASCII digits (an int or text), or None."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    # ASCII digits, a bounded count of them: int() accepts "³" and strings of thousands of digits.
    if not (text.isascii() and text.isdigit() and len(text) <= 18) or not low <= int(text) <= high:
        return None
    return int(text)


def parse_number(value: Any, low: float, high: float) -> float | None:
    """A number from `low` to `high` (NaN, infinities, booleans and text that is no number: None)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if low <= number <= high else None


def _metrics_port(value: Any) -> int | None:
    if str(value).strip() in ("0", "") and not isinstance(value, bool):
        return 0
    return parse_port(value)


def _log_level(value: Any) -> str | None:
    level = str(value).strip().lower()
    level = "warning" if level == "warn" else level
    return level if level in LOG_LEVELS else None


def _wait_timeout(value: Any) -> int | None:
    text = str(value).strip()
    if text.startswith("-") and text[1:].isdigit():
        return 0  # Gas Town's `gt` reads a negative GT_DOLT_WAIT_TIMEOUT as "leave Dolt's"
    return parse_count(value, 0, MAX_COUNT)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _plain_tree(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain_tree(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def _tree(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return {}
    return _plain_tree(value) if isinstance(value, Mapping) else None


# Upper bounds: a wait longer than these is a typo (and `1e10` seconds overflows the OS's timers).
MAX_SECONDS = 30 * 86400.0
MAX_LOG_MB = 1024.0 * 1024
MAX_BACKUP_AGE_HOURS = 24.0 * 3650
MAX_LOG_KEEP = 1000
MAX_COUNT = 999_999_999


class Setting(NamedTuple):
    """One setting, declared once."""

    name: str
    default: Any
    parse: Callable[[Any], Any]  # the value in its type, or None when it is invalid
    rule: str  # what a valid value is, for the one-line error
    doc: str = ""  # the README table's last column
    env: str = ""  # Gas Town's own variable, shared with `gt dolt`
    flag: str = ""  # the command-line option, as "--port" (every command) or "start --timeout"
    shown: str = "{}"  # the README table's default column; {} is the default itself

    @property
    def invoke_env(self) -> str:
        """Invoke's variable for it (none for a mapping: Invoke cannot set a tree from one variable)."""
        return "" if isinstance(self.default, dict) else f"INVOKE_DOLT_{self.name.upper()}"

    @property
    def option(self) -> str:
        """The flag itself ("--timeout"), as a message names where a value came from."""
        return self.flag.split()[-1] if self.flag else ""


def _number(name: str, default: float, unit: str, low: float, high: float, doc: str, **more: str) -> Setting:
    """A bounded number; its error names its own unit."""
    return Setting(
        name,
        default,
        lambda value: parse_number(value, low, high),
        f"it must be a number of {unit}, {low:g} or more (at most {high:.12g})",
        doc,
        **more,
    )


def _bool(name: str, doc: str) -> Setting:
    return Setting(name, False, parse_bool, "it must be true or false", doc)


def _mapping(name: str, doc: str) -> Setting:
    return Setting(name, {}, _tree, f"dolt.{name} must be a mapping (YAML keys under dolt.{name})", doc)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "host",
        "127.0.0.1",
        normalize_host,
        "give an address such as 127.0.0.1",
        "`localhost` means 127.0.0.1; not an address of this machine: remote mode",
        env="GT_DOLT_HOST",
    ),
    Setting(
        "port",
        3307,
        parse_port,
        "it must be a whole number from 1 to 65535, such as 3307",
        "read as gt reads it: above",
        env="GT_DOLT_PORT",
        flag="--port",
        shown="the town's ({})",
    ),
    Setting("user", "root", _text, "", env="GT_DOLT_USER"),
    Setting(
        "password",
        "",
        _text,
        "",
        "what clients send; never put in the server's environment",
        env="GT_DOLT_PASSWORD",
        shown="empty",
    ),
    _bool("allow_passwordless_bind", "listening beyond loopback with an empty password needs this"),
    _bool(
        "allow_outside_paths",
        "`dolt.server` paths where the server writes (`secure_file_priv`, `privilege_file`, "
        "`branch_control_file`, `cfg_dir`) outside `.dolt-data`/`daemon/` need this",
    ),
    Setting("binary", "", _text, "", "`dolt.binary` > `dolt` on PATH > the cached pinned build", shown="(lookup)"),
    _number(
        "start_timeout", 60.0, "seconds", 0, MAX_SECONDS, "seconds until the server must answer", flag="start --timeout"
    ),
    _number(
        "stop_timeout",
        30.0,
        "seconds",
        0,
        MAX_SECONDS,
        "seconds after SIGTERM before SIGKILL; Dolt needs time to flush",
        flag="stop --timeout",
    ),
    _number(
        "drain_timeout",
        10.0,
        "seconds",
        0,
        MAX_SECONDS,
        "seconds `stop` waits for busy clients; `stop --force` skips it",
    ),
    Setting(
        "log_level",
        "warning",  # gt's: Dolt logs each connection at info
        _log_level,
        f"use one of {', '.join(LOG_LEVELS)}",
        ", ".join(LOG_LEVELS),
        env="GT_DOLT_LOGLEVEL",
        shown="{} (gt's)",
    ),
    Setting(
        "wait_timeout",
        30,
        _wait_timeout,
        f"it must be a whole number of seconds from 0 to {MAX_COUNT}",
        "seconds before the server closes an idle connection: written as the listener's read timeout, the only "
        "idle reclaim the pinned Dolt honours (it ignores MySQL's `wait_timeout`); it also cuts any statement "
        'that runs longer (`docs/operations.md`, "Idle connections"); 0 = gt\'s 300 s',
        env="GT_DOLT_WAIT_TIMEOUT",
    ),
    Setting(
        "metrics_port",
        0,
        _metrics_port,
        "it must be 0 (off) or a port from 1 to 65535",
        "Dolt's Prometheus endpoint; 0 = off",
    ),
    _number(
        "log_max_mb",
        100.0,
        "megabytes",
        0,
        MAX_LOG_MB,
        "`start` rotates a bigger log; 0 = never",
        env="GT_DOLT_LOG_MAX_MB",
    ),
    Setting(
        "log_keep",
        3,
        lambda value: parse_count(value, 1, MAX_LOG_KEEP),
        f"it must be a whole number from 1 to {MAX_LOG_KEEP}",
        f"rotated logs kept (1 to {MAX_LOG_KEEP})",
    ),
    _number(
        "backup_max_age_hours",
        24.0,
        "hours",
        0,
        MAX_BACKUP_AGE_HOURS,
        "`doctor` warns when older; 0 = no backups expected",
    ),
    _number("watch_interval", 10.0, "seconds", 0.1, MAX_SECONDS, "seconds between checks", flag="watch --interval"),
    _mapping("server", "sql-server config overrides, deep-merged (`docs/operations.md`)"),
    _mapping(
        "cluster",
        "cluster replication and fencing (`fence_timeout` 60, `take_writes_alone` false: `docs/cluster.md`)",
    ),
    Setting("town_root", "", _text, "", "must hold `mayor/town.json`", shown="(discovered)"),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}
GT_ENV: dict[str, str] = {setting.env: setting.name for setting in SETTINGS if setting.env}
FLAGS: dict[str, str] = {setting.name: setting.option for setting in SETTINGS if setting.flag}


class DoltSettings(NamedTuple):
    """Every setting, parsed; the fields are SETTINGS in its order (built by settings_from_mapping)."""

    host: str
    port: int
    user: str
    password: str
    allow_passwordless_bind: bool
    allow_outside_paths: bool
    binary: str
    start_timeout: float
    stop_timeout: float
    drain_timeout: float
    log_level: str
    wait_timeout: int
    metrics_port: int
    log_max_mb: float
    log_keep: int
    backup_max_age_hours: float
    watch_interval: float
    server: Mapping[str, Any]
    cluster: Mapping[str, Any]
    town_root: str

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
    setting = BY_NAME[key]
    places = [f"dolt.{key} (invoke.yaml)", setting.invoke_env, setting.env, setting.flag]
    places = [place for place in places if place]
    return places[0] if len(places) == 1 else ", ".join(places[:-1]) + " or " + places[-1]


def _parse(setting: Setting, value: Any, origin: str | None) -> Any:
    parsed = setting.parse(value)
    if parsed is None:
        where = origin or f"dolt.{setting.name}"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(
            f"invalid {setting.name} {shown} (from {where}): {setting.rule}; set {where_to_set(setting.name)}"
        )
    return parsed


def settings_from_mapping(values: Mapping[str, Any], origins: Mapping[str, str] | None = None) -> DoltSettings:
    """Validate and coerce a mapping of setting names; unknown keys are ignored."""
    origins = origins or {}
    merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS and v is not None}}
    return DoltSettings(**{s.name: _parse(s, merged[s.name], origins.get(s.name)) for s in SETTINGS})


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
