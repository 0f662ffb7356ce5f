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

INTERRUPTED = 130


def _run(args: list[str]) -> int:
    """The whole command, imports included, inside one boundary: Ctrl-C is "interrupted", 130."""
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
    except BrokenPipeError:
        from .commands.runner import quiet_broken_pipe

        return quiet_broken_pipe()
    except OSError as exc:  # e.g. a working folder whose path is longer than PATH_MAX
        print(
            f"error: {exc.strerror or exc} ({exc.filename or 'a file'}); cd into your town, then retry"[:2000],
            file=sys.stderr,
        )
        return 1
    except BaseException as exc:
        if not interrupted(exc):
            raise
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


def interrupted(exc: BaseException | None) -> bool:
    """Ctrl-C, also when Python wrapped it (a KeyboardInterrupt inside a class body's __set_name__
    surfaces as a RuntimeError caused by it)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def main() -> None:
    code = _run(sys.argv[1:])
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: a late Ctrl-C changes nothing
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from .commands.runner import quiet_broken_pipe

        code = code or quiet_broken_pipe()
    sys.exit(code)
