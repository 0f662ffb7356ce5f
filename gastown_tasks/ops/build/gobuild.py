"""Building the pinned Go tools (Dolt, and beads' `bd` for the tests) into the cache, once each.

The one build step: the README's setup, CI and `dolt.install`/`onboard` all come here.  A build
writes Go's output to a log in the cache and shows progress instead: one live line on a terminal
(phase, elapsed time), a line per phase otherwise, and the log's tail when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..errors import BuildError
from ..files.logfile import last_lines
from .binary import DOLT_MODULE, DOLT_VERSION, cache_root, cached_binary, dolt_global_config, dolt_version, run_dolt

APT_PACKAGES = ("gcc", "g++", "libc6-dev", "libicu-dev")
ICU_HEADER = Path("/usr/include/unicode/uregex.h")
BEADS_MODULE = "github.com/steveyegge/beads"
BEADS_VERSION = "v1.0.0"
GASTOWN_MODULE = "github.com/steveyegge/gastown"
GASTOWN_VERSION = "v1.0.0"
Echo = Callable[[str], None]


class BuildResult(NamedTuple):
    binary: Path
    built: bool
    seconds: float
    version: str


def build_log(name: str, version: str) -> Path:
    return cache_root() / "logs" / f"{name}-{version}.log"


def _missing_build_deps() -> list[str]:
    missing = [tool for tool in ("gcc", "g++") if shutil.which(tool) is None]
    if not ICU_HEADER.is_file():
        missing.append("libicu-dev")
    return missing


def _install_build_deps(echo: Echo) -> None:
    missing = _missing_build_deps()
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BuildError(
            f"building needs {', '.join(missing)}; install them as root: apt-get update && {' '.join(command)}"
        )
    echo(f"installing build dependencies: {' '.join(APT_PACKAGES)}")
    for step in (["apt-get", "update"], command):
        done = subprocess.run(
            step,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode != 0:
            raise BuildError(f"`{' '.join(step)}` failed (exit {done.returncode}); run it by hand and retry")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("building needs the Go toolchain (1.26 or newer) on PATH; install Go and retry")
    return go


def _go_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CGO_ENABLED": "1", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false", **extra}


def _phase(line: str) -> str:
    return "downloading modules" if line.startswith("go: downloading") else "compiling"


def run_logged(
    argv: list[str], log: Path, what: str, echo: Echo, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Run a long build step with its output in `log`, showing progress rather than its output."""
    log.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.__stdout__  # progress redraws its line with \r: straight to the terminal
    live = terminal is not None and terminal.isatty()
    started = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"=== {' '.join(argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        said = ""
        while child.poll() is None:
            tail = last_lines(log, 1)
            phase = _phase(tail[0]) if tail else "starting"
            elapsed = time.monotonic() - started
            if live and terminal is not None:
                terminal.write(f"\r{what}: {phase}, {elapsed:.0f}s  ")
                terminal.flush()
            elif phase != said:
                echo(f"{what}: {phase} ({elapsed:.0f}s)")
            said = phase
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.5)
    if live and terminal is not None:
        terminal.write("\n")
    if child.returncode != 0:
        end = "\n".join(f"  {line}" for line in last_lines(log, 20))
        raise BuildError(
            f"{what} failed (exit {child.returncode}); the end of {log}:\n{end}\n"
            "Check that the Go module proxy is reachable and gcc, g++ and libicu-dev are installed"
        )
    echo(f"{what}: done in {time.monotonic() - started:.0f}s (log: {log})")


def _disable_telemetry(binary: Path) -> None:
    """Dolt's global metrics/version-check switches, so no Dolt command phones home."""
    for key in ("metrics.disabled", "versioncheck.disabled"):
        if dolt_global_config(binary, key) != "true":
            run_dolt(binary, "config", "--global", "--add", key, "true")


def _install(target: Path, build: Callable[[Path], None], check: Callable[[Path], str | None], what: str) -> str:
    """Build into a staging folder beside the target; rename into place only when it runs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent.parent))
    try:
        build(staging)
        built = staging / target.name
        version = check(built)
        if not version:
            raise BuildError(f"the {what} built at {built} does not run; remove {target.parent} and retry")
        os.replace(built, target)  # atomic: a half-written binary is never in the cache
        return version
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_dolt(echo: Echo = print) -> BuildResult:
    """Build the pinned Dolt into the cache unless a working build is already there."""
    started = time.monotonic()
    target = cached_binary()
    version = dolt_version(target) if target.is_file() else None
    if version:
        _disable_telemetry(target)
        return BuildResult(target, False, time.monotonic() - started, version)
    go = _go()
    _install_build_deps(echo)
    log = build_log("dolt", DOLT_VERSION)
    echo(f"building Dolt {DOLT_MODULE}@{DOLT_VERSION} with go install (several minutes on a cold cache)")

    def build(staging: Path) -> None:
        argv = [
            go,
            "install",
            "-trimpath",
            "-tags",
            "timetzdata",
            "-ldflags",
            "-s -w",
            f"{DOLT_MODULE}/cmd/dolt@{DOLT_VERSION}",
        ]
        run_logged(argv, log, "go install dolt", echo, env=_go_env(GOBIN=str(staging)))

    version = _install(target, build, dolt_version, "Dolt")
    _disable_telemetry(target)
    return BuildResult(target, True, time.monotonic() - started, version)


class GoTool(NamedTuple):
    """A Go command built from its module's exact source (the proxy's verified zip), not `go install`.

    `go install …@v1.0.0` is refused for beads and gastown: the proxy will not list their versions,
    which go install reads for deprecations.  So the module is downloaded, copied to a writable
    folder (Go's module cache is read-only, and a build may write beside its sources), and the
    command built there.
    """

    name: str  # the binary, and its folder in the cache
    module: str
    version: str
    package: str  # the main package, relative to the module
    ldflags: str
    version_args: tuple[str, ...] = ("version",)

    def binary(self) -> Path:
        return cache_root() / self.name / self.version / "bin" / self.name


BD = GoTool("bd", BEADS_MODULE, BEADS_VERSION, "./cmd/bd", "-s -w")
GT = GoTool(
    "gt",
    GASTOWN_MODULE,
    GASTOWN_VERSION,
    "./cmd/gt",
    # Without BuiltProperly gt refuses to run ("built with 'go build' directly").
    f"-s -w -X {GASTOWN_MODULE}/internal/cmd.BuiltProperly=1 "
    f"-X {GASTOWN_MODULE}/internal/cmd.Version={GASTOWN_VERSION}",
)


def bd_binary() -> Path:
    return BD.binary()


def gt_binary() -> Path:
    return GT.binary()


def tool_version(binary: Path, args: tuple[str, ...] = ("version",)) -> str | None:
    """The first line the tool prints for `version`, or None when it does not run."""
    try:
        done = subprocess.run(
            [str(binary), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            env={**os.environ, "BEADS_DOLT_AUTO_START": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def bd_version(binary: Path) -> str | None:
    return tool_version(binary, BD.version_args)


DOWNLOAD_ATTEMPTS = 3  # the proxy's checksum-database mirror now and then answers 404 for a module it serves


def _module_source(go: str, tool: GoTool, echo: Echo) -> Path:
    """The module's verified source in Go's module cache (downloaded when missing)."""
    said = ""
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        done = subprocess.run(
            [go, "mod", "download", "-json", f"{tool.module}@{tool.version}"],
            cwd="/",
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=_go_env(),
            timeout=600,
        )
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and answer.get("Dir") and not answer.get("Error"):
            return Path(answer["Dir"])
        said = str(answer.get("Error") if isinstance(answer, dict) and answer.get("Error") else done.stderr).strip()
        if attempt < DOWNLOAD_ATTEMPTS:
            echo(f"go mod download {tool.module}@{tool.version} failed (attempt {attempt}), retrying: {said[-200:]}")
    raise BuildError(
        f"go mod download of {tool.module}@{tool.version} failed {DOWNLOAD_ATTEMPTS} times: {said[-500:]}; "
        "check that the Go module proxy is reachable (GOPROXY), then retry"
    )


def ensure_tool(tool: GoTool, echo: Echo = print) -> BuildResult:
    """Build `tool` at its pinned version into the cache unless a working build is already there."""
    started = time.monotonic()
    target = tool.binary()
    version = tool_version(target, tool.version_args) if target.is_file() else None
    if version:
        return BuildResult(target, False, time.monotonic() - started, version)
    go = _go()
    _install_build_deps(echo)
    log = build_log(tool.name, tool.version)
    echo(f"building {tool.name} {tool.module}@{tool.version} from the module proxy (a few minutes cold)")
    source = _module_source(go, tool, echo)

    def build(staging: Path) -> None:
        tree = staging / "src"
        shutil.copytree(source, tree, symlinks=True)
        for folder, _dirs, _files in os.walk(tree):  # the module cache's copies are read-only
            os.chmod(folder, 0o755)
        argv = [go, "build", "-trimpath", "-ldflags", tool.ldflags, "-o", str(staging / tool.name), tool.package]
        run_logged(argv, log, f"go build {tool.name}", echo, cwd=tree, env=_go_env())

    version = _install(target, build, lambda built: tool_version(built, tool.version_args), tool.name)
    return BuildResult(target, True, time.monotonic() - started, version)


def ensure_bd(echo: Echo = print) -> BuildResult:
    """beads' `bd` at the pinned version (the real client the tests drive)."""
    return ensure_tool(BD, echo)


def ensure_gt(echo: Echo = print) -> BuildResult:
    """Gas Town's `gt` at the pinned version (the tests run it beside gt-dolt on the same towns)."""
    return ensure_tool(GT, echo)
