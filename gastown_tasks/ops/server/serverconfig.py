"""The managed sql-server config file: `dolt sql-server --config <town>/.dolt-data/config.yaml`.

Written at every start (atomically, 0600, never through a link), where Gas Town's `gt` keeps it
too, from the settings and the town's defaults, with `dolt.server` deep-merged over them.  Dolt
parses the file strictly (an unknown key stops the server), so overrides are checked here against
the keys the pinned Dolt knows, before anything is stopped or started.

Gas Town's `gt` writes the same file at each of its starts (`writeServerConfig`); for every key it
writes, the value here is gt's, so the town behaves the same whichever tool started it last.  Where
ours differs or adds a key, the reason is below and in docs/operations.md.

Defaults, each chosen for a town of many agents:
- listener host/port/data_dir: ours (from dolt.host, dolt.port, the town); never overridable.  gt
  omits the host when GT_DOLT_HOST is unset (Dolt then listens on every interface); we always
  write it: 127.0.0.1 unless dolt.host says otherwise, since the server's root has no password.
- log_level: gt's `warning` (dolt.log_level, GT_DOLT_LOGLEVEL, daemon/daemon.env as gt reads it).
- auto_gc_behavior enable, archive_level 1: gt's; Dolt collects garbage as it goes, into archives.
- max_connections 1000: agents hold pooled connections; Dolt's own listener default, made explicit
  so @@max_connections reads it back (unset, it reads 151).
- read timeout dolt.wait_timeout (30 s): on the pinned Dolt the listener's read timeout is the only
  thing that closes an idle connection (`wait_timeout` reads back but is never enforced), and it
  also cuts every statement that runs longer, whatever it is (measured: docs/operations.md, "Idle
  connections").  30 s is Gas Town's own daemon value; 0 writes gt's CLI value, 300 s.  Dolt's 8 h
  default kept dead clients as CLOSE_WAIT sockets until the connection cap was exhausted (Gas Town
  failure modes 20-21).  `wait_timeout` itself is not written: no Dolt we pin honours it.
- write timeout 300 s (gt's): how long a client that stops reading a result may hold a connection.
- dolt_transaction_commit false: true makes every SQL commit a Dolt commit, including reads'
  implicit ones (Gas Town failure mode 22: 700k connections and a crash).
- secure_file_priv daemon/sql-files (0700): Dolt's default "" lets any SQL user write files
  anywhere as the server's user (SELECT … INTO OUTFILE), and every local user reaches loopback.
- no unix socket: the host is never `localhost`, which would make Dolt create /tmp/mysql.sock.
- metrics (dolt.metrics_port): Dolt's own Prometheus endpoint, on loopback unless binding beyond
  loopback is allowed.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, GastownError
from ..files import safefs
from ..settings import DoltSettings
from ..town import Town

MAX_CONNECTIONS = 1000
NET_TIMEOUT_MS = 300_000  # gt's read and write timeouts (its CLI's config)
CONFIG_MODE = 0o600

# The keys of servercfg.YAMLConfig in the pinned Dolt (libraries/doltcore/servercfg/yaml_config.go):
# a type checks a value, a dict nests, `dict`/`list` accept anything of that kind.
SCHEMA: dict[str, Any] = {
    "log_level": str,
    "log_format": str,
    "max_logged_query_len": int,
    "encode_logged_query": bool,
    "behavior": {
        "read_only": bool,
        "autocommit": bool,
        "persistence_behavior": str,
        "disable_client_multi_statements": bool,
        "dolt_transaction_commit": bool,
        "event_scheduler": str,
        "auto_gc_behavior": {"enable": bool, "archive_level": int, "incremental_file_size": int},
        "branch_activity_tracking": bool,
    },
    "user": {"name": str, "password": str},
    "listener": {
        "host": str,
        "port": int,
        "max_connections": int,
        "back_log": int,
        "max_connections_timeout_millis": int,
        "read_timeout_millis": int,
        "write_timeout_millis": int,
        "tls_key": str,
        "tls_cert": str,
        "ca_cert": str,
        "require_secure_transport": bool,
        "require_client_cert": bool,
        "allow_cleartext_passwords": bool,
        "socket": str,
    },
    "performance": {"query_parallelism": int},
    "data_dir": str,
    "cfg_dir": str,
    "remotesapi": {"port": int, "read_only": bool},
    "mcp_server": {"port": int, "user": str, "password": str, "database": str},
    "privilege_file": str,
    "branch_control_file": str,
    "user_session_vars": list,
    "system_variables": dict,
    "jwks": list,
    "golden_mysql_conn": str,
    "metrics": {
        "labels": dict,
        "host": str,
        "port": int,
        "tls_cert": str,
        "tls_key": str,
        "tls_ca": str,
        "jwks": dict,
        "jwt_required_for_localhost": bool,
    },
    "cluster": dict,
}

# Keys of the file that follow a setting of ours; an override would make the two disagree.
OWNED: dict[tuple[str, ...], str] = {
    ("listener", "host"): "dolt.host (GT_DOLT_HOST)",
    ("listener", "port"): "the town's port (--port or dolt.port; docs/gastown.md)",
    ("listener", "socket"): "nothing: gt-dolt never opens a unix socket (Dolt puts it in /tmp)",
    ("data_dir",): "nothing: the data dir is always the town's .dolt-data",
    ("log_level",): "dolt.log_level (GT_DOLT_LOGLEVEL)",
    ("metrics", "host"): "dolt.metrics_port (its host follows dolt.host's network rule)",
    ("metrics", "port"): "dolt.metrics_port",
    ("cluster",): "dolt.cluster",
}
WHOLE_SECONDS = {("listener", "read_timeout_millis"), ("listener", "write_timeout_millis")}


def idle_reclaim_ms(settings: DoltSettings) -> int:
    """The listener's read timeout: what closes an idle connection (and cuts a longer statement)."""
    return settings.wait_timeout * 1000 if settings.wait_timeout else NET_TIMEOUT_MS


def defaults(settings: DoltSettings, town: Town) -> dict[str, Any]:
    tree: dict[str, Any] = {
        "log_level": settings.log_level,
        "log_format": "text",
        "behavior": {
            "read_only": False,
            "autocommit": True,
            "dolt_transaction_commit": False,
            "auto_gc_behavior": {"enable": True, "archive_level": 1},
        },
        "listener": {
            "host": settings.host,
            "port": settings.port,
            "max_connections": MAX_CONNECTIONS,
            "read_timeout_millis": idle_reclaim_ms(settings),
            "write_timeout_millis": NET_TIMEOUT_MS,
        },
        "data_dir": str(town.data_dir),
    }
    tree["system_variables"] = {"secure_file_priv": str(town.sql_files_dir)}
    if settings.metrics_port:
        open_to_network = settings.is_loopback or settings.allow_passwordless_bind
        tree["metrics"] = {"host": settings.host if open_to_network else "127.0.0.1", "port": settings.metrics_port}
    return tree


def _check(tree: Mapping[str, Any], schema: Mapping[str, Any], path: tuple[str, ...]) -> None:
    for key, value in tree.items():
        here = (*path, str(key))
        name = "dolt.server." + ".".join(here)
        if here in OWNED:
            raise ConfigError(f"{name} cannot be overridden: it is set from {OWNED[here]}; remove it from dolt.server")
        if key not in schema:
            raise ConfigError(
                f"{name} is not a key the pinned Dolt knows (it would refuse to start); "
                f"known keys here: {', '.join(sorted(schema))}"
            )
        kind = schema[key]
        if isinstance(kind, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} must be a mapping of {', '.join(sorted(kind))}")
            _check(value, kind, here)
            continue
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{name} must be {kind.__name__ if kind is not str else 'text'}, not {value!r}")
        if here in WHOLE_SECONDS and value % 1000:
            raise ConfigError(f"{name} must be whole seconds (a multiple of 1000): Dolt refuses {value}")


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto a copy of `base`."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build(settings: DoltSettings, town: Town) -> dict[str, Any]:
    """The config tree for this town: defaults, the validated dolt.server overrides, the cluster."""
    from ..cluster.cluster import cluster_of, dolt_section

    _check(settings.server, SCHEMA, ())
    tree = merge(defaults(settings, town), settings.server)
    config = cluster_of(settings)
    if config is not None:
        tree["cluster"] = dolt_section(config)
        if config.ack_writes_timeout:
            tree["system_variables"]["dolt_cluster_ack_writes_timeout_secs"] = config.ack_writes_timeout
    return tree


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def _key(key: Any) -> str:
    text = str(key)
    return text if text.isidentifier() and text.isascii() else json.dumps(text)


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for the mappings, lists and scalars of a Dolt config."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines += [f"{pad}{_key(key)}:", to_yaml(item, indent + 1)]
            else:
                lines.append(f"{pad}{_key(key)}: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and item:
                first, *rest = to_yaml(item, indent + 1).splitlines()
                lines += [f"{pad}- {first.strip()}", *rest]
            else:
                lines.append(f"{pad}- {_inline(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def write_config(town: Town, tree: Mapping[str, Any]) -> None:
    """Write the config each start would run with; an identical file of ours is left as it is."""
    text = "# Written by gastown-tasks at every start; edit dolt.server in invoke.yaml instead.\n"
    data = (text + to_yaml(tree) + "\n").encode()
    try:
        same = safefs.read_bytes(town.config_file, len(data) + 1, root=town.root) == data
        if same and stat.S_IMODE(os.lstat(town.config_file).st_mode) == CONFIG_MODE:
            return
    except (GastownError, OSError):
        pass  # planted, unreadable: the atomic write below replaces it (or says why it cannot)
    safefs.write_atomic(town.config_file, data, mode=CONFIG_MODE, root=town.root)
