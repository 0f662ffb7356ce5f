"""Where the dolt binary is, and the environment every Dolt process of ours runs with."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import DoltNotFound

# The pinned Dolt: the proxy does not serve the v2.3.1 release commit, so this is the newest
# commit of github.com/dolthub/dolt/go it does serve (2026-07-15). See README "Dolt version".
DOLT_MODULE = "github.com/dolthub/dolt/go"
DOLT_VERSION = "v0.40.5-0.20260715172757-a6690826d767"
DOLT_RELEASE = "2.2.0"  # what `dolt version` of that commit reports
SETUP_HINT = "run: gt-dolt install (or invoke dolt.install) to build the pinned Dolt"


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


def find_dolt(configured: str = "") -> Path:
    """dolt.binary config > `dolt` on PATH > the pinned build in the cache."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and os.sep not in configured:
            found = shutil.which(configured)
            path = Path(found) if found else path
        if not _executable(path):
            raise DoltNotFound(
                f"dolt.binary is set to {configured}, which is not an executable file; "
                f"fix dolt.binary, or unset it and {SETUP_HINT}"
            )
        return path
    on_path = shutil.which("dolt")
    if on_path:
        return Path(on_path)
    cached = cached_binary()
    if _executable(cached):
        return cached
    raise DoltNotFound(f"no dolt binary: not on PATH and not in {cached.parent}; {SETUP_HINT}")


def dolt_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with Dolt's telemetry off, so offline machines never wait."""
    env = dict(os.environ)
    env["DOLT_DISABLE_EVENT_FLUSH"] = "1"
    if extra:
        env.update(extra)
    return env


def run_dolt(
    dolt: Path, *args: str, cwd: Path | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """One short Dolt command with captured output, no stdin, telemetry off; never raises on exit."""
    return subprocess.run(
        [str(dolt), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dolt_env(),
        timeout=timeout,
    )


def dolt_global_config(dolt: Path, key: str) -> str:
    """A key of Dolt's global config, or "" when unset."""
    done = run_dolt(dolt, "config", "--global", "--get", key)
    return done.stdout.strip() if done.returncode == 0 else ""
