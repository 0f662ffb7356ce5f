"""Commands for looking inside: logs and an SQL shell."""

from __future__ import annotations

import sys

from ..ops.errors import ConfigError
from .runner import Env
from .surface import ANYWHERE, LOCAL, Option, command

DEFAULT_LINES = 50
MAX_LINES = 100_000


def _count(n: str | None) -> int:
    if n is None:
        return DEFAULT_LINES
    text = str(n).strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_LINES:
        raise ConfigError(f"invalid -n {n!r}: give a number of lines from 0 to {MAX_LINES:,}")
    return int(text)


@command(
    "logs",
    options=(
        Option("n", "How many lines from the end (default 50)"),
        Option("follow", "Keep printing new lines; Ctrl-C ends", flag=True),
        Option("rotate", "Compress the log into dolt.log.1.gz (keeping dolt.log_keep) and truncate it", flag=True),
    ),
    reach=LOCAL,  # daemon/dolt.log is this machine's server's log; a remote server's is on its host
)
def logs(env: Env, n: str | None = None, follow: bool = False, rotate: bool = False) -> int:
    """Show the end of daemon/dolt.log; -f follows it across truncation and rotation.

    Examples:
      gt-dolt logs -n 100
      gt-dolt logs -f           # Ctrl-C ends
      gt-dolt logs --rotate     # compress to dolt.log.1.gz and start afresh
    """
    from ..ops.files.logfile import last_lines, tail_and_follow

    count = _count(n)
    town, settings = env.town_and_settings()
    if rotate:
        from ..ops.files import logrotate
        from ..ops.files.locking import town_lock

        with town_lock(town, wait=settings.lock_wait):
            done = logrotate.rotate(town, settings.log_keep)
        print(f"rotated {town.log_file}: {done}" if done else f"nothing to rotate: {town.log_file} is empty or missing")
        if not follow:
            return 0
    if not follow:
        lines = last_lines(town.log_file, count, root=town.root)
        if not lines and not town.log_file.exists():
            print(f"no log yet: {town.log_file} is written when the server starts (gt-dolt start)")
        # One write (stdout is line-buffered); on a terminal, the command boundary shows control characters
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        return 0
    try:
        for line in tail_and_follow(town.log_file, count, root=town.root):
            print(line, flush=True)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how following ends: a success
    return 0


@command(
    "sql",
    options=(
        Option("rig", "Database to use (default: hq, else the first rig)"),
        Option("query", "Run this one query, print the result and exit (non-zero on an SQL error)"),
    ),
    reach=ANYWHERE,  # a client against the remote server
)
def sql(env: Env, rig: str | None = None, query: str | None = None) -> int:
    """An SQL shell: Dolt's client against the server, or embedded dolt sql when it is down.

    Both start in --rig, else hq, else the first rig (said on stderr).  Examples:
      gt-dolt sql -q 'SELECT COUNT(*) FROM issues'
      echo 'SHOW TABLES' | gt-dolt sql --rig gastown
    """
    from ..ops.access.sqlshell import remote_sql_command, run_sql, sql_command

    settings = env.settings()
    if env.remote:
        command = remote_sql_command(settings, rig, query)
    else:
        command = sql_command(*env.located(settings), rig=rig, query=query)
    print(command.note, file=sys.stderr)
    return run_sql(command)
