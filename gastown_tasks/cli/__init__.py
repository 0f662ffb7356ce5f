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

from .._version import __version__
from ..exits import ExitCode, guarded, say_error


def _run(args: list[str]) -> int:
    """The whole command, imports included, inside the one boundary (gastown_tasks/exits.py)."""
    return guarded(lambda: _command(args), as_json="--json" in args or "-j" in args, explain=_invoke_config_error)


def _command(args: list[str]) -> int:
    if args in (["--version"], ["-V"]):
        print(f"gt-dolt {__version__}")
        return ExitCode.OK
    from pathlib import Path

    from .argv import help_first, joined, parse
    from .trust import find_project, invoke_sources, untrusted_invoke_files

    as_json = "--json" in args or "-j" in args
    try:
        here = Path(os.getcwd())
    except OSError as exc:
        message = f"cannot read the current folder: {exc.strerror}; cd into your town, then retry"
        return say_error(message, ExitCode.NOT_IN_TOWN, as_json)
    refused = untrusted_invoke_files()
    if refused:
        message = f"not reading Invoke's configuration: {'; '.join(refused)}; fix that, then retry"
        return say_error(message, ExitCode.CONFIG, as_json)
    args = help_first(joined(args))
    parsed = parse(args)
    project = find_project(here)
    for warning in project.warnings:
        print(warning, file=sys.stderr)
    if parsed is not None and not invoke_sources(project):
        from ..commands.runner import Env, run

        return run(parsed.command, Env(), parsed.options)
    from .program import run_invoke

    return run_invoke(args, project.root, parsed is not None)


def _invoke_config_error(exc: BaseException) -> str | None:
    """Invoke's own configuration errors, when Invoke ran at all: a bad configuration (exit 2)."""
    if "invoke" not in sys.modules:
        return None
    from ..tasks.config import config_error_message

    return config_error_message(exc)


def main() -> None:
    for name in ("stdout", "stderr"):  # started with `>&-`: write nowhere rather than crash
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    code = _run(sys.argv[1:])
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: a late Ctrl-C changes nothing
    flushed = guarded(lambda: 0)  # the output's last flush (a closed pipe, a full disk), inside the boundary
    sys.exit(code or flushed)
