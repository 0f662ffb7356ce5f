"""Fixtures for tests against a real Dolt: temporary towns, free ports, real servers.

Dolt comes from the project's setup (gt-dolt install); when it is missing the suite fails
rather than skips, so CI can never pass without having run a real server.  The Dolt every test
runs is that pinned build.  A skip fails the run unless ALLOWED_SKIPS says why it may happen; a
test that only root can run says so with `@pytest.mark.needs_root("why")` and is deselected in
an ordinary user's run (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pymysql
import pytest

from gastown_tasks.ops.build.binary import cached_binary, dolt_env, find_dolt
from gastown_tasks.ops.errors import GastownError
from gastown_tasks.ops.host import procs
from gastown_tasks.ops.rigs.rigadmin import init_rig
from gastown_tasks.ops.server.server import stop
from gastown_tasks.ops.settings import GT_ENV, DoltSettings, resolve_settings
from gastown_tasks.ops.town import Town

# A suite started in the background by a non-interactive shell (`cmd &`, as a CI runner may) inherits
# SIGINT ignored, and so would every gt-dolt it starts: Python keeps an ignored SIGINT ignored, and
# the Ctrl-C tests would test nothing.  The suite's children get Ctrl-C as a terminal user's do.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

FAKES = Path(__file__).parent / "fakes"
GT_DOLT = [sys.executable, "-P", "-m", "gastown_tasks"]  # -P: the current folder is not on the import path
GT_VARS = tuple(GT_ENV)


# A skip fails the run (see pytest_runtest_makereport) unless its test is here, with the reason it
# cannot run where it skips.  Keep it short: a test that needs root is marked needs_root instead.
ALLOWED_SKIPS: dict[str, str] = {}


@pytest.fixture(scope="session")
def dolt_binary() -> Path:
    """The pinned Dolt, which is also the one gt-dolt finds in every test (see dolt_home)."""
    path = cached_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no pinned Dolt at {path} for the tests: run ./dev test (it builds it)", pytrace=False)
    try:
        found = find_dolt()
    except GastownError as exc:
        pytest.fail(f"gt-dolt finds no Dolt for the tests: {exc}", pytrace=False)
    if found.resolve() != path.resolve():
        pytest.fail(f"gt-dolt would run {found}, not the pinned Dolt {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def gt_binary() -> Path:
    """Gas Town's real gt, built by the setup; a test that needs it takes this fixture (it fails,
    never skips, when gt was not built)."""
    from gastown_tasks.ops.build.gobuild import gt_binary as built_gt

    path = built_gt()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no gt at {path} for the tests: run ./dev test (it builds it)", pytrace=False)
    return path


@pytest.fixture(scope="session", autouse=True)
def dolt_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private Dolt global config (identity, telemetry off) for every Dolt the tests start."""
    home = tmp_path_factory.mktemp("dolt-home")
    config = home / ".dolt" / "config_global.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps(
            {
                "user.name": "gastown-tasks tests",
                "user.email": "tests@gastown.invalid",
                "metrics.disabled": "true",
                "versioncheck.disabled": "true",
            }
        )
    )
    # The caller's Invoke and Gas Town settings never reach a test, nor PYTHONUNBUFFERED (output must
    # reach a pipe without it, as for users); a dolt on PATH other than the pinned build is shadowed by
    # it, so every Dolt a test runs is the pinned one.
    cleared = ["GT_TOWN_ROOT", "PYTHONUNBUFFERED", *GT_VARS, *(key for key in os.environ if key.startswith("INVOKE_"))]
    saved = {key: os.environ.get(key) for key in ("DOLT_ROOT_PATH", "PATH", *cleared)}
    os.environ["DOLT_ROOT_PATH"] = str(home)
    for key in cleared:
        os.environ.pop(key, None)
    on_path = shutil.which("dolt")
    if on_path and Path(on_path).resolve() != cached_binary().resolve():
        os.environ["PATH"] = f"{cached_binary().parent}{os.pathsep}{os.environ.get('PATH', '')}"
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def old_database(dolt: Path, folder: Path, rows: list[tuple[int, str]]) -> Path:
    """A committed Dolt database with a table of rows, where the old layout kept it."""
    folder.mkdir(parents=True)
    values = ", ".join(f"({i}, '{title}')" for i, title in rows)

    def run(*args: str) -> None:
        subprocess.run([str(dolt), *args], cwd=folder, env=dolt_env(), check=True, capture_output=True)

    run("init")
    run(
        "sql",
        "-q",
        f"CREATE TABLE issues (id INT PRIMARY KEY, title VARCHAR(40)); INSERT INTO issues VALUES {values}",
    )
    run("commit", "-Am", "old layout data")
    return folder


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory, dolt_binary: Path) -> Path:
    """One committed Dolt database with an issues table, made once: copy it where one is needed."""
    return old_database(dolt_binary, tmp_path_factory.mktemp("template") / "db", [(1, "template row")])


BAD_RIG_NAMES = {
    "empty": "",
    "dot-dot": "..",
    "dot": ".",
    "parent-path": "../x",
    "slash": "a/b",
    "absolute": "/tmp/x",
    "space": "my rig",
    "65-characters": "r" * 65,
    "leading-dash": "-rig",
    "backtick": "a`b",
    "quote": "a'b",
    "dot-inside": "a.b",
    "non-ascii": "r\u00efg",
    "reserved-mysql": "mysql",
    "reserved-information-schema": "information_schema",
    "reserved-performance-schema": "performance_schema",
    "reserved-sys": "sys",
    "reserved-any-case": "MySQL",
}


def tree(root: Path) -> list[str]:
    """Every path under root (hidden ones too), to prove nothing was created."""
    return sorted(
        str(Path(folder, name).relative_to(root)) for folder, dirs, files in os.walk(root) for name in dirs + files
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TownFixture:
    town: Town
    settings: DoltSettings

    @property
    def root(self) -> Path:
        return self.town.root

    @property
    def port(self) -> int:
        return self.settings.port

    def rig(self, name: str) -> Path:
        return init_rig(self.town, self.settings, name).path

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1",
            port=self.settings.port,
            user="root",
            password="",
            database=database,
            autocommit=True,
            connect_timeout=5,
        )

    def query(self, sql: str, database: str | None = None) -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for running gt-dolt/invoke as a user would, against this town's port."""
        return {**os.environ, "GT_DOLT_PORT": str(self.settings.port), **extra}

    def gt_dolt(
        self, *args: str, cwd: Path | None = None, timeout: float = 120, umask: int = -1, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """gt-dolt as a user runs it in this town; `umask` 0 for a user who allows everyone everything."""
        return subprocess.run(
            [*GT_DOLT, *args],
            cwd=cwd or self.root,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            umask=umask,
        )

    def servers(self) -> list[psutil.Process]:
        """Live dolt sql-servers (real or fake) serving this town's data dir."""
        return [p for p in procs.dolt_servers() if procs.serves_data_dir(p, self.town.data_dir)]


def make_town(root: Path, **settings: object) -> TownFixture:
    (root / "mayor").mkdir(parents=True, exist_ok=True)
    (root / "mayor" / "town.json").write_text('{"name": "test-town"}\n')
    values = {"port": free_port(), "start_timeout": 60, "stop_timeout": 30, **settings}
    return TownFixture(Town(root.resolve()), resolve_settings(values))


@pytest.fixture
def town(tmp_path: Path, dolt_binary: Path) -> Iterator[TownFixture]:
    """A fresh town on a free port; whatever server it runs is stopped afterwards."""
    fixture = make_town(tmp_path / "town")
    yield fixture
    cleanup_town(fixture)


def cleanup_town(fixture: TownFixture) -> None:
    with contextlib.suppress(GastownError):
        stop(fixture.town, fixture.settings.with_overrides(binary=""), timeout=10)
    for proc in fixture.servers():
        procs.terminate(proc, timeout=10)


@pytest.fixture
def rigged_town(town: TownFixture) -> TownFixture:
    town.rig("hq")
    return town


def fake_dolt(name: str) -> Path:
    path = FAKES / name
    assert path.is_file(), path
    return path


def spawn_dolt_by_hand(
    binary: Path, fixture: TownFixture, *args: str, port: int | None = None
) -> subprocess.Popen[bytes]:
    """A server started the way a user would by hand: cd into .dolt-data, dolt sql-server.

    `args` replace the default `--host 127.0.0.1 --port <port, else the town's>`.
    """
    argv = list(args) or ["--host", "127.0.0.1", "--port", str(port or fixture.port)]
    return subprocess.Popen(
        [str(binary), "sql-server", *argv],
        cwd=fixture.town.data_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dolt_env(),
        start_new_session=True,
    )


def spawn_fake_server(name: str, fixture: TownFixture, port: int | None = None) -> subprocess.Popen[str]:
    """A FAKE `dolt sql-server` (tests/fakes/NAME) serving this town's data dir from inside it, as a
    server works, on `port` if given; its first line (read with first_line) says what it pretends."""
    return subprocess.Popen(
        [str(fake_dolt(name)), "sql-server", *(["--port", str(port)] if port is not None else [])]
        + ["--data-dir", str(fixture.town.data_dir)],
        cwd=fixture.town.data_dir,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


class Lines:
    """A child's output read line by line, each line with a timeout: a child that stops writing fails
    the test instead of hanging it."""

    def __init__(self, stream: object) -> None:
        self.fd = stream.fileno()  # type: ignore[attr-defined]
        os.set_blocking(self.fd, False)
        self.pending = b""

    def next(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line from the child within {timeout:g}s (so far: {self.pending[-200:]!r})"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"the child closed its output (so far: {self.pending[-200:]!r})"
                self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode("utf-8", errors="replace") + "\n"


def first_line(proc: subprocess.Popen, timeout: float = 30) -> str:
    assert proc.stdout is not None
    return Lines(proc.stdout).next(timeout)


LISTENER = """
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[2], int(sys.argv[1])))
s.listen()
print("up", flush=True)
time.sleep(600)
"""


def foreign_listener(port: int, address: str = "127.0.0.1") -> subprocess.Popen[str]:
    """A plain TCP listener that is not Dolt, returned once it listens on address:port."""
    holder = subprocess.Popen([sys.executable, "-c", LISTENER, str(port), address], stdout=subprocess.PIPE, text=True)
    assert first_line(holder).strip() == "up"
    return holder


def end(proc: subprocess.Popen) -> None:
    """Kill a process this test started (only ever one of our own children)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """tests/unit/ is the unit layer (pure functions, no Dolt): `pytest -m unit` runs it alone.

    A test marked needs_root is deselected (not skipped) unless we are root: the root pass runs it.
    """
    for item in items:
        if "unit" in item.path.parts:
            item.add_marker(pytest.mark.unit)
    for item in items:
        for marker in item.iter_markers("needs_root"):
            if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0].strip():
                raise pytest.UsageError(f'{item.nodeid}: needs_root takes one reason, as needs_root("why")')
    if os.geteuid() == 0:
        return
    deselected = [item for item in items if item.get_closest_marker("needs_root")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("needs_root")]


def _skip_is_a_failure(report: pytest.TestReport | pytest.CollectReport, nodeid: str) -> None:
    if not report.skipped or nodeid in ALLOWED_SKIPS:
        return
    longrepr = report.longrepr
    reason = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (
        f"{nodeid} skipped ({reason}), and a skip fails the run: fix what it lacks, mark it "
        'needs_root("why") if only root can run it, or add it to ALLOWED_SKIPS in tests/conftest.py '
        "saying why it cannot run (docs/testing.md)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _skip_is_a_failure(report, item.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _skip_is_a_failure(report, collector.nodeid)
    return report
