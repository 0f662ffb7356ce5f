"""Cluster commands: see the replication, promote a standby, demote a primary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..ops.errors import ConfigError
from .runner import Env
from .surface import ANYWHERE, Option, command

if TYPE_CHECKING:
    from ..ops.settings import DoltSettings


def _target(env: Env) -> tuple[DoltSettings, DoltSettings]:
    """This town's server address: the local server's real port, or a remote server."""
    from ..ops.errors import ServerNotRunning
    from ..ops.server.discovery import find_running

    settings = env.settings()
    if env.remote:
        return settings, settings
    town, settings = env.located(settings)  # the town's port as gt reads it
    running = find_running(town, settings)[0]
    if running is None:
        raise ServerNotRunning.needed_for("this command")
    return settings, settings.with_overrides(port=running.port)


@command(
    "cluster-status",
    options=(Option("json_", "Print one JSON object", flag=True),),
    reach=ANYWHERE,  # asks the remote server
)
def cluster_status(env: Env, json_: bool = False) -> int:
    """Show this server's cluster role and epoch, and replication to each standby.

    Examples:
      gt-dolt cluster-status
      gt-dolt cluster-status --json
    """
    from ..ops.cluster import cluster

    settings, target = _target(env)
    state = cluster.replication_state(target)
    if state["role"] and not env.remote:
        from ..ops.cluster.fencing import annotate

        annotate(env.town(settings), state)
    if json_:
        print(json.dumps(state, indent=2))
    elif not state["role"]:
        print("this server is not in a cluster (dolt.cluster is not set)")
    else:
        print("\n".join(cluster.describe(state)))
    return 0


@command(
    "failover",
    options=(Option("force", "Take over although writes may be lost (says which)", flag=True),),
    reach=ANYWHERE,  # through the remote server
)
def failover(env: Env, force: bool = False) -> int:
    """On a standby: take over as primary at a higher epoch, once the old primary is demoted or gone.

    Refuses while the primary is alive and not demoted, or while this standby lags; --force
    accepts the loss and says what it loses.  Examples:
      gt-dolt failover
      gt-dolt failover --force
    """
    from ..ops.cluster.cluster import cluster_of
    from ..ops.cluster.failover import promote_standby

    config = cluster_of(env.settings())  # an impossible cluster is refused before anything is asked
    if config is None:
        raise ConfigError("failover needs dolt.cluster: this town is not clustered (docs/cluster.md)")
    settings, target = _target(env)
    promote_standby(settings, target, config, force, print)
    return 0


@command(
    "demote",
    options=(Option("epoch", "The epoch to demote at (default: the current one plus one)"),),
    reach=ANYWHERE,  # through the remote server
)
def demote(env: Env, epoch: str | None = None) -> int:
    """On a primary: become a standby at a higher epoch (waits for the standbys to catch up).

    Examples:
      gt-dolt demote
      gt-dolt demote --epoch 7
    """
    from ..ops.cluster.failover import demote_primary

    new_epoch = None
    if epoch is not None:
        text = str(epoch).strip()
        if not text.isdigit() or not 0 < int(text) <= 10**9:
            raise ConfigError(f"invalid --epoch {epoch!r}: a whole number above the current epoch")
        new_epoch = int(text)
    _, target = _target(env)
    demote_primary(target, new_epoch, print)
    return 0
