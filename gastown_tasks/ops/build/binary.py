"""Where the dolt binary is, which Dolt it is, and the environment every Dolt process runs with."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import NamedTuple

from ..errors import DoltNotFound, Remedy

# The pinned Dolt: the proxy does not serve the v2.3.1 release commit, so this is the newest
# commit of github.com/dolthub/dolt/go it does serve (2026-07-15). See README "Dolt version".
DOLT_MODULE = "github.com/dolthub/dolt/go"
DOLT_VERSION = "v0.40.5-0.20260715172757-a6690826d767"
DOLT_RELEASE = "2.2.0"  # what `dolt version` of that commit reports

# Dolt creates its folders 0777 and files 0666 minus the umask: under a careless umask (0) the
# databases would be writable by every user.  Every Dolt we start makes its files private.
DOLT_UMASK = 0o077

# Secrets a server never needs in its environment (it would show them to anyone who can read
# /proc/<pid>/environ as that user, and pass them to every child it starts).
SECRET_VARIABLES = (
    "GT_DOLT_PASSWORD",
    "INVOKE_DOLT_PASSWORD",
    "BEADS_DOLT_PASSWORD",
    "DOLT_CLI_PASSWORD",
    "MYSQL_PWD",
)


def cache_root() -> Path:
    """Outside any clone, so fresh clones on the same machine reuse one build."""
    explicit = os.environ.get("GASTOWN_TASKS_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gastown-tasks"


def cached_binary(version: str = DOLT_VERSION) -> Path:
    return cache_root() / "dolt" / version / "bin" / "dolt"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def untrusted_binary(path: Path) -> str | None:
    """Why running `path` could run someone else's code as us; None when only we or root can change it."""
    real = Path(os.path.realpath(path))
    try:
        st, folder = os.stat(real), os.stat(real.parent)
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if st.st_uid not in (os.geteuid(), 0):
        return f"{real} belongs to uid {st.st_uid}, not to you or root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"others can write {real}"
    if folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not folder.st_mode & stat.S_ISVTX:
        return f"others can replace it ({real.parent} is writable by others)"
    return None


def _trusted(path: Path, where: str) -> Path:
    why = untrusted_binary(path)
    if why is not None:
        raise DoltNotFound(
            f"not running the dolt {where} ({path}): {why}; gt-dolt runs only programs that nobody but you "
            f"(or root) can change. Fix that, or unset it and {Remedy.INSTALL}"
        )
    return path


def find_dolt(configured: str = "") -> Path:
    """dolt.binary config > `dolt` on PATH > the pinned build in the cache; only a binary that
    nobody but us or root can change (a configuration anyone could edit must not run code as us)."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and os.sep not in configured:
            found = shutil.which(configured)
            path = Path(found) if found else path
        if not _executable(path):
            raise DoltNotFound(
                f"dolt.binary is set to {configured}, which is not an executable file; "
                f"fix dolt.binary, or unset it and {Remedy.INSTALL}"
            )
        return _trusted(path, "dolt.binary names")
    on_path = shutil.which("dolt")
    if on_path:
        return _trusted(Path(on_path), "found on PATH")
    cached = cached_binary()
    if _executable(cached):
        return _trusted(cached, "in the cache")
    raise DoltNotFound(f"no dolt binary: not on PATH and not in {cached.parent}; {Remedy.INSTALL}")


def is_pinned(binary: Path) -> bool:
    try:
        return binary.resolve() == cached_binary().resolve()
    except OSError:
        return False


def dolt_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without passwords, with Dolt's telemetry off (offline never waits)."""
    env = {key: value for key, value in os.environ.items() if key not in SECRET_VARIABLES}
    env["DOLT_DISABLE_EVENT_FLUSH"] = "1"
    if extra:
        env.update(extra)
    return env


def run_dolt(
    dolt: Path,
    *args: str,
    cwd: Path | None = None,
    timeout: float | None = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One short Dolt command with captured output, no stdin, telemetry off; never raises on exit."""
    return subprocess.run(
        [str(dolt), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        env=env or dolt_env(),
        timeout=timeout,
        umask=DOLT_UMASK,
    )


def dolt_global_config(dolt: Path, key: str, env: dict[str, str] | None = None) -> str:
    """A key of Dolt's global config, or "" when unset."""
    done = run_dolt(dolt, "config", "--global", "--get", key, env=env, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else ""


def dolt_version(binary: Path) -> str | None:
    """`dolt version`'s first line, or None when the binary does not run."""
    try:
        done = run_dolt(binary, "version", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


class DoltBinary(NamedTuple):
    path: Path
    version: str | None  # what `dolt version` says; None when it does not run
    pinned: bool

    @property
    def release(self) -> str | None:
        words = (self.version or "").split()
        return words[-1] if words else None

    def note(self) -> str | None:
        """One line when this is not the pinned build: which Dolt runs is never a surprise."""
        if self.pinned:
            return None
        said = self.version or "a program whose `dolt version` fails"
        return (
            f"using {self.path} ({said}), not the pinned Dolt {DOLT_RELEASE} "
            f"({cached_binary()}); set dolt.binary or take it off PATH to use the pinned build"
        )


def identify(binary: Path) -> DoltBinary:
    """Which Dolt a path is; the pinned build is known by its path (no process started)."""
    if is_pinned(binary):
        return DoltBinary(binary, f"dolt version {DOLT_RELEASE}", True)
    return DoltBinary(binary, dolt_version(binary), False)


def dolt_command_hint(binary: Path | None = None) -> str:
    """How to run this Dolt from a shell, whether or not `dolt` is on PATH."""
    if binary is not None and shutil.which("dolt") and Path(shutil.which("dolt") or "") == binary:
        return "dolt"
    return str(binary or cached_binary())
