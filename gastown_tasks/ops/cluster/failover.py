"""Role changes in a Dolt cluster: demote a primary, promote a standby, never losing silently.

A role change is `CALL dolt_assume_cluster_role`: it kills every other connection and taints the
calling one.  Promoting a standby while the old primary still holds unreplicated writes discards
them when it rejoins, so `failover` refuses while the primary is alive and not demoted, or while a
peer may hold writes this server lacks (it does not answer, cannot be read, or is in
detected_broken_config): `--force` goes past those, saying what it may lose.  Never, even with
`--force`, past a peer that refuses our login, answers but is no member, or is this server itself.
A broken server (detected_broken_config) may be failed over too: that is the repair doctor names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ClusterError, GastownError, Remedy
from ..settings import DoltSettings
from ..sql import sqlclient
from .cluster import BROKEN, ClusterConfig, Echo, Role, replication_state, role_words, survey


def assume_role(target: DoltSettings, role: Role, epoch: int) -> None:
    """CALL dolt_assume_cluster_role; the calling connection is unusable afterwards (Dolt taints it)."""

    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("CALL dolt_assume_cluster_role(%s, %s)", (role, epoch))

    sqlclient.call(target, work, what=f"assume the {role} role at epoch {epoch}", timeout=30)


def demote_primary(target: DoltSettings, epoch: int | None, echo: Echo) -> int:
    """This primary becomes a standby (Dolt waits, about 10 s at most, for the standbys to catch up)."""
    state = replication_state(target)
    if state["role"] != "primary":
        raise ClusterError(
            f"this server is {state['role']} at epoch {state['epoch']}, not the primary; nothing to demote"
        )
    new_epoch = epoch if epoch is not None else int(state["epoch"] or 0) + 1
    if new_epoch <= int(state["epoch"] or 0):
        raise ClusterError(
            f"the epoch must grow: this server is at epoch {state['epoch']}; give --epoch "
            f"{int(state['epoch'] or 0) + 1} or more"
        )
    echo(
        f"demoting this primary (epoch {state['epoch']}) to standby at epoch {new_epoch}: Dolt first waits for "
        "the standbys to have every write"
    )
    try:
        assume_role(target, "standby", new_epoch)
    except GastownError as exc:
        raise ClusterError(
            f"{exc}; this server is still the primary (nothing was lost): bring the standbys back, then demote again"
        ) from None
    after = replication_state(target)
    echo(f"this server is now {after['role']} at epoch {after['epoch']}; the other connections were closed")
    return new_epoch


def promote_standby(
    settings: DoltSettings, target: DoltSettings, config: ClusterConfig, force: bool, echo: Echo
) -> int:
    """This standby (or broken server) becomes the primary at an epoch higher than any seen; every
    step said, and every peer's answer named in the refusal it causes."""
    mine = replication_state(target)
    echo(f"this server is {role_words(mine)}")
    if mine["role"] == "primary":
        raise ClusterError("this server is already the primary; nothing to fail over")
    if mine["role"] not in ("standby", BROKEN):
        raise ClusterError("this server is in no cluster (Dolt reports no cluster role); nothing to fail over")
    epochs = [int(mine["epoch"] or 0)]
    losses: list[str] = []
    for view in survey(settings, config, mine.get("server_uuid")):
        echo(view.line)
        name = view.peer.name
        if view.kind == "self":
            raise ClusterError(f"{view.line}; fix dolt.cluster.standbys, then fail over (not even --force asks itself)")
        if view.kind == "denied":
            raise ClusterError(
                f"{view.line} and may still be the primary, so not even --force promotes this server; give both "
                "servers the same dolt.password (or stop that one on its host), then fail over"
            )
        if view.kind == "foreign":
            raise ClusterError(f"{view.line}; not even --force promotes past a server that may hide the primary")
        if view.epoch is not None:
            epochs.append(view.epoch)
        if view.kind == "silent":
            losses.append(f"whatever {name} had not replicated before it went away")
        elif view.kind == "unreadable":
            losses.append(f"whatever {name} had not replicated (it may be alive and the primary)")
        elif view.kind == "broken":
            losses.append(
                f"whatever {name} wrote as a primary and had not replicated (it is in detected_broken_config; it "
                "follows this server as a standby once this one is the primary)"
            )
        elif view.kind == "primary":
            lag = _worst_lag(view.state or {})
            behind = f"; this standby is {lag} ms behind it" if lag else ""
            if not force:
                raise ClusterError(
                    f"peer {name} is alive and still the primary{behind}: demote it first (on it: gt-dolt "
                    "demote), then fail over; --force would discard its unreplicated writes when it rejoins"
                )
            losses.append(f"every write {name} had not replicated{behind}, discarded when it rejoins")
    if losses and not force:
        raise ClusterError(
            "cannot know that this standby has every write: " + "; ".join(losses) + ". Bring the primary back "
            "and demote it, or accept the loss with: gt-dolt failover --force"
        )
    new_epoch = max(epochs) + 1
    if losses:
        echo("--force: this failover may lose " + "; ".join(losses))
    echo(f"assuming the primary role at epoch {new_epoch}")
    assume_role(target, "primary", new_epoch)
    after = replication_state(target)
    if after["role"] == BROKEN:
        raise ClusterError(
            f"this server became detected_broken_config at epoch {after['epoch']} right after the role change: "
            f"another server took the primary role at that epoch too; {Remedy.DOCTOR}"
        )
    if after["role"] != "primary":
        raise ClusterError(f"this server reports {after['role']} at epoch {after['epoch']} after the role change")
    echo(f"this server is now the primary at epoch {after['epoch']}; clients must reconnect")
    return new_epoch


def _worst_lag(primary: Mapping[str, Any]) -> int | None:
    rows = primary.get("replication", [])
    lags = [r["replication_lag_millis"] for r in rows if r.get("replication_lag_millis") is not None]
    return max(lags) if lags else None
