"""`gt-dolt`: the dolt collection as a console script, from any folder inside a town.

`gt-dolt <command>` is `invoke dolt.<command>`.  A plain command line with no Invoke configuration
around it runs without importing Invoke (the fast path: settings are the defaults, GT_DOLT_* and
the flags, which is all Invoke would see).  Anything else is handed to Invoke: inside a project
with a tasks.py, the command runs as `invoke dolt.<command>` there (its invoke.yaml and the
configuration its tasks.py sets in code included); --help, --list and completion are Invoke's own.
"""

from __future__ import annotations

import os
import sys

from ._version import __version__

USAGE_EXIT = 2


def _run(args: list[str]) -> int:
    from .commands.runner import INTERRUPTED, quiet_broken_pipe

    try:
        if args in (["--version"], ["-V"]):
            print(f"gt-dolt {__version__}")
            return 0
        from pathlib import Path

        from .commands.argv import parse
        from .commands.project import find_project, invoke_sources

        try:
            here = Path(os.getcwd())
        except OSError as exc:
            print(
                f"error: cannot read the current folder: {exc.strerror}; cd into your town, then retry", file=sys.stderr
            )
            return 4
        parsed = parse(args)
        project = find_project(here)
        for warning in project.warnings:
            print(warning, file=sys.stderr)
        if parsed is not None and not invoke_sources(project):
            from .commands.runner import Env, run

            return run(parsed.command, Env(), parsed.options)
        from .tasks.program import run_invoke

        return run_invoke(args, project.root, parsed is not None)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return quiet_broken_pipe()


def main() -> None:
    sys.exit(_run(sys.argv[1:]))
