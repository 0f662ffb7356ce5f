"""Fencing: a clustered server takes writes as primary only with proof that no peer holds a higher epoch.

Dolt has no leader lock (Patroni keeps one in a consensus store); a primary that comes back after
a failover it never heard of would start as primary at its old epoch and take writes that are
discarded when the new primary replicates to it.  So a server whose persisted role is primary
(or, on its first start, whose `dolt.cluster.role` is) starts as a standby at that epoch, with a
mark that it was the primary, and promotes itself to the next epoch only once every configured
peer has answered as a standby at that epoch or a lower one.  A peer at a higher epoch wins: this
server stays a standby and follows it.  A peer that does not answer leaves it read-only until the
peers answer (`start` again, or `watch`, finishes the promotion) or until someone accepts the loss
with `gt-dolt failover --force`; `dolt.cluster.take_writes_alone` trades that safety for
availability.

The mark lives beside the role, in the server's own config_global.json (`.dolt-root`): one atomic
write turns "primary at epoch E" into "standby at epoch E, fenced primary E", and Dolt keeps keys it
does not know when it rewrites the file (verified, docs/cluster.md).  The mark counts only while the
server is a standby at that very epoch: once it has promoted itself, or a primary at a higher epoch
has taken it over, the mark is stale and the next start drops it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import ClusterError, ExitCode, GastownError
from ..files import safefs
from ..polling import poll_until
from ..settings import DoltSettings
from ..town import Town
from .cluster import (
    BROKEN,
    ClusterConfig,
    Echo,
    PeerView,
    cluster_of,
    prepare_root,
    replication_state,
    survey,
    user_global_config,
)

ROLE_KEY = "sqlserver.cluster.dolt_cluster_role"
EPOCH_KEY = "sqlserver.cluster.dolt_cluster_role_epoch"
FENCE_KEY = "gastown.cluster.fenced_primary_epoch"
CONFIG_LIMIT = 1024 * 1024

SERVING, FENCED, BROKEN_CONFIG = (
    ExitCode.OK,
    ExitCode.FENCED,
    ExitCode.BROKEN_CONFIG,
)  # start's: served, read-only, broken
WAIT_UNTIL_DEADLINE = ("silent", "unreadable")  # peers that may still answer: the fence keeps asking them


class Standing(NamedTuple):
    """What a clustered server is after start: its role, and whether it takes the writes it should."""

    role: str | None
    epoch: int | None
    writable: bool
    fenced: bool
    said: str
    exit_code: int = SERVING


def _config_path(town: Town) -> Any:
    return town.dolt_root / ".dolt" / "config_global.json"


def read_root_config(town: Town) -> dict[str, str]:
    """The server's config_global.json (role, epoch, the fence mark); empty when there is none."""
    path = _config_path(town)
    data = safefs.read_bytes(path, CONFIG_LIMIT, root=town.root)
    if data is None:
        return {}
    try:
        tree = json.loads(data)
    except (ValueError, RecursionError):
        tree = None
    if not isinstance(tree, dict):
        raise ClusterError(
            f"{path} is not Dolt's JSON config: it holds this server's cluster role and epoch, so gt-dolt does "
            "not guess them; restore it from .dolt-backup/dolt-root/config_global.json, or fix it by hand"
        )
    return {str(k): str(v) for k, v in tree.items()}


def _epoch(tree: Mapping[str, str], key: str, town: Town) -> int | None:
    text = tree.get(key)
    if text is None:
        return None
    if not text.strip().isdigit():
        raise ClusterError(f"{_config_path(town)} holds {key} {text!r}, not an epoch; fix it by hand")
    return int(text)


def fenced_epoch(town: Town) -> int | None:
    """The epoch at which this server was the primary before its last start, while that start's
    fence is still open (only meaningful while the server is a standby at this epoch)."""
    return _epoch(read_root_config(town), FENCE_KEY, town)


def fence_before_start(town: Town, config: ClusterConfig) -> None:
    """With the server stopped: a primary (persisted, or bootstrapped from dolt.cluster) becomes a
    standby at its epoch, marked as the fenced primary of that epoch; a stale mark is dropped."""
    tree = read_root_config(town)
    role = tree.get(ROLE_KEY) or config.role
    epoch = _epoch(tree, EPOCH_KEY, town)
    epoch = config.epoch if epoch is None else epoch
    updated = dict(tree)
    if role == "primary":
        updated.update({ROLE_KEY: "standby", EPOCH_KEY: str(epoch), FENCE_KEY: str(epoch)})
    elif not (role == "standby" and tree.get(FENCE_KEY) == str(epoch)):
        updated.pop(FENCE_KEY, None)  # promoted since, taken over by a higher epoch, or broken: stale
    if updated != tree:
        safefs.write_atomic(_config_path(town), json.dumps(updated).encode(), mode=0o600, root=town.root)


def prepare(town: Town, settings: DoltSettings) -> dict[str, str]:
    """Everything a clustered server needs before it is spawned: its own Dolt root, fenced.  The
    environment to run it with."""
    config = cluster_of(settings)
    env = prepare_root(town, user_global_config())
    if config is not None:
        fence_before_start(town, config)
    return env


def is_fenced(town: Town, state: Mapping[str, Any]) -> bool:
    """A standby still waiting, as a former primary, for the proof that lets it take writes."""
    if state.get("role") != "standby" or state.get("epoch") is None:
        return False
    try:
        return fenced_epoch(town) == int(state["epoch"])
    except GastownError:
        return False


def annotate(town: Town, state: dict[str, Any]) -> dict[str, Any]:
    """A server's cluster state with `fenced` added (read from its Dolt root in the town)."""
    state["fenced"] = is_fenced(town, state)
    return state


# --- after the start: prove, then promote ---------------------------------------------------------


def standing_of(town: Town, state: Mapping[str, Any], note: str = "") -> Standing:
    role, epoch, writable = state.get("role"), state.get("epoch"), bool(state.get("writable"))
    extra = f"; {note}" if note else ""
    if role == "primary":
        said = f"the primary at epoch {epoch}, " + ("takes writes" if writable else "read-only (dolt.server read_only)")
        return Standing(role, epoch, writable, False, said + extra)
    if role == BROKEN:
        return Standing(
            role,
            epoch,
            False,
            False,
            f"in Dolt's detected_broken_config at epoch {epoch}: it saw two primaries at one epoch, refuses every "
            f"write, and keeps that state across restarts (in {town.dolt_root}){extra}; gt-dolt doctor names the "
            "repair",
            BROKEN_CONFIG,
        )
    said = f"a standby at epoch {epoch}, read-only: writes go to the primary{extra}"
    return Standing(role, epoch, False, False, said)


def _waiting(views: list[PeerView]) -> list[PeerView]:
    return [view for view in views if view.kind != "standby"]


def _fenced(town: Town, state: Mapping[str, Any], why: str) -> Standing:
    epoch = state.get("epoch")
    return Standing(
        "standby",
        epoch,
        False,
        True,
        f"fenced: this server was the primary at epoch {epoch}, and {why}",
        FENCED,
    )


def _silent_remedy(views: list[PeerView]) -> str:
    names = ", ".join(view.peer.name for view in views)
    them, answer = ("it", "answers") if len(views) == 1 else ("them", "answer")
    frozen = " (a frozen one: gt-dolt recover on its host)" if any(v.kind == "unreadable" for v in views) else ""
    return (
        f"so it cannot prove that no peer took over at a higher epoch. It takes writes once {names} {answer}: start "
        f"{them}{frozen}, then run gt-dolt start here again (gt-dolt watch does it by itself); or take writes "
        f"alone now, discarding whatever {names} wrote as primary: gt-dolt failover --force"
    )


def _outranked(view: PeerView, epoch: int) -> str:
    """A peer at a higher epoch took over while this server was away: it keeps the newer history."""
    said = f"{view.line}, above this server's {epoch}, so this server stays a standby"
    if view.kind == "primary":
        return (
            f"{said} and follows it (whatever it wrote as primary and had not replicated is discarded as it catches up)"
        )
    return f"{said}; no primary answers yet: make {view.peer.name} the primary (on it: gt-dolt failover)"


def _blocked(views: list[PeerView]) -> str:
    """Why a peer that answered keeps the fence shut (it will not change by waiting), or ''."""
    for view in views:
        if view.kind in ("self", "denied", "foreign"):
            return f"{view.line}: fix that, then run gt-dolt start here again"
        if view.kind == "broken":
            return (
                f"{view.line}: make one server the primary (gt-dolt failover on it; past a broken peer it needs "
                "--force), then run gt-dolt start here again"
            )
        if view.kind == "primary":
            return (
                f"{view.line}, which is not above this server's: two servers were the primary, and one of them took "
                "writes the other lacks. Keep the one whose writes matter: gt-dolt demote on the other, then "
                "gt-dolt failover on this one (or gt-dolt start here again once it is a standby)"
            )
    return ""


def settle(
    town: Town,
    settings: DoltSettings,
    port: int,
    echo: Echo,
    timeout: float | None = None,
    alone: bool = True,
) -> Standing:
    """After the server answers: a fenced former primary waits (up to dolt.cluster.fence_timeout)
    for every peer's epoch and promotes itself with proof; anything else is reported as it is.
    `alone`: at the deadline, dolt.cluster.take_writes_alone may promote past silent peers."""
    config = cluster_of(settings)
    target = settings.with_overrides(port=port)
    if config is None:
        return standing_of(town, replication_state(target))
    wait = config.fence_timeout if timeout is None else timeout
    seen: dict[str, Any] = {"views": [], "said": False}

    def round_() -> Standing | None:
        mine = replication_state(target)
        if not is_fenced(town, mine):
            return standing_of(town, mine, seen.get("followed", ""))
        views = survey(settings, config, mine.get("server_uuid"))
        seen["views"] = views
        higher = [view for view in views if view.epoch is not None and view.epoch > mine["epoch"]]
        if higher:
            seen["followed"] = _outranked(higher[0], mine["epoch"])
            return standing_of(town, mine, seen["followed"])
        blocked = _blocked(views)
        if blocked:
            return _fenced(town, mine, blocked)
        pending = _waiting(views)
        if not pending:
            return promote(town, target, mine, views, echo, alone=False)
        if not seen["said"] and wait > 0:
            seen["said"] = True
            echo(
                f"fencing: this server was the primary at epoch {mine['epoch']}; it takes writes only once every peer "
                f"has answered with no higher epoch. Waiting up to {wait:g}s for "
                + ", ".join(f"{view.peer.name} ({view.peer.where})" for view in pending)
            )
        return None

    outcome = poll_until(round_, wait, first_delay=0.005)
    if outcome is not None:
        return outcome
    mine = replication_state(target)
    if not is_fenced(town, mine):
        return standing_of(town, mine)
    pending = _waiting(seen["views"])
    if alone and config.take_writes_alone and all(view.kind == "silent" for view in pending):
        echo(
            "take_writes_alone: no answer from "
            + ", ".join(view.line for view in pending)
            + f" within {wait:g}s; taking writes alone (what they wrote as primary is discarded when they rejoin)"
        )
        return promote(town, target, mine, seen["views"], echo, alone=True)
    detail = "; ".join(view.line for view in pending) + ", "
    return _fenced(town, mine, detail + _silent_remedy(pending))


def promote(
    town: Town, target: DoltSettings, mine: Mapping[str, Any], views: list[PeerView], echo: Echo, alone: bool
) -> Standing:
    """The proof is in (or the loss accepted): the primary role at the epoch above every one seen."""
    from .failover import assume_role

    epoch = max([int(mine["epoch"])] + [view.epoch for view in views if view.epoch is not None]) + 1
    proof = "" if alone else "every peer is a standby at this epoch or below; "
    echo(f"fencing: {proof}taking the primary role at epoch {epoch}")
    try:
        assume_role(target, "primary", epoch)
    except GastownError as exc:
        after = replication_state(target)
        if is_fenced(town, after):
            return _fenced(town, after, f"taking the primary role failed ({exc}); run gt-dolt start here again")
        return standing_of(town, after, f"it did not take the primary role ({exc})")
    after = replication_state(target)
    if after["role"] == BROKEN:
        return standing_of(
            town,
            after,
            "it became broken right after taking the primary role: another server took it at the same epoch",
        )
    note = "took writes alone (dolt.cluster.take_writes_alone)" if alone else ""
    return standing_of(town, after, note)


def settle_pending(town: Town, settings: DoltSettings, port: int, echo: Echo) -> Standing | None:
    """One look, no wait, for a watcher: a fenced server whose peers now answer is promoted."""
    state = replication_state(settings.with_overrides(port=port))
    if not is_fenced(town, state):
        return None
    return settle(town, settings, port, echo, timeout=0, alone=False)  # alone only after a whole fence_timeout
