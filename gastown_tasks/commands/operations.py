"""Running the server as production Dolt is run: watch it, back it up, restore it."""

from __future__ import annotations

import sys

from ..ops.errors import ConfigError
from .runner import Env
from .surface import LOCAL, Option, command


@command(
    "watch",
    options=(
        Option("interval", "Seconds between checks (default: dolt.watch_interval, 10)"),
        Option("once", "Check once, restart if needed, exit with the status code", flag=True),
    ),
    reach=LOCAL,
)
def watch(env: Env, interval: str | None = None, once: bool = False) -> int:
    """Keep the server running: check every interval, restart with backoff, log to daemon/dolt-watch.log.

    Runs in the foreground (tmux, systemd, a terminal); Ctrl-C ends the watch and leaves the
    server running.  Examples:
      gt-dolt watch
      gt-dolt watch --once      # one check; exit code as status (for cron)
    """
    from ..ops.server.watch import supervise

    town, settings = env.town_and_settings(watch_interval=interval)
    return supervise(town, settings, settings.watch_interval, once=once)


@command(
    "backup",
    options=(
        Option("rig", "Only this rig"),
        Option("to", "Any URL Dolt accepts (one rig); default file://<town>/.dolt-backup/<rig>"),
    ),
    reach=LOCAL,  # backs up this machine's .dolt-data, not what the remote server serves
)
def backup(env: Env, rig: str | None = None, to: str | None = None) -> int:
    """Sync each rig (or one) to a Dolt backup: file://<town>/.dolt-backup/<rig> by default.

    Examples:
      gt-dolt backup
      gt-dolt backup --rig hq --to file:///mnt/backups/hq
    """
    from ..ops.rigs.backup import back_up

    town, settings = env.town_and_settings()
    report = back_up(town, settings, rig=rig, to=to)
    for done in report.done:
        print(f"backed up rig {done.rig} to {done.url} through {done.through} in {done.seconds:.2f}s")
    for name, why in report.failed:
        print(f"error: rig {name} was not backed up: {why}", file=sys.stderr)
    if not report.done and not report.failed:
        print(f"no rig databases in {town.data_dir} to back up")
    return 1 if report.failed else 0


@command(
    "restore",
    options=(
        Option("rig", "The rig whose backup to restore"),
        Option("from_", "Backup URL (default: file://<town>/.dolt-backup/<rig>)"),
        Option("as_", "Restore under this rig name (default: the same name)"),
    ),
    reach=LOCAL,  # restores into this machine's .dolt-data
)
def restore(env: Env, rig: str | None = None, from_: str | None = None, as_: str | None = None) -> int:
    """Restore a rig from a Dolt backup into .dolt-data (refused when that rig exists).

    Examples:
      gt-dolt restore --rig hq
      gt-dolt restore --rig hq --as hq_copy --from file:///mnt/backups/hq
    """
    from ..ops.rigs.backup import restore_rig

    if rig is None:
        raise ConfigError("restore needs --rig NAME: the rig whose backup to restore")
    town, settings = env.town_and_settings()
    done = restore_rig(town, settings, rig, source=from_, name=as_)
    for note in done.notes:
        print(f"note: {note}")
    when = "served now by the running server" if done.served else "served from the next start"
    print(f"restored rig {done.rig} from {done.url} in {done.seconds:.2f}s ({when})")
    return 0
