"""Tasks for looking inside: logs and an SQL shell."""

from __future__ import annotations

import sys

from invoke import Context, task
from invoke.exceptions import Exit

from ..ops.logfile import last_lines
from ..ops.logfollow import follow as follow_log
from ..ops.sqlshell import run_sql, sql_command
from .config import reports_errors, town_and_settings


@task(
    help={"n": "How many lines from the end (default 50)", "follow": "Keep printing new lines; Ctrl-C ends"}
)
@reports_errors
def logs(c: Context, n: int = 50, follow: bool = False) -> None:
    """Show the end of daemon/dolt.log; -f follows it across truncation and rotation."""
    town, _ = town_and_settings(c)
    path = town.log_file
    if not path.exists():
        print(f"no log yet: {path} is written when the server starts (gt-dolt start)")
        if not follow:
            return
    for line in last_lines(path, n):
        print(line)
    if not follow:
        return
    sys.stdout.flush()
    try:
        for line in follow_log(path):
            print(line, flush=True)
    except KeyboardInterrupt:
        return  # Ctrl-C is how following ends: a success


@task(
    help={
        "rig": "Database to use (default: none when the server runs; the first rig when embedded)",
        "query": "Run this one query, print the result and exit (non-zero on an SQL error)",
    }
)
@reports_errors
def sql(c: Context, rig: str | None = None, query: str | None = None) -> None:
    """An SQL shell: the Dolt client against the server, or embedded dolt sql when it is down.

    On a terminal Dolt gets the terminal itself; piped input works too: echo 'select 1' | gt-dolt sql
    """
    town, settings = town_and_settings(c)
    command = sql_command(town, settings, rig=rig, query=query)
    if command.note:
        print(command.note, file=sys.stderr)
    code = run_sql(command)
    if code:
        raise Exit(code=code)
