"""Running the server as production Dolt is run: watch it, back it up, restore it."""

from __future__ import annotations

from ..ops.errors import ConfigError
from .runner import Env


def watch(env: Env, interval: str | None = None, once: bool = False) -> int:
    from ..ops.remote import refuse_if_remote
    from ..ops.watch import supervise

    town, settings = env.town_and_settings(watch_interval=interval)
    refuse_if_remote(settings, "watch")
    return supervise(town, settings, settings.watch_interval, once=once)


def backup(env: Env, rig: str | None = None, to: str | None = None) -> int:
    from ..ops.backup import back_up

    town, settings = env.town_and_settings()
    synced = back_up(town, settings, rig=rig, to=to)
    for done in synced:
        print(f"backed up rig {done.rig} to {done.url} through {done.through} in {done.seconds:.2f}s")
    if not synced:
        print(f"no rig databases in {town.data_dir} to back up")
    return 0


def restore(env: Env, rig: str | None = None, from_: str | None = None, as_: str | None = None) -> int:
    from ..ops.backup import restore_rig
    from ..ops.remote import refuse_if_remote

    if rig is None:
        raise ConfigError("restore needs --rig NAME: the rig whose backup to restore")
    town, settings = env.town_and_settings()
    refuse_if_remote(settings, "restore")
    done = restore_rig(town, settings, rig, source=from_, name=as_)
    when = "served now by the running server" if done.served else "served from the next start"
    print(f"restored rig {done.rig} from {done.url} in {done.seconds:.2f}s ({when})")
    return 0
