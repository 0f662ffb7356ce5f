"""How a command ends: every exit code the package uses, and the one boundary that turns an
exception into one line on stderr and its exit code, never a traceback.

Every entry point ends here: gt-dolt's `main`, the command runner (both gt-dolt's fast path and the
Invoke tasks), gt-dolt's hand-over to Invoke, and the guard `add_dolt()` puts around the Invoke
program that runs our tasks.  The package's errors declare their code (`exit_code`, an ExitCode);
the ladder in `outcome` decides everything else, once.

A leaf module: it imports nothing of the package, so the operations' errors can declare their
codes with it, and gt-dolt can stand on it before it imports anything else (Ctrl-C while the
command's own modules load is still "interrupted").
"""

from __future__ import annotations

import enum
import sys

TYPE_CHECKING = False  # typing is not imported here: gt-dolt's boundary stands before it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Explain = Callable[[BaseException], str | None]


class ExitCode(enum.IntEnum):
    """What each exit code means, for gt-dolt and `invoke dolt.*` alike (LSB-style for status)."""

    OK = 0  # done; status: running
    FAILED = 1  # failed; status: a stale pid file was left
    CONFIG = 2  # bad configuration or argument values; nothing was started or changed
    NOT_RUNNING = 3  # the server is not running (and the command needs it, or status says so)
    NOT_IN_TOWN = 4  # no Gas Town workspace here (LSB 'unknown')
    REMOTE = 5  # the server is remote: managed on its host, not from here
    ACCESS_DENIED = 6  # the server runs but refused our credentials
    FENCED = 7  # start: a clustered server runs fenced (read-only)
    BROKEN_CONFIG = 8  # start: Dolt put the cluster in detected_broken_config
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141  # the reader of our output went away (128 + SIGPIPE)

    STALE_PID_FILE = 1  # status's name for FAILED


MEANING = {
    ExitCode.OK: "ok (status: running)",
    ExitCode.FAILED: "failed (status: stale pid file)",
    ExitCode.CONFIG: "bad configuration or argument values",
    ExitCode.NOT_RUNNING: "not running",
    ExitCode.NOT_IN_TOWN: "not in a town",
    ExitCode.REMOTE: "the server is remote",
    ExitCode.ACCESS_DENIED: "credentials refused",
    ExitCode.FENCED: "a clustered server runs fenced (read-only)",
    ExitCode.BROKEN_CONFIG: "the cluster is in detected_broken_config",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.BROKEN_PIPE: "the reader of the output went away",
}


def exit_codes_said() -> str:
    """Every exit code and what it means, in one sentence (gt-dolt --help)."""
    return ", ".join(f"{int(code)} {meaning}" for code, meaning in MEANING.items()) + "."


class Ended(Exception):
    """The command has ended and said what it had to say (in a child process, say): only its exit
    code is left for the boundary to pass on."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.exit_code = code


def interrupted(exc: BaseException | None) -> bool:
    """Ctrl-C, also when Python wrapped it (a KeyboardInterrupt inside a class body's __set_name__
    surfaces as a RuntimeError caused by it)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def said(exc: BaseException) -> str:
    """An error's message with the notes added on its way up (PEP 678), one per line."""
    return "\n".join([str(exc), *(str(note) for note in getattr(exc, "__notes__", ()))])


def os_error_line(exc: OSError) -> str:
    """An OSError that no operation turned into a message: one on a named file, or (no name) on the
    output itself, e.g. a full disk behind `>`."""
    if exc.filename is None:
        return f"cannot write the output: {exc.strerror or exc}"
    return f"{exc.strerror or exc} ({exc.filename}); fix that, then retry"


def say_error(message: str, code: int, as_json: bool) -> int:
    """The one way an error is said: `error: ...` on stderr, and with --json one object on stdout."""
    if as_json:
        import json

        print(json.dumps({"error": message, "exit_code": int(code)}))
    print(f"error: {message}", file=sys.stderr)
    return int(code)


def quiet_broken_pipe() -> int:
    """The reader went away (`| head`): stop writing, and let Python's exit flush nowhere."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return ExitCode.BROKEN_PIPE


def outcome(exc: BaseException, explain: Explain | None = None) -> tuple[int, str | None] | None:
    """The ladder: the exit code of what went wrong and the line that says it (None: already said,
    or nothing to say), or None when it is not ours to answer (the caller re-raises it).

    `explain` words errors of a library we drive (Invoke's configuration loading) as a bad
    configuration, exit 2."""
    if isinstance(exc, Ended):
        return exc.exit_code, None
    if isinstance(exc, BrokenPipeError):
        return quiet_broken_pipe(), None
    declared = getattr(exc, "exit_code", None)
    if isinstance(exc, Exception) and isinstance(declared, int):  # the package's errors (ops.errors)
        return int(declared), said(exc)
    if isinstance(exc, OSError):
        return ExitCode.FAILED, os_error_line(exc)
    if interrupted(exc):
        return ExitCode.INTERRUPTED, None
    message = explain(exc) if explain is not None else None
    if message is not None:
        return ExitCode.CONFIG, message
    return None


def guarded(
    call: Callable[[], Any],
    *,
    as_json: bool = False,
    explain: Explain | None = None,
    passes: tuple[type[BaseException], ...] = (),
) -> int:
    """The boundary: `call()`'s exit code (None is 0), or the exit code of what went wrong, said in
    one line.  `passes` are exceptions a caller answers itself (Invoke's own Exit); anything the
    ladder does not know is re-raised."""
    try:
        code = call()
        sys.stdout.flush()
        return int(code or 0)
    except passes:
        raise
    except BaseException as exc:
        found = outcome(exc, explain)
        if found is None:
            raise
        code, message = found
        if code == ExitCode.INTERRUPTED:
            _say_quietly("interrupted")
        elif message is not None:
            try:
                say_error(message, code, as_json)
            except BrokenPipeError:
                return quiet_broken_pipe()
            except OSError as exc:  # a full disk behind `2>`: the exit code still says it
                _say_quietly(f"error: {os_error_line(exc)}")
        return int(code)


def _say_quietly(line: str) -> None:
    import contextlib

    with contextlib.suppress(OSError, ValueError):
        print(line[:2000], file=sys.stderr)
