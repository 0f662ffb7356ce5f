"""Building the pinned Dolt with `go install` into the cache, once per version.

The one build step: the README's setup, CI and `dolt.install`/`onboard` all come here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .binary import DOLT_MODULE, DOLT_VERSION, cached_binary, dolt_global_config, run_dolt
from .errors import BuildError

APT_PACKAGES = ("gcc", "g++", "libc6-dev", "libicu-dev")
ICU_HEADER = Path("/usr/include/unicode/uregex.h")


@dataclass(frozen=True)
class BuildResult:
    binary: Path
    built: bool
    seconds: float
    version: str


def _missing_build_deps() -> list[str]:
    missing = [tool for tool in ("gcc", "g++") if shutil.which(tool) is None]
    if not ICU_HEADER.is_file():
        missing.append("libicu-dev")
    return missing


def _install_build_deps(echo: Callable[[str], None]) -> None:
    missing = _missing_build_deps()
    if not missing:
        return
    apt = shutil.which("apt-get")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    if apt is None or os.geteuid() != 0:
        raise BuildError(
            f"building Dolt needs {', '.join(missing)}; install them as root: "
            f"apt-get update && {' '.join(command)}"
        )
    echo(f"installing build dependencies: {' '.join(APT_PACKAGES)}")
    for step in (["apt-get", "update"], command):
        done = subprocess.run(
            step, stdin=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        )
        if done.returncode != 0:
            raise BuildError(f"`{' '.join(step)}` failed (exit {done.returncode}); run it by hand and retry")


def dolt_version(binary: Path) -> str | None:
    """`dolt version`'s first line, or None when the binary does not run."""
    try:
        done = run_dolt(binary, "version", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def _disable_telemetry(binary: Path) -> None:
    """Dolt's global metrics/version-check switches, so no Dolt command phones home."""
    for key in ("metrics.disabled", "versioncheck.disabled"):
        if dolt_global_config(binary, key) != "true":
            run_dolt(binary, "config", "--global", "--add", key, "true")


def ensure_dolt(echo: Callable[[str], None] = print) -> BuildResult:
    """Build the pinned Dolt into the cache unless a working build is already there."""
    started = time.monotonic()
    target = cached_binary()
    version = dolt_version(target) if target.is_file() else None
    if version:
        _disable_telemetry(target)
        return BuildResult(target, False, time.monotonic() - started, version)

    go = shutil.which("go")
    if go is None:
        raise BuildError("building Dolt needs the Go toolchain (1.26 or newer) on PATH; install Go and retry")
    _install_build_deps(echo)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent.parent))
    echo(f"building Dolt {DOLT_MODULE}@{DOLT_VERSION} with go install (several minutes on a cold cache)")
    try:
        done = subprocess.run(
            [
                go,
                "install",
                "-trimpath",
                "-tags",
                "timetzdata",
                "-ldflags",
                "-s -w",
                f"{DOLT_MODULE}/cmd/dolt@{DOLT_VERSION}",
            ],
            env={**os.environ, "CGO_ENABLED": "1", "GOTOOLCHAIN": "local", "GOBIN": str(staging)},
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise BuildError(
                f"go install of Dolt failed (exit {done.returncode}); the output above says why. "
                "Check that the Go module proxy is reachable and gcc, g++ and libicu-dev are installed"
            )
        os.replace(staging / "dolt", target)  # atomic: a half-written binary is never in the cache
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    version = dolt_version(target)
    if not version:
        raise BuildError(f"the Dolt built at {target} does not run; remove {target.parent} and retry")
    _disable_telemetry(target)
    return BuildResult(target, True, time.monotonic() - started, version)
