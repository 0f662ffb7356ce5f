"""Dolt's own cluster replication: its configuration, the server's own Dolt root, its state.

Configured under `dolt.cluster` (this server's bootstrap role and epoch, its remotesapi port, its
peers); `start` writes Dolt's `cluster:` section into the managed config.  A clustered server gets
its own DOLT_ROOT_PATH inside the town (`.dolt-root`): Dolt persists the role and epoch there, and
two servers sharing a root both come up `detected_broken_config`.  `dolt_cluster_ack_writes_timeout_secs`
waits once per outage, then stops waiting until the standby catches up: it narrows the loss
window, it is not synchronous replication (docs/cluster.md).  Role changes: ops/failover.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from . import safefs, sqlclient
from .errors import ClusterError, ConfigError
from .settings import DoltSettings, normalize_host, parse_port
from .town import Town

Role = Literal["primary", "standby"]
Echo = Callable[[str], None]
LAG_WARN_MS = 5000


class Peer(NamedTuple):
    name: str
    host: str
    remotesapi_port: int
    sql_port: int | None  # to ask the peer its role (failover, doctor); optional

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


class ClusterConfig(NamedTuple):
    role: Role
    epoch: int
    remotesapi_port: int
    remotesapi_host: str
    peers: tuple[Peer, ...]
    ack_writes_timeout: int  # dolt_cluster_ack_writes_timeout_secs, 0-60


def _bad(key: str, value: Any, rule: str) -> ConfigError:
    return ConfigError(f"invalid dolt.cluster.{key} {value!r}: {rule} (see docs/cluster.md)")


def _port(key: str, value: Any) -> int:
    port = parse_port(value)
    if port is None:
        raise _bad(key, value, "a port from 1 to 65535")
    return port


def _count(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise _bad(key, value, f"a whole number from {low} to {high}")
    number = int(str(value).strip())
    if not low <= number <= high:
        raise _bad(key, value, f"a whole number from {low} to {high}")
    return number


def parse_cluster(tree: Mapping[str, Any], settings_host: str) -> ClusterConfig | None:
    """dolt.cluster as a typed value; None when the town is not clustered."""
    if not tree:
        return None
    known = {"role", "epoch", "remotesapi_port", "remotesapi_host", "standbys", "ack_writes_timeout"}
    unknown = sorted(set(tree) - known)
    if unknown:
        raise _bad(unknown[0], tree[unknown[0]], f"not a key; use {', '.join(sorted(known))}")
    role = str(tree.get("role", "")).strip().lower()
    if role not in ("primary", "standby"):
        raise _bad("role", tree.get("role"), "primary or standby (this server's role when it first starts)")
    peers_raw = tree.get("standbys")
    if not isinstance(peers_raw, list) or not peers_raw:
        raise _bad("standbys", peers_raw, "a list of the other servers: name, host, remotesapi_port (and sql_port)")
    peers = []
    for i, raw in enumerate(peers_raw):
        if not isinstance(raw, Mapping):
            raise _bad(f"standbys[{i}]", raw, "a mapping with name, host, remotesapi_port, sql_port")
        name = str(raw.get("name", "")).strip()
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise _bad(f"standbys[{i}].name", raw.get("name"), "letters, digits, _ or -")
        host = normalize_host(raw.get("host", ""))
        if host is None:
            raise _bad(f"standbys[{i}].host", raw.get("host"), "the peer's address")
        sql_port = raw.get("sql_port")
        peers.append(
            Peer(
                name,
                host,
                _port(f"standbys[{i}].remotesapi_port", raw.get("remotesapi_port")),
                None if sql_port in (None, "") else _port(f"standbys[{i}].sql_port", sql_port),
            )
        )
    remotesapi_host = normalize_host(tree.get("remotesapi_host") or settings_host)
    if remotesapi_host is None:
        raise _bad("remotesapi_host", tree.get("remotesapi_host"), "an address of this machine")
    return ClusterConfig(
        role=role,  # type: ignore[arg-type]
        epoch=_count("epoch", tree.get("epoch", 1), 1, 10**9),
        remotesapi_port=_port("remotesapi_port", tree.get("remotesapi_port")),
        remotesapi_host=remotesapi_host,
        peers=tuple(peers),
        ack_writes_timeout=_count("ack_writes_timeout", tree.get("ack_writes_timeout", 0), 0, 60),
    )


def cluster_of(settings: DoltSettings) -> ClusterConfig | None:
    return parse_cluster(settings.cluster, settings.host)


def dolt_section(config: ClusterConfig) -> dict[str, Any]:
    """Dolt's own `cluster:` section of the server config."""
    return {
        "standby_remotes": [
            {"name": p.name, "remote_url_template": f"http://{p.url_host}:{p.remotesapi_port}/{{database}}"}
            for p in config.peers
        ],
        "bootstrap_role": config.role,
        "bootstrap_epoch": config.epoch,
        "remotesapi": {"address": config.remotesapi_host, "port": config.remotesapi_port},
    }


def prepare_root(town: Town, global_config: Mapping[str, Any]) -> dict[str, str]:
    """The server's own DOLT_ROOT_PATH in the town, seeded once with identity and telemetry off.

    Dolt keeps the role and epoch in its config_global.json: never rewritten once it exists.
    """
    config = town.dolt_root / ".dolt" / "config_global.json"
    safefs.ensure_private_dir(town.dolt_root, root=town.root)
    safefs.ensure_private_dir(config.parent, root=town.root)
    if safefs.read_bytes(config, 1024 * 1024, root=town.root) is None:
        seed = {key: str(value) for key, value in global_config.items() if key in ("user.name", "user.email")}
        seed.update({"metrics.disabled": "true", "versioncheck.disabled": "true"})
        safefs.write_atomic(config, json.dumps(seed).encode(), mode=0o600, root=town.root)
    return {"DOLT_ROOT_PATH": str(town.dolt_root)}


def user_global_config() -> dict[str, Any]:
    root = os.environ.get("DOLT_ROOT_PATH") or os.path.expanduser("~")
    try:
        with open(os.path.join(root, ".dolt", "config_global.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


# --- reading a server's cluster state -----------------------------------------------------------


def replication_state(target: DoltSettings) -> dict[str, Any]:
    """Role, epoch and Dolt's replication rows of the server at `target`."""

    import pymysql

    def work(conn: Any) -> dict[str, Any]:
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT @@GLOBAL.dolt_cluster_role, @@GLOBAL.dolt_cluster_role_epoch")
            except pymysql.err.MySQLError as exc:
                if "unknown system variable" in str(exc).lower():
                    return {"role": None, "epoch": None, "replication": []}  # not a clustered server
                raise
            role, epoch = cur.fetchone()
            rows: list[dict[str, Any]] = []
            if role:
                cur.execute(
                    "SELECT `database`, standby_remote, role, epoch, replication_lag_millis, last_update, "
                    "current_error FROM dolt_cluster.dolt_cluster_status ORDER BY `database`, standby_remote"
                )
                names = (
                    "database",
                    "standby_remote",
                    "role",
                    "epoch",
                    "replication_lag_millis",
                    "last_update",
                    "current_error",
                )
                for row in cur.fetchall():
                    item = dict(zip(names, row, strict=True))
                    if item["last_update"] is not None:
                        item["last_update"] = str(item["last_update"])
                    rows.append(item)
        return {"role": role or None, "epoch": int(epoch) if epoch not in (None, "") else None, "replication": rows}

    return sqlclient.call(target, work, what="read the cluster state")


def peer_target(settings: DoltSettings, peer: Peer) -> DoltSettings:
    if peer.sql_port is None:
        raise ClusterError(
            f"dolt.cluster.standbys: {peer.name} has no sql_port; gt-dolt needs it to ask that "
            "server its role (add sql_port: <its SQL port>)"
        )
    return settings.with_overrides(host=peer.host, port=peer.sql_port)


MEMBER_ROLES = ("primary", "standby")


def peer_state(settings: DoltSettings, peer: Peer) -> dict[str, Any]:
    """The peer's cluster state; raises AccessDenied or SqlFailure (whose `silent` says nothing
    answered at all), and ClusterError for a peer that answers but is not a member of the cluster
    (a wrong sql_port): none of these may be read as "the peer is gone"."""
    state = replication_state(peer_target(settings, peer))
    if state["role"] not in MEMBER_ROLES:
        raise ClusterError(
            f"peer {peer.name} at {peer.host}:{peer.sql_port} answers but is not a member of this cluster "
            f"(its role: {state['role'] or 'none'}): check its sql_port in dolt.cluster, and its own cluster config"
        )
    return state


def peer_databases(settings: DoltSettings, peer: Peer) -> list[str]:
    return sqlclient.call(peer_target(settings, peer), sqlclient.show_databases, what=f"list {peer.name}'s databases")


def cluster_line(cluster: Mapping[str, Any]) -> str:
    lagging = [r for r in cluster.get("replication", []) if (r.get("replication_lag_millis") or 0) > 0]
    errors = [r for r in cluster.get("replication", []) if r.get("current_error")]
    said = f"  cluster:    {cluster.get('role')} at epoch {cluster.get('epoch')}"
    if errors:
        said += f", replication failing: {errors[0]['current_error'][:80]}"
    elif lagging:
        worst = max(r["replication_lag_millis"] for r in lagging)
        said += f", a standby is {worst} ms behind (acknowledged writes wait once per outage only)"
    return said


def describe(state: Mapping[str, Any]) -> list[str]:
    lines = [f"role {state['role']} at epoch {state['epoch']}"]
    for row in state["replication"]:
        lag = "lag unknown" if row["replication_lag_millis"] is None else f"lag {row['replication_lag_millis']} ms"
        error = f", error: {row['current_error']}" if row["current_error"] else ""
        lines.append(f"  {row['database']} -> {row['standby_remote']}: {lag}, last update {row['last_update']}{error}")
    if any((row["replication_lag_millis"] or 0) > 0 for row in state["replication"]):
        lines.append(
            "  note: a standby is behind; acknowledged writes wait for it once per outage, then not until "
            "it has caught up (docs/cluster.md)"
        )
    return lines
