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

        from .commands.argv import help_first, joined, parse
        from .commands.project import find_project, invoke_sources, untrusted_invoke_files

        as_json = "--json" in args or "-j" in args
        try:
            here = Path(os.getcwd())
        except OSError as exc:
            return _fail(f"cannot read the current folder: {exc.strerror}; cd into your town, then retry", 4, as_json)
        refused = untrusted_invoke_files()
        if refused:
            return _fail(f"not reading Invoke's configuration: {'; '.join(refused)}; fix that, then retry", 2, as_json)
        args = help_first(joined(args))
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
    except OSError as exc:
        return _os_error(exc)
    except BaseException as exc:
        if not interrupted(exc):
            raise
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


def _os_error(exc: OSError) -> int:
    """A bare OSError outside the command's own boundary: a working folder whose path is too long
    for the system, or the output itself (a full disk behind `>`)."""
    import contextlib

    from .commands.runner import os_error_line

    with contextlib.suppress(OSError):
        print(f"error: {os_error_line(exc)}"[:2000], file=sys.stderr)
    return 1


def _fail(message: str, code: int, as_json: bool) -> int:
    from .commands.runner import say_error

    return say_error(message, code, as_json)


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
    for name in ("stdout", "stderr"):  # started with `>&-`: write nowhere rather than crash
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    code = _run(sys.argv[1:])
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: a late Ctrl-C changes nothing
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from .commands.runner import quiet_broken_pipe

        code = code or quiet_broken_pipe()
    except OSError as exc:
        code = code or _os_error(exc)
    if "invoke" in sys.modules:  # a project's tasks.py ran: its exit handlers are its own
        sys.exit(code)
    import contextlib

    with contextlib.suppress(OSError):
        sys.stderr.flush()
    # Nothing of ours runs at exit, and tearing down the ~200 modules a command imported costs
    # more than a fifth of a `status`.
    os._exit(code)
