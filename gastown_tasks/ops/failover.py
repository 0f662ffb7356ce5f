"""Role changes in a Dolt cluster: demote a primary, promote a standby, never losing silently.

A role change is `CALL dolt_assume_cluster_role`: it kills every other connection and taints the
calling one.  Promoting a standby while the old primary still holds unreplicated writes discards
them when it rejoins, so `failover` refuses while the primary is alive and not demoted, while a
peer cannot be known (it refuses our login, answers but is no member, or cannot be read), or while
this standby may lag; `--force` goes past only a peer that does not answer at all, saying what it
may lose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import sqlclient
from .cluster import ClusterConfig, Echo, Role, peer_state, replication_state
from .errors import AccessDenied, ClusterError, GastownError, SqlFailure
from .settings import DoltSettings


def _assume(target: DoltSettings, role: Role, epoch: int) -> None:
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
        _assume(target, "standby", new_epoch)
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
    """This standby becomes the primary at an epoch higher than any seen; every step said."""
    mine = replication_state(target)
    echo(f"this server is {mine['role']} at epoch {mine['epoch']}")
    if mine["role"] == "primary":
        raise ClusterError("this server is already the primary; nothing to fail over")
    highest = int(mine["epoch"] or 0)
    losses: list[str] = []
    for peer in config.peers:
        where = f"{peer.host}:{peer.sql_port}"
        try:
            state = peer_state(settings, peer)
        except AccessDenied as exc:
            raise ClusterError(
                f"peer {peer.name} ({where}) answers but refuses our login ({exc}): it is alive and may still be "
                "the primary, so not even --force promotes this server; give both servers the same "
                "dolt.password (or stop that one on its host), then fail over"
            ) from None
        except SqlFailure as exc:
            if exc.silent:
                echo(f"peer {peer.name} ({where}) does not answer")
                losses.append(f"whatever {peer.name} had not replicated before it went away")
            else:
                echo(f"peer {peer.name} ({where}) answers but cannot be read: {exc}")
                losses.append(f"whatever {peer.name} had not replicated (it may be alive and the primary)")
            continue
        highest = max(highest, int(state["epoch"] or 0))
        echo(f"peer {peer.name} is {state['role']} at epoch {state['epoch']}")
        if state["role"] == "primary":
            lag = _worst_lag(state)
            behind = f"; this standby is {lag} ms behind it" if lag else ""
            if not force:
                raise ClusterError(
                    f"peer {peer.name} is alive and still the primary{behind}: demote it first (on it: gt-dolt "
                    "demote), then fail over; --force would discard its unreplicated writes when it rejoins"
                )
            losses.append(f"every write {peer.name} had not replicated{behind}, discarded when it rejoins")
    if losses and not force:
        raise ClusterError(
            "cannot know that this standby has every write: " + "; ".join(losses) + ". Bring the primary back "
            "and demote it, or accept the loss with: gt-dolt failover --force"
        )
    new_epoch = highest + 1
    if losses:
        echo("--force: this failover may lose " + "; ".join(losses))
    echo(f"assuming the primary role at epoch {new_epoch}")
    _assume(target, "primary", new_epoch)
    after = replication_state(target)
    if after["role"] != "primary":
        raise ClusterError(f"this server reports {after['role']} at epoch {after['epoch']} after the role change")
    echo(f"this server is now the primary at epoch {after['epoch']}; clients must reconnect")
    return new_epoch


def _worst_lag(primary: Mapping[str, Any]) -> int | None:
    rows = primary.get("replication", [])
    lags = [r["replication_lag_millis"] for r in rows if r.get("replication_lag_millis") is not None]
    return max(lags) if lags else None
