"""Throwaway towns for the benchmarks: a private Dolt identity, cheap rigs, free ports, bare servers.

Everything lives under one temporary folder, so cleanup can find (and stop) every server the
benchmark started by its data dir alone, even after a crash or Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pymysql

RESERVED_PORT = 3307  # a demo server may run there: never touch it
POLL = 0.002  # seconds between readiness probes of a bare server
IDENTITY = {
    "user.name": "gastown-tasks bench",
    "user.email": "bench@gastown.invalid",
    "metrics.disabled": "true",
    "versioncheck.disabled": "true",
}
ISOLATED_PREFIXES = ("GT_DOLT_", "INVOKE_DOLT_")
ISOLATED_VARS = ("GT_TOWN_ROOT",)


@dataclass(frozen=True)
class Lab:
    """The temporary root, the Dolt binary, and the environment every child runs with."""

    root: Path
    dolt: Path
    env: dict[str, str]
    template: Path  # one `dolt init`-ed database, copied to make rigs


@dataclass(frozen=True)
class BenchTown:
    root: Path
    port: int
    rigs: int

    @property
    def data_dir(self) -> Path:
        return self.root / ".dolt-data"


def free_port() -> int:
    """A port the kernel says is free, never the reserved demo port."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != RESERVED_PORT:
            return port


def _isolated_env(home: Path) -> dict[str, str]:
    """The caller's environment minus any town settings, with a private Dolt home."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ISOLATED_PREFIXES) and key not in ISOLATED_VARS
    }
    env["DOLT_ROOT_PATH"] = str(home)
    env["DOLT_DISABLE_EVENT_FLUSH"] = "1"
    # A user's install has .pyc files; without them every gt-dolt run recompiles the package
    # (~30 ms here, where PYTHONDONTWRITEBYTECODE=1 is set).  Cache bytecode in the lab instead,
    # so nothing is written beside the sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home.parent / "pycache")
    return env


def _dolt_home(root: Path) -> Path:
    """`dolt init` refuses to run without an identity; telemetry off so nothing waits on the net."""
    home = root / "dolt-home"
    (home / ".dolt").mkdir(parents=True)
    (home / ".dolt" / "config_global.json").write_text(json.dumps(IDENTITY))
    return home


def _template(root: Path, dolt: Path, env: dict[str, str]) -> Path:
    template = root / "template-rig"
    template.mkdir()
    subprocess.run(
        [str(dolt), "init"], cwd=template, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL
    )
    return template


@contextmanager
def lab_session(dolt: Path) -> Iterator[Lab]:
    """A lab that stops every server under its root and deletes the root on the way out."""
    root = Path(tempfile.mkdtemp(prefix="gt-bench-")).resolve()
    try:
        env = _isolated_env(_dolt_home(root))
        yield Lab(root, dolt, env, _template(root, dolt, env))
    finally:
        reap(root)
        shutil.rmtree(root, ignore_errors=True)


def make_town(lab: Lab, name: str, rigs: int) -> BenchTown:
    """A town with `rigs` copies of the template database (copying is ~1 ms a rig; init is 50)."""
    root = lab.root / name
    (root / "mayor").mkdir(parents=True)
    (root / "mayor" / "town.json").write_text(json.dumps({"name": name}) + "\n")
    root.joinpath(".dolt-data").mkdir()
    for i in range(rigs):
        shutil.copytree(lab.template, root / ".dolt-data" / f"rig{i:04d}", symlinks=True)
    return BenchTown(root, free_port(), rigs)


PROJECT_TASKS = """\
from invoke import Collection

import gastown_tasks

ns = Collection()
gastown_tasks.add_dolt(ns)
"""


def make_project(lab: Lab) -> Path:
    """A project outside every town whose tasks.py composes the dolt collection, for measuring
    `invoke -r <project> dolt.<task>` (the Invoke path) from inside a town."""
    project = lab.root / "project"
    project.mkdir()
    (project / "tasks.py").write_text(PROJECT_TASKS)
    return project


def town_env(lab: Lab, town: BenchTown) -> dict[str, str]:
    return {**lab.env, "GT_DOLT_PORT": str(town.port)}


def spawn_bare(lab: Lab, town: BenchTown) -> subprocess.Popen[bytes]:
    """`dolt sql-server` on the town's data dir, the way gt-dolt spawns it, minus the manager."""
    return subprocess.Popen(
        [str(lab.dolt), "sql-server", "--host", "127.0.0.1", "--port", str(town.port)]
        + ["--data-dir", str(town.data_dir)],
        cwd=town.data_dir,
        env=lab.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _connect(port: int, timeout: float) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        password="",
        connect_timeout=timeout,
        read_timeout=5,
        ssl_disabled=True,  # PyMySQL 1.2 otherwise builds a TLS context (~20 ms) per attempt
    )


@contextmanager
def idle_client(port: int) -> Iterator[None]:
    """A connection that ran one query and then sits idle, as a pool's spare connection does."""
    conn = _connect(port, timeout=5.0)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        yield
    finally:
        with suppress(pymysql.err.MySQLError, OSError):  # the server it idled on may be gone
            conn.close()


def query_once(port: int, timeout: float = 1.0, sql: str = "SELECT 1") -> bool:
    """One MySQL connect + one query: does the server answer right now?"""
    try:
        conn = _connect(port, timeout)
    except pymysql.err.MySQLError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return bool(cur.fetchall())
    except pymysql.err.MySQLError:
        return False
    finally:
        conn.close()


def show_databases(port: int) -> bool:
    return query_once(port, timeout=5.0, sql="SHOW DATABASES")


def wait_answering(proc: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    """Poll until the server answers SELECT 1 (the physical limit of readiness)."""
    deadline = time.monotonic() + timeout
    while not query_once(port):
        if proc.poll() is not None:
            raise RuntimeError(f"bare dolt sql-server exited with {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"bare dolt sql-server did not answer within {timeout:g}s")
        time.sleep(POLL)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port_closed(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still open {timeout:g}s after SIGTERM")
        time.sleep(POLL / 2)


def _ours(proc: psutil.Process, root: Path) -> bool:
    """A dolt process whose arguments or cwd lie under the lab root: started by this benchmark."""
    try:
        args = proc.cmdline()
        if not args or not os.path.basename(args[0]).startswith("dolt"):
            return False
        prefix = str(root) + os.sep
        return any(arg.startswith(prefix) for arg in args) or (proc.cwd() + os.sep).startswith(prefix)
    except psutil.Error:
        return False


def reap(root: Path) -> None:
    """Stop every dolt this benchmark left running under `root` (SIGTERM, then SIGKILL)."""
    leftovers = [proc for proc in psutil.process_iter() if _ours(proc, root)]
    for proc in leftovers:
        with suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=15)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def dolt_version(lab: Lab) -> str:
    done = subprocess.run(
        [str(lab.dolt), "version"], env=lab.env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else f"unknown (exit {done.returncode})"
