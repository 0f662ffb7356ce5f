"""The pid and state files in <town>/daemon/, written atomically because `gt` reads them too."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GastownError

MAX_PID = 2**22  # Linux's pid_max ceiling; anything larger cannot be a process


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class PidFile:
    """What a pid file says: a usable pid, or why there is none."""

    exists: bool
    pid: int | None = None
    problem: str | None = None


def read_pid_file(path: Path) -> PidFile:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return PidFile(exists=False)
    except OSError as exc:
        return PidFile(exists=True, problem=f"cannot read {path}: {exc.strerror}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return PidFile(exists=True, problem=f"{path} is empty")
    first = lines[0]
    if not first.isdigit():
        return PidFile(exists=True, problem=f"{path} does not hold a pid ({first[:40]!r})")
    pid = int(first)
    if not 0 < pid <= MAX_PID:
        return PidFile(exists=True, problem=f"{path} holds an impossible pid ({first[:40]})")
    # Gas Town's daemon writes "PID\nNONCE"; the first line is still the pid.
    return PidFile(exists=True, pid=pid)


def write_pid_file(path: Path, pid: int) -> None:
    atomic_write_text(path, f"{pid}\n")


def remove_file(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


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
    """Create daemon/ and prove we can write in it before anything is started."""
    try:
        daemon_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=daemon_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GastownError(
            f"cannot write in {daemon_dir}: {exc.strerror}; "
            "fix its permissions (it holds dolt.pid, dolt.log and dolt-state.json)"
        ) from None
