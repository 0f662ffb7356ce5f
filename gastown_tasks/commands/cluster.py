"""Cluster commands: see the replication, promote a standby, demote a primary."""

from __future__ import annotations

import json

from ..ops.errors import ConfigError
from .runner import Env


def _target(env: Env) -> tuple[object, object]:
    """This town's server address: the local server's real port, or a remote server."""
    from ..ops.discovery import find_running
    from ..ops.errors import ServerNotRunning
    from ..ops.remote import is_remote

    settings = env.settings()
    if is_remote(settings):
        return settings, settings
    town = env.town(settings)
    running = find_running(town, settings)[0]
    if running is None:
        raise ServerNotRunning.needed_for("this command")
    return settings, settings.with_overrides(port=running.port)


def cluster_status(env: Env, json_: bool = False) -> int:
    from ..ops import cluster

    _, target = _target(env)
    state = cluster.replication_state(target)  # type: ignore[arg-type]
    if json_:
        print(json.dumps(state, indent=2))
    elif not state["role"]:
        print("this server is not in a cluster (dolt.cluster is not set)")
    else:
        print("\n".join(cluster.describe(state)))
    return 0


def failover(env: Env, force: bool = False) -> int:
    from ..ops import cluster

    settings, target = _target(env)
    config = cluster.cluster_of(settings)  # type: ignore[arg-type]
    if config is None:
        raise ConfigError("failover needs dolt.cluster: this town is not clustered (docs/cluster.md)")
    cluster.failover(settings, target, config, force, print)  # type: ignore[arg-type]
    return 0


def demote(env: Env, epoch: str | None = None) -> int:
    from ..ops import cluster

    new_epoch = None
    if epoch is not None:
        text = str(epoch).strip()
        if not text.isdigit() or not 0 < int(text) <= 10**9:
            raise ConfigError(f"invalid --epoch {epoch!r}: a whole number above the current epoch")
        new_epoch = int(text)
    _, target = _target(env)
    cluster.demote(target, new_epoch, print)  # type: ignore[arg-type]
    return 0
