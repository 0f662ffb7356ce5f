"""Settings Gas Town's `gt` v1.0 keeps in a town's files, read as gt reads them: the town's one
port, and the server's log level.

The log level: GT_DOLT_LOGLEVEL, else `GT_DOLT_LOGLEVEL=` in daemon/daemon.env, else `warning`
(ours: flags > GT_DOLT_LOGLEVEL > dolt.log_level > daemon/daemon.env > warning).

The port:

gt v1.0 (`internal/doltserver.DefaultConfig`) takes the port from, in this order:

    GT_DOLT_PORT unset:  mayor/daemon.json env.GT_DOLT_PORT  >  .dolt-data/config.yaml listener.port  >  3307
    GT_DOLT_PORT set:    .dolt-data/config.yaml listener.port  >  GT_DOLT_PORT  >  3307

`gt config set dolt.port N` writes daemon.json; `gt install --dolt-port N` and every start (gt's or
ours) write config.yaml.  So the port a town runs on is recorded in config.yaml by whichever tool
started it, and daemon.json, when it names one, is where gt (and its daemon) look regardless.

Ours on top: `--port` (this command) > `dolt.port` in the Invoke config (invoke.yaml,
INVOKE_DOLT_PORT, a tasks.py's collection config) > gt's order above.  A town only gt configured
and a town only gastown-tasks configured both work: a start records its port in config.yaml,
where gt reads it.  The one thing that would split the town, a start on another port than the
one daemon.json names, is refused (`check_start`), saying how to move the whole town.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import ConfigError, GastownError
from ..files import safefs
from ..settings import DEFAULTS, DoltSettings, parse_port, settings_from_mapping
from ..town import Town

DAEMON_JSON = ("mayor", "daemon.json")
FILE_LIMIT = 1024 * 1024
FROM_DAEMON_JSON = "mayor/daemon.json (gt config set dolt.port)"
FROM_CONFIG_YAML = ".dolt-data/config.yaml (the port the town's server was last started on)"
FROM_ENV = "GT_DOLT_PORT"
FROM_DEFAULT = "the default"


class TownPort(NamedTuple):
    port: int
    source: str  # where it came from, for messages
    gt_port: int  # the port gt v1.0 would use from the same shell
    gt_source: str
    pinned: int | None  # daemon.json's port: where gt (and its daemon) look without GT_DOLT_PORT
    notes: tuple[str, ...] = ()

    @property
    def differs(self) -> str | None:
        """A note when our port is not the one gt reads now (a start records ours where gt reads it)."""
        if self.port == self.gt_port:
            return None
        return (
            f"{self.source} says port {self.port}; gt reads {self.gt_port} from {self.gt_source} until a start "
            f"records {self.port} in .dolt-data/config.yaml"
        )

    def recorded(self) -> str | None:
        """What a start on our port did for gt, when it moved the town."""
        if self.port == self.gt_port:
            return None
        return f"port {self.port} (from {self.source}) is now in .dolt-data/config.yaml, where gt reads it too"


_TOP_KEY = re.compile(r"([A-Za-z_][\w-]*)\s*:(.*)")
_FLOW_PORT = re.compile(r"(?:^|[{,\s])port\s*:\s*([0-9]+)\s*(?:[,}]|$)")


def _uncomment(line: str) -> str:
    """A line without its comment (a '#' at the start or after a space; values here are plain)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].rstrip()


def listener_port(text: str) -> int | None:
    """`listener.port` of a sql-server config, as gt's YAML decoding into an int reads it: a plain
    decimal number (a quoted one is a string, which gt does not take), else None."""
    lines = [_uncomment(line) for line in text.splitlines()]
    for i, line in enumerate(lines):
        top = _TOP_KEY.fullmatch(line)
        if top is None or top.group(1) != "listener":
            continue
        rest = top.group(2).strip()
        if rest.startswith("{"):
            flow = _FLOW_PORT.search(rest)
            return parse_port(flow.group(1)) if flow else None
        if rest:
            return None
        indent: int | None = None
        for inner in lines[i + 1 :]:
            if not inner.strip():
                continue
            depth = len(inner) - len(inner.lstrip(" "))
            if depth == 0:
                break
            indent = depth if indent is None else indent
            key = _TOP_KEY.fullmatch(inner.strip())
            if depth == indent and key is not None and key.group(1) == "port":
                value = key.group(2).strip()
                return parse_port(value) if value.isdigit() else None
        return None
    return None


class Unreadable(NamedTuple):
    """A file gt reads that gt-dolt will not (a link, a FIFO, someone else's, too big)."""

    path: str
    why: str

    def note(self, what: str) -> str:
        return f"{self.path} cannot be read ({self.why}); gt reads {what} there: make it a plain file of yours again"


def _read(town: Town, parts: tuple[str, ...]) -> bytes | Unreadable | None:
    path = town.root.joinpath(*parts)
    try:
        return safefs.read_bytes(path, FILE_LIMIT, root=town.root)
    except GastownError as exc:
        return Unreadable(str(path), str(exc))


def config_yaml_port(town: Town) -> tuple[int | None, str | None]:
    """(listener.port of .dolt-data/config.yaml, or None; a note when the file cannot be read)."""
    raw = _read(town, (".dolt-data", "config.yaml"))
    if isinstance(raw, Unreadable):
        return None, raw.note("the town's port")
    return (listener_port(raw.decode("utf-8", errors="replace")) if raw is not None else None), None


def daemon_json_port(town: Town) -> tuple[int | None, str | None]:
    """(env.GT_DOLT_PORT of mayor/daemon.json, or None; a note when it is there but unusable)."""
    raw = _read(town, DAEMON_JSON)
    if isinstance(raw, Unreadable):
        return None, raw.note("the port gt config set dolt.port sets")
    if raw is None:
        return None, None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "mayor/daemon.json is not valid JSON: gt ignores it, and so does gt-dolt"
    env = data.get("env") if isinstance(data, dict) else None
    if not isinstance(env, dict) or "GT_DOLT_PORT" not in env:
        return None, None
    value = env["GT_DOLT_PORT"]
    port = parse_port(value) if isinstance(value, str) else None
    if port is None:
        return (
            None,
            f"mayor/daemon.json sets GT_DOLT_PORT to {value!r}, not a port: gt ignores it; "
            "fix it with gt config set dolt.port N",
        )
    return port, None


def gt_port(town: Town, environ: Mapping[str, str] | None = None) -> tuple[int, str, int | None, list[str]]:
    """(port, its source, daemon.json's port, notes), exactly in gt v1.0's order."""
    env = os.environ if environ is None else environ
    from_env = env.get("GT_DOLT_PORT", "").strip()
    pinned, note = daemon_json_port(town)
    from_yaml, unread = config_yaml_port(town)
    notes = [text for text in (note, unread) if text]
    if not from_env and pinned is not None:
        return pinned, FROM_DAEMON_JSON, pinned, notes
    if from_yaml is not None:
        if from_env and parse_port(from_env) not in (None, from_yaml):
            notes.append(
                f"GT_DOLT_PORT={from_env} is not used: {FROM_CONFIG_YAML} says {from_yaml}, which gt reads first; "
                f"to move the town: gt-dolt restart --port {from_env}"
            )
        return from_yaml, FROM_CONFIG_YAML, pinned, notes
    if from_env:
        port = parse_port(from_env)
        if port is None:
            raise ConfigError(
                f"invalid port {from_env!r} (from GT_DOLT_PORT): it must be a whole number from 1 to 65535"
            )
        return port, FROM_ENV, pinned, notes
    return int(DEFAULTS["port"]), FROM_DEFAULT, pinned, notes


def resolve(town: Town, explicit: tuple[Any, str] | None = None, environ: Mapping[str, str] | None = None) -> TownPort:
    """The port this command uses: an explicit one of ours (value, where it came from), else gt's."""
    port, source, pinned, notes = gt_port(town, environ)
    if explicit is None:
        return TownPort(port, source, port, source, pinned, tuple(notes))
    value, origin = explicit
    mine = parse_port(value)
    if mine is None:
        raise ConfigError(f"invalid port {value!r} (from {origin}): it must be a whole number from 1 to 65535")
    return TownPort(mine, origin, port, source, pinned, tuple(notes))


DAEMON_ENV = ("daemon", "daemon.env")


def daemon_env(town: Town, key: str) -> str | None:
    """`KEY=value` from daemon/daemon.env (gt's daemon environment; # comments, blank lines)."""
    try:
        raw = safefs.read_bytes(town.root.joinpath(*DAEMON_ENV), FILE_LIMIT, root=town.root)
    except GastownError:
        return None  # a planted file: the log level is not worth refusing to run over
    if raw is None:
        return None
    for line in raw.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith(f"{key}=") and not line.startswith("#"):
            return line[len(key) + 1 :]
    return None


def log_level(town: Town) -> str | None:
    """The log level gt would run the server with from daemon/daemon.env, or None."""
    value = daemon_env(town, "GT_DOLT_LOGLEVEL")
    return value.strip() or None if value is not None else None


def checked_level(level: str) -> str:
    where = {"log_level": "GT_DOLT_LOGLEVEL in daemon/daemon.env"}
    return settings_from_mapping({"log_level": level}, where).log_level


def for_town(
    town: Town,
    settings: DoltSettings,
    config: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[DoltSettings, TownPort | None]:
    """`settings` (from resolve_settings with the same config and flags) completed with what gt keeps
    in the town: its port, unless --port or dolt.port names one, and daemon.env's log level, unless
    dolt.log_level or GT_DOLT_LOGLEVEL does.  A remote server's settings are left as they are."""
    from ..host.addresses import is_remote

    if is_remote(settings):
        return settings, None
    env = os.environ if environ is None else environ
    config = config or {}
    choice = resolve(town, explicit_port(config, flags or {}, env), env)
    overrides: dict[str, Any] = {"port": choice.port} if choice.port != settings.port else {}
    if not (config.get("log_level") or env.get("GT_DOLT_LOGLEVEL", "").strip()):
        level = log_level(town)
        if level is not None:
            overrides["log_level"] = checked_level(level)
    return (settings.with_overrides(**overrides) if overrides else settings), choice


def settings_for_town(town: Town, settings: DoltSettings, config: Mapping[str, Any] | None = None) -> DoltSettings:
    """`settings` (from resolve_settings(config)) with the town's port and log level as gt reads
    them, unless `config` names its own: what every gt-dolt command and Invoke task uses."""
    return for_town(town, settings, config)[0]


def check_start(town: Town, port: int) -> None:
    """A start never puts the server where gt does not look: refuse a port other than daemon.json's
    (and a start while daemon.json cannot be read: gt reads it, so its port cannot be known)."""
    raw = _read(town, DAEMON_JSON)
    if isinstance(raw, Unreadable):
        raise ConfigError(raw.note("the town's port") + ", then start again")
    pinned, _ = daemon_json_port(town)
    if pinned is not None and pinned != port:
        raise ConfigError(
            f"{FROM_DAEMON_JSON} sets this town's port to {pinned}, and gt looks for the server there; a start "
            f"on {port} would split the town from gt. Start it on {pinned} (drop the other port setting), or move "
            f"the whole town: gt config set dolt.port {port}"
        )


def explicit_port(
    config: Mapping[str, Any], flags: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[Any, str] | None:
    """Our own port setting, if one was given: --port, else dolt.port of the Invoke config."""
    if flags.get("port") is not None:
        return flags["port"], "--port"
    if config.get("port") is not None:
        value = config["port"]
        return value, "INVOKE_DOLT_PORT" if environ.get("INVOKE_DOLT_PORT") == str(
            value
        ) else "dolt.port in the Invoke config"
    return None
