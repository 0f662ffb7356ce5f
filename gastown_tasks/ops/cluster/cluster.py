"""Dolt's own cluster replication: its configuration, the server's own Dolt root, its state.

Configured under `dolt.cluster` (this server's bootstrap role and epoch, its remotesapi port, its
peers); `start` writes Dolt's `cluster:` section into the managed config.  A clustered server gets
its own DOLT_ROOT_PATH inside the town (`.dolt-root`): Dolt persists the role and epoch there, and
two servers sharing a root both come up `detected_broken_config`.  `dolt_cluster_ack_writes_timeout_secs`
waits once per outage, then stops waiting until the standby catches up: it narrows the loss
window, it is not synchronous replication (docs/cluster.md).  Role changes: ops/cluster/failover.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from ..errors import AccessDenied, ConfigError, SqlFailure
from ..files import safefs
from ..settings import DoltSettings, normalize_host, parse_bool, parse_count, parse_number, parse_port
from ..sql import sqlclient
from ..town import Town

Role = Literal["primary", "standby"]
Echo = Callable[[str], None]
LAG_WARN_MS = 5000
BROKEN = "detected_broken_config"  # Dolt's role for a server that saw two primaries at one epoch
FENCE_TIMEOUT = 60.0


class Peer(NamedTuple):
    name: str
    host: str
    remotesapi_port: int
    sql_port: int  # to ask the peer its role and epoch (fencing, failover, doctor)

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def where(self) -> str:
        return f"{self.url_host}:{self.sql_port}"


class ClusterConfig(NamedTuple):
    role: Role
    epoch: int
    remotesapi_port: int
    remotesapi_host: str
    peers: tuple[Peer, ...]
    ack_writes_timeout: int  # dolt_cluster_ack_writes_timeout_secs, 0-60
    fence_timeout: float = FENCE_TIMEOUT  # how long a returning primary's start waits for every peer
    take_writes_alone: bool = False  # after fence_timeout with every unproven peer silent: take writes


def _bad(key: str, value: Any, rule: str) -> ConfigError:
    return ConfigError(f"invalid dolt.cluster.{key} {value!r}: {rule} (see docs/cluster.md)")


def _port(key: str, value: Any) -> int:
    port = parse_port(value)
    if port is None:
        raise _bad(key, value, "a port from 1 to 65535")
    return port


def _count(key: str, value: Any, low: int, high: int) -> int:
    number = parse_count(value, low, high)
    if number is None:
        raise _bad(key, value, f"a whole number from {low} to {high}")
    return number


def _seconds(key: str, value: Any, high: float) -> float:
    seconds = parse_number(value, 0, high)
    if seconds is None:
        raise _bad(key, value, f"a number of seconds from 0 to {high:g}")
    return seconds


KEYS = (
    "role",
    "epoch",
    "remotesapi_port",
    "remotesapi_host",
    "standbys",
    "ack_writes_timeout",
    "fence_timeout",
    "take_writes_alone",
)


def parse_cluster(tree: Mapping[str, Any], settings: DoltSettings) -> ClusterConfig | None:
    """dolt.cluster as a typed value, checked against this server's own address; None when the
    town is not clustered."""
    if not tree:
        return None
    unknown = sorted(set(tree) - set(KEYS))
    if unknown:
        raise _bad(unknown[0], tree[unknown[0]], f"not a key; use {', '.join(sorted(KEYS))}")
    role = str(tree.get("role", "")).strip().lower()
    if role not in ("primary", "standby"):
        raise _bad("role", tree.get("role"), "primary or standby (this server's role when it first starts)")
    peers_raw = tree.get("standbys")
    if not isinstance(peers_raw, list) or not peers_raw:
        raise _bad("standbys", peers_raw, "a list of the other servers: name, host, remotesapi_port, sql_port")
    peers = []
    for i, raw in enumerate(peers_raw):
        if not isinstance(raw, Mapping):
            raise _bad(f"standbys[{i}]", raw, "a mapping with name, host, remotesapi_port, sql_port")
        name = str(raw.get("name", "")).strip()
        if not name or not name.replace("_", "").replace("-", "").isalnum() or not name.isascii():
            raise _bad(f"standbys[{i}].name", raw.get("name"), "letters, digits, _ or -")
        host = normalize_host(raw.get("host", ""))
        if host is None:
            raise _bad(f"standbys[{i}].host", raw.get("host"), "the peer's address")
        if raw.get("sql_port") in (None, ""):
            raise _bad(
                f"standbys[{i}].sql_port",
                raw.get("sql_port"),
                "the peer's SQL port: a returning primary takes writes only once every peer has told it its "
                "epoch there, and failover and doctor ask it too",
            )
        peers.append(
            Peer(
                name,
                host,
                _port(f"standbys[{i}].remotesapi_port", raw.get("remotesapi_port")),
                _port(f"standbys[{i}].sql_port", raw.get("sql_port")),
            )
        )
    remotesapi_host = normalize_host(tree.get("remotesapi_host") or settings.host)
    if remotesapi_host is None:
        raise _bad("remotesapi_host", tree.get("remotesapi_host"), "an address of this machine")
    alone = parse_bool(tree.get("take_writes_alone", False))
    if alone is None:
        raise _bad("take_writes_alone", tree.get("take_writes_alone"), "true or false")
    config = ClusterConfig(
        role=role,  # type: ignore[arg-type]
        epoch=_count("epoch", tree.get("epoch", 1), 1, 10**9),
        remotesapi_port=_port("remotesapi_port", tree.get("remotesapi_port")),
        remotesapi_host=remotesapi_host,
        peers=tuple(peers),
        ack_writes_timeout=_count("ack_writes_timeout", tree.get("ack_writes_timeout", 0), 0, 60),
        fence_timeout=_seconds("fence_timeout", tree.get("fence_timeout", FENCE_TIMEOUT), 3600),
        take_writes_alone=alone,
    )
    refuse_impossible(config, settings)
    return config


class _Machine(NamedTuple):
    """Where a host is: this machine (any spelling of a local address), or the addresses it resolves to."""

    local: bool
    addresses: frozenset[str]

    def same(self, other: _Machine) -> bool:
        return (self.local and other.local) or bool(self.addresses & other.addresses)


def _machine(host: str) -> _Machine:
    from ..host.addresses import addresses_of, is_local_host

    if is_local_host(host):
        return _Machine(True, frozenset())
    return _Machine(False, frozenset(addresses_of(host)) or frozenset({host.lower()}))


def refuse_impossible(config: ClusterConfig, settings: DoltSettings) -> None:
    """Configurations that can never work are refused before anything starts (exit 2): a standby
    entry that is this server (it would replicate to itself: Dolt's detected_broken_config, kept
    across restarts), two entries for one server, a port used twice."""
    if config.remotesapi_port == settings.port:
        raise _bad(
            "remotesapi_port",
            config.remotesapi_port,
            f"it is also this server's SQL port (dolt.port {settings.port}); replication needs a port of its own",
        )
    names: dict[str, int] = {}
    for i, peer in enumerate(config.peers):
        other = names.setdefault(peer.name.lower(), i)
        if other != i:
            raise _bad(f"standbys[{i}].name", peer.name, f"standbys[{other}] has that name already; give each its own")
        if peer.remotesapi_port == peer.sql_port:
            raise _bad(
                f"standbys[{i}]",
                peer.name,
                f"its remotesapi_port and sql_port are both {peer.sql_port}; they are two different ports",
            )
    machines = [_machine(peer.host) for peer in config.peers]
    here = _machine(settings.host)
    ours = {settings.port: "SQL port (dolt.port)", config.remotesapi_port: "remotesapi_port"}
    for i, (peer, where) in enumerate(zip(config.peers, machines, strict=True)):
        shared = sorted({peer.remotesapi_port, peer.sql_port} & set(ours))
        if shared and where.same(here):
            what = "an address of this machine" if where.local else "this server's host"
            raise _bad(
                f"standbys[{i}]",
                f"{peer.name} at {peer.host}",
                f"that is this server itself: {peer.host} is {what} and port {shared[0]} is this server's "
                f"{ours[shared[0]]}; list only the other servers",
            )
        for j in range(i):
            if machines[j].same(where) and {peer.remotesapi_port, peer.sql_port} & {
                config.peers[j].remotesapi_port,
                config.peers[j].sql_port,
            }:
                raise _bad(
                    f"standbys[{i}]",
                    f"{peer.name} at {peer.host}",
                    f"standbys[{j}] ({config.peers[j].name} at {config.peers[j].host}) is the same server: "
                    "the same machine and port; list each server once",
                )


def cluster_of(settings: DoltSettings) -> ClusterConfig | None:
    return parse_cluster(settings.cluster, settings)


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


STATUS_COLUMNS = (
    "database",
    "standby_remote",
    "role",
    "epoch",
    "replication_lag_millis",
    "last_update",
    "current_error",
)


def replication_state(target: DoltSettings) -> dict[str, Any]:
    """Role, epoch, whether it takes writes, its server_uuid, and Dolt's replication rows of the
    server at `target` (role None: not a clustered server)."""

    import pymysql

    def work(conn: Any) -> dict[str, Any]:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.read_only, @@server_uuid")
            read_only, uuid = cur.fetchone()
            try:
                cur.execute("SELECT @@GLOBAL.dolt_cluster_role, @@GLOBAL.dolt_cluster_role_epoch")
            except pymysql.err.MySQLError as exc:
                if "unknown system variable" in str(exc).lower():
                    plain = {"role": None, "epoch": None, "writable": not read_only, "server_uuid": uuid}
                    return {**plain, "replication": []}  # not a clustered server
                raise
            role, epoch = cur.fetchone()
            rows: list[dict[str, Any]] = []
            if role:
                cur.execute(
                    f"SELECT {', '.join(f'`{c}`' for c in STATUS_COLUMNS)} FROM dolt_cluster.dolt_cluster_status "
                    "ORDER BY `database`, standby_remote"
                )
                for row in cur.fetchall():
                    item = dict(zip(STATUS_COLUMNS, row, strict=True))
                    if item["last_update"] is not None:
                        item["last_update"] = str(item["last_update"])
                    rows.append(item)
        return {
            "role": role or None,
            "epoch": int(epoch) if epoch not in (None, "") else None,
            "writable": role in (None, "primary") and not read_only,
            "server_uuid": uuid,
            "replication": rows,
        }

    return sqlclient.call(target, work, what="read the cluster state")


def peer_target(settings: DoltSettings, peer: Peer) -> DoltSettings:
    return settings.with_overrides(host=peer.host, port=peer.sql_port)


FROZEN = (
    "does not answer in time (it takes the connection but never replies: frozen or overloaded, it may be alive "
    "and even the primary)"
)
PeerKind = Literal["standby", "primary", "broken", "self", "silent", "unreadable", "denied", "foreign"]


class PeerView(NamedTuple):
    """What one peer answered, classified once for fencing, failover and doctor."""

    peer: Peer
    kind: PeerKind
    epoch: int | None
    said: str  # what was seen, as a clause: "standby at epoch 2", "does not answer"
    state: Mapping[str, Any] | None = None

    @property
    def line(self) -> str:
        return f"peer {self.peer.name} ({self.peer.where}) {self.said}"


def view_peer(settings: DoltSettings, peer: Peer, my_uuid: str | None) -> PeerView:
    """Ask one peer its role and epoch; never raises for what the peer says or does not say."""
    try:
        state = replication_state(peer_target(settings, peer))
    except AccessDenied as exc:
        return PeerView(peer, "denied", None, f"answers but refuses our login ({exc}): it is alive")
    except SqlFailure as exc:
        if exc.silent:
            return PeerView(peer, "silent", None, "does not answer")
        if exc.kind == "timeout":  # a frozen server: the kernel takes the connection, nothing replies
            return PeerView(peer, "unreadable", None, FROZEN)
        return PeerView(peer, "unreadable", None, f"answers but cannot be read: {exc}")
    role, epoch = state["role"], state["epoch"]
    if my_uuid and state.get("server_uuid") == my_uuid:
        said = "is this server itself (the same server_uuid): dolt.cluster.standbys must name the other servers"
        return PeerView(peer, "self", epoch, said, state)
    if role == "primary":
        return PeerView(peer, "primary", epoch, f"is the primary at epoch {epoch}", state)
    if role == "standby":
        return PeerView(peer, "standby", epoch, f"is a standby at epoch {epoch}", state)
    if role == BROKEN:
        return PeerView(
            peer,
            "broken",
            epoch,
            f"is in Dolt's detected_broken_config at epoch {epoch} (it saw two primaries at one epoch; it refuses "
            "writes and replication)",
            state,
        )
    return PeerView(
        peer,
        "foreign",
        None,
        f"answers but is not a member of this cluster (its role: {role or 'none'}): check its sql_port in "
        "dolt.cluster, and its own cluster config",
        state,
    )


def survey(settings: DoltSettings, config: ClusterConfig, my_uuid: str | None) -> list[PeerView]:
    return [view_peer(settings, peer, my_uuid) for peer in config.peers]


def peer_databases(settings: DoltSettings, peer: Peer) -> list[str]:
    return sqlclient.call(peer_target(settings, peer), sqlclient.show_databases, what=f"list {peer.name}'s databases")


def role_words(state: Mapping[str, Any]) -> str:
    """'standby at epoch 2, read-only': a server's role, epoch and whether it takes writes."""
    said = f"{state.get('role')} at epoch {state.get('epoch')}"
    said += ", takes writes" if state.get("writable") else ", read-only"
    if state.get("fenced"):
        said += (
            " (fenced: it was the primary, and takes writes only once every peer has answered with no higher "
            "epoch; see gt-dolt doctor)"
        )
    elif state.get("role") == BROKEN:
        said += " (Dolt saw two primaries at one epoch; see gt-dolt doctor for the repair)"
    return said


def cluster_line(cluster: Mapping[str, Any]) -> str:
    lagging = [r for r in cluster.get("replication", []) if (r.get("replication_lag_millis") or 0) > 0]
    errors = [r for r in cluster.get("replication", []) if r.get("current_error")]
    said = f"  cluster:    {role_words(cluster)}"
    if errors:
        said += f", replication failing: {errors[0]['current_error'][:80]}"
    elif lagging:
        worst = max(r["replication_lag_millis"] for r in lagging)
        said += f", a standby is {worst} ms behind (acknowledged writes wait once per outage only)"
    return said


def describe(state: Mapping[str, Any]) -> list[str]:
    lines = [f"role {role_words(state)}"]
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
