"""Running the server as production Dolt is run: watch it, back it up, restore it."""

from __future__ import annotations

import sys

from ..ops.errors import ConfigError
from .runner import Env


def watch(env: Env, interval: str | None = None, once: bool = False) -> int:
    from ..ops.watch import supervise

    town, settings = env.town_and_settings(watch_interval=interval)
    return supervise(town, settings, settings.watch_interval, once=once)


def backup(env: Env, rig: str | None = None, to: str | None = None) -> int:
    from ..ops.backup import back_up

    town, settings = env.town_and_settings()
    report = back_up(town, settings, rig=rig, to=to)
    for done in report.done:
        print(f"backed up rig {done.rig} to {done.url} through {done.through} in {done.seconds:.2f}s")
    for name, why in report.failed:
        print(f"error: rig {name} was not backed up: {why}", file=sys.stderr)
    if not report.done and not report.failed:
        print(f"no rig databases in {town.data_dir} to back up")
    return 1 if report.failed else 0


def restore(env: Env, rig: str | None = None, from_: str | None = None, as_: str | None = None) -> int:
    from ..ops.backup import restore_rig

    if rig is None:
        raise ConfigError("restore needs --rig NAME: the rig whose backup to restore")
    town, settings = env.town_and_settings()
    done = restore_rig(town, settings, rig, source=from_, name=as_)
    for note in done.notes:
        print(f"note: {note}")
    when = "served now by the running server" if done.served else "served from the next start"
    print(f"restored rig {done.rig} from {done.url} in {done.seconds:.2f}s ({when})")
    return 0
