"""The pid and state files in <town>/daemon/, written atomically because `gt` reads them too."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import GastownError

MAX_PID = 2**22  # Linux's pid_max ceiling; anything larger cannot be a process
PID_TEXT = re.compile(r"[0-9]+", re.ASCII)


def now_iso() -> str:
    """A UTC timestamp as the state file records them (RFC 3339, which `gt` parses)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    Failures become a GastownError naming the file: `gt` reads these files too, so a half
    written one must never be left, and the user needs to know which one could not be written.
    """
    tmp = None
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        what = "it is a folder" if path.is_dir() else exc.strerror
        raise GastownError(
            f"cannot write {path}: {what}; make {path.parent} a writable folder (and {path} a file), "
            "then retry"
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@dataclass(frozen=True)
class PidFile:
    """What a pid file says: a usable pid, or why there is none."""

    exists: bool
    pid: int | None = None
    problem: str | None = None


def read_pid_file(path: Path) -> PidFile:
    """The pid in `path`, or why there is none; never raises for what the file holds."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return PidFile(exists=False)
    except NotADirectoryError:
        return PidFile(exists=False, problem=f"{path.parent} is not a folder; move it aside")
    except IsADirectoryError:
        return PidFile(exists=True, problem=f"{path} is a folder, not a pid file; remove it")
    except OSError as exc:
        return PidFile(exists=True, problem=f"cannot read {path}: {exc.strerror}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return PidFile(exists=True, problem=f"{path} is empty")
    first = lines[0]
    # ASCII digits only, and few of them: int() rejects "²" and strings of thousands of digits.
    if not PID_TEXT.fullmatch(first):
        return PidFile(exists=True, problem=f"{path} does not hold a pid ({first[:40]!r})")
    pid = int(first) if len(first) <= 12 else MAX_PID + 1
    if not 0 < pid <= MAX_PID:
        return PidFile(exists=True, problem=f"{path} holds an impossible pid ({first[:40]})")
    # Gas Town's daemon writes "PID\nNONCE"; the first line is still the pid.
    return PidFile(exists=True, pid=pid)


def write_pid_file(path: Path, pid: int) -> None:
    atomic_write_text(path, f"{pid}\n")


def remove_file(path: Path) -> bool:
    """Remove one of our files; a folder in its place is the user's to look at, never removed."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise GastownError(
            f"{path} is a folder, not a file this tool writes; look inside, remove it, and retry"
        ) from None
    except OSError as exc:
        raise GastownError(
            f"cannot remove {path}: {exc.strerror}; fix the permissions of {path.parent}"
        ) from None


@dataclass(frozen=True)
class StateFile:
    data: dict[str, Any]
    problem: str | None = None


def read_state(path: Path) -> StateFile:
    """The recorded state, or an empty one with a warning when the file is unreadable."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StateFile({})
    except UnicodeDecodeError:
        return StateFile({}, f"{path} is not UTF-8 text; treating the state as unknown")
    except OSError as exc:
        return StateFile({}, f"cannot read {path}: {exc.strerror}; treating the state as unknown")
    try:
        data = json.loads(raw)
    except ValueError:
        return StateFile({}, f"{path} is not valid JSON; treating the state as unknown")
    if not isinstance(data, dict):
        return StateFile({}, f"{path} does not hold a JSON object; treating the state as unknown")
    return StateFile(data)


def write_state(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def ensure_daemon_dir(daemon_dir: Path) -> None:
    """Create daemon/ (never world-writable) and prove we can write in it before anything starts.

    A write probe rather than a permission check: root ignores permissions but not a read-only
    mount, and a file in daemon/'s place fails with a misleading "File exists".
    """
    if daemon_dir.exists() and not daemon_dir.is_dir():
        raise GastownError(
            f"cannot write in {daemon_dir}: it is not a folder; move it aside so a folder can be made "
            "there (it holds dolt.pid, dolt.log and dolt-state.json)"
        )
    try:
        daemon_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=daemon_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GastownError(
            f"cannot write in {daemon_dir}: {exc.strerror}; make it a writable folder "
            "(it holds dolt.pid, dolt.log and dolt-state.json), then retry"
        ) from None
