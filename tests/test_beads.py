"""Gas Town's own client finds the town's server: the real `bd` (beads v1.0.0) against a real Dolt.

`bd` comes from the project's setup (gt-dolt install --bd, cached beside Dolt); without it these
tests fail, never skip.  bd gets a `dolt` on its PATH, so it *could* start a server of its own:
every test also proves it did not.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import TownFixture, cleanup_town, free_port, make_town, old_database
from faultkit import alive, assert_clean, end, wait_until
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.build.gobuild import bd_binary, bd_version
from gastown_tasks.ops.host import procs
from gastown_tasks.ops.server import server
from gastown_tasks.ops.server.rogues import find_rogues


@pytest.fixture(scope="session")
def bd(dolt_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = bd_binary()
    if not (path.is_file() and bd_version(path)):
        pytest.fail(f"no bd at {path}: run ./dev test (gt-dolt install --bd) to build it", pytrace=False)
    return path


# bd 1.0 keeps a circuit breaker per server in a fixed folder (whatever TMPDIR says): a file named by
# host and port.  A test forgets the breakers of the ports it holds, before and after, and no other.
BD_BREAKERS = Path("/tmp/beads-circuit")


def forget_breakers(port: int) -> None:
    for suffix in (".json", ".json.tmp"):
        with contextlib.suppress(OSError):  # absent, or another user's (theirs to keep)
            (BD_BREAKERS / f"beads-dolt-circuit-127-0-0-1-{port}{suffix}").unlink()


@pytest.fixture
def bd_ports(town: TownFixture) -> Iterator[list[int]]:
    """The ports bd talks to in this test (the town's, and any a test adds): their breakers are forgotten."""
    ports = [town.port]
    yield ports
    for port in ports:
        forget_breakers(port)


@pytest.fixture
def bd_env(
    town: TownFixture, bd: Path, dolt_binary: Path, tmp_path: Path, bd_ports: list[int]
) -> Iterator[dict[str, str]]:
    """bd's environment: a private HOME, a git identity, and a `dolt` on PATH it could misuse."""
    bin_dir = tmp_path / "bd-bin"
    bin_dir.mkdir()
    (bin_dir / "dolt").symlink_to(dolt_binary)
    home = tmp_path / "bd-home"
    home.mkdir()
    env = {k: v for k, v in dolt_env().items() if not k.startswith(("BEADS_", "GT_DOLT_"))}
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}:{env['PATH']}",
        GIT_AUTHOR_NAME="bd tests",
        GIT_AUTHOR_EMAIL="bd@gastown.invalid",
        GIT_COMMITTER_NAME="bd tests",
        GIT_COMMITTER_EMAIL="bd@gastown.invalid",
    )
    subprocess.run(["git", "init", "-q", str(town.root)], check=True, env=env, timeout=60)
    subprocess.run(["git", "-C", str(town.root), "config", "beads.role", "maintainer"], check=True, timeout=60)
    yield env


def run_bd(bd: Path, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bd), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def bd_init(bd: Path, env: dict[str, str], cwd: Path, port: int, database: str) -> None:
    forget_breakers(port)  # an earlier server's record on this port must not trip bd
    cwd.mkdir(parents=True, exist_ok=True)
    done = run_bd(
        bd,
        env,
        cwd,
        "init",
        "--server",
        "--server-host",
        "127.0.0.1",
        "--server-port",
        str(port),
        "--database",
        database,
        "--prefix",
        database[:4],
        "--non-interactive",
        "--skip-agents",
        "--skip-hooks",
        # init-rig (ours, like gt's) already wrote the rig's metadata.json: bd calls the workspace
        # initialized and wants --force to create its tables in the empty database
        "--force",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def bd_create(bd: Path, env: dict[str, str], cwd: Path, title: str) -> None:
    done = run_bd(bd, env, cwd, "create", title)
    assert done.returncode == 0, done.stdout + done.stderr


def titles(t: TownFixture, database: str, port: int | None = None) -> list[str]:
    conn_town = t if port is None else TownFixture(t.town, t.settings.with_overrides(port=port))
    return sorted(title for (title,) in conn_town.query("SELECT title FROM issues", database))


def only_our_server(t: TownFixture, pid: int) -> None:
    """No rogue server, and no Dolt process but ours listening anywhere."""
    assert find_rogues(t.town) == []
    others = [
        p
        for p in procs.dolt_servers()
        if p.pid != pid and procs.served_data_dir(p) and str(t.root) in (procs.served_data_dir(p) or "")
    ]
    assert others == [], [p.cmdline() for p in others]


def test_bd_in_a_fresh_town_writes_into_the_towns_server_and_starts_none_of_its_own(
    town: TownFixture, bd: Path, bd_env: dict[str, str]
) -> None:
    t = town
    assert_clean(t.gt_dolt("init-rig", "hq"), 0)
    started = server.start(t.town, t.settings)
    bd_init(bd, bd_env, t.root, t.port, "hq")
    bd_create(bd, bd_env, t.root, "first bead")
    assert titles(t, "hq") == ["first bead"]
    only_our_server(t, started.pid)
    listed = json.loads(t.gt_dolt("list", "--json").stdout)
    assert listed == [
        {"name": "hq", "path": str(t.town.rig_dir("hq")), "served": True, "linked": False, "beads": ["hq"]}
    ]


@pytest.mark.parametrize("layout", ["<rig>/.beads", "<rig>/mayor/rig/.beads"])
def test_bd_of_another_rig_finds_the_server_in_either_beads_layout(
    town: TownFixture, bd: Path, bd_env: dict[str, str], layout: str
) -> None:
    t = town
    t.rig("hq")
    t.rig("gastown")
    started = server.start(t.town, t.settings)
    where = t.root / "gastown" if layout == "<rig>/.beads" else t.root / "gastown" / "mayor" / "rig"
    bd_init(bd, bd_env, where, t.port, "gastown")
    bd_create(bd, bd_env, where, "a gastown bead")
    assert titles(t, "gastown") == ["a gastown bead"]
    assert (where / ".beads" / "metadata.json").is_file()
    only_our_server(t, started.pid)
    doctor = t.gt_dolt("doctor")
    assert "ok   beads gastown" in doctor.stdout, doctor.stdout
    assert "ok   beads hq" in doctor.stdout and "no beads metadata names" not in doctor.stdout  # init-rig wrote it


def test_after_start_on_another_port_bd_still_finds_the_server(
    town: TownFixture, bd: Path, bd_env: dict[str, str], bd_ports: list[int]
) -> None:
    t = town
    t.rig("hq")
    server.start(t.town, t.settings)
    bd_init(bd, bd_env, t.root, t.port, "hq")
    bd_create(bd, bd_env, t.root, "before the move")
    server.stop(t.town, t.settings)
    other = free_port()
    bd_ports.append(other)
    forget_breakers(other)
    moved = t.gt_dolt("start", "--port", str(other))
    assert_clean(moved, 0)
    assert f"pointed the beads of rig hq at the server: dolt_server_port {t.port} -> {other}" in moved.stdout
    assert (t.root / ".beads" / "dolt-server.port").read_text() == str(other)
    bd_create(bd, bd_env, t.root, "after the move")
    assert titles(t, "hq", port=other) == ["after the move", "before the move"]
    again = t.gt_dolt("start", "--port", str(other))
    assert_clean(again, 0)
    assert "already running" in again.stdout and "pointed the beads" not in again.stdout  # only when a value changes


def test_doctor_reports_a_stale_or_embedded_beads_and_fix_repairs_it_keeping_other_keys(
    town: TownFixture, bd: Path, bd_env: dict[str, str]
) -> None:
    t = town
    t.rig("hq")
    started = server.start(t.town, t.settings)
    bd_init(bd, bd_env, t.root, t.port, "hq")
    metadata = t.root / ".beads" / "metadata.json"
    data = json.loads(metadata.read_text())
    data.update(dolt_mode="embedded", dolt_server_port=1, custom_key={"kept": True})
    metadata.write_text(json.dumps(data, indent=2))
    (t.root / ".beads" / "dolt-server.port").write_text("1")
    doctor = t.gt_dolt("doctor")
    assert_clean(doctor, 1)
    line = next(line for line in doctor.stdout.splitlines() if "beads hq" in line)
    assert line.startswith("fail") and "mode embedded" in line and "port 1" in line and "split brain" in line
    fixed = t.gt_dolt("doctor", "--fix")
    assert_clean(fixed, 0)
    assert "fixed: pointed the beads of rig hq at the server: dolt_mode 'embedded' -> 'server'" in fixed.stdout
    repaired = json.loads(metadata.read_text())
    assert repaired["custom_key"] == {"kept": True} and repaired["project_id"] == data["project_id"]
    assert repaired["dolt_mode"] == "server" and repaired["dolt_server_port"] == t.port
    bd_create(bd, bd_env, t.root, "after the repair")
    assert titles(t, "hq") == ["after the repair"]
    only_our_server(t, started.pid)


def test_fix_metadata_prints_each_change_and_a_dry_run_writes_nothing(
    town: TownFixture, bd: Path, bd_env: dict[str, str]
) -> None:
    t = town
    t.rig("hq")
    server.start(t.town, t.settings)
    bd_init(bd, bd_env, t.root, t.port, "hq")
    port_file = t.root / ".beads" / "dolt-server.port"
    port_file.write_text("1")
    dry = t.gt_dolt("fix-metadata", "--dry-run")
    assert_clean(dry, 0)
    assert f"would change: rig hq: port 1 -> {t.port}" in dry.stdout and port_file.read_text() == "1"
    done = t.gt_dolt("fix-metadata")
    assert_clean(done, 0)
    assert f"changed: rig hq: port 1 -> {t.port}" in done.stdout and port_file.read_text() == str(t.port)
    again = t.gt_dolt("fix-metadata")
    assert_clean(again, 0)
    assert "already point" in again.stdout


def test_a_dolt_database_naming_another_existing_database_is_reported_not_overwritten(
    town: TownFixture, bd: Path, bd_env: dict[str, str]
) -> None:
    t = town
    t.rig("hq")
    t.rig("other")
    server.start(t.town, t.settings)
    bd_init(bd, bd_env, t.root, t.port, "hq")
    metadata = t.root / ".beads" / "metadata.json"
    data = json.loads(metadata.read_text())
    metadata.write_text(json.dumps({**data, "dolt_database": "other"}, indent=2))
    done = t.gt_dolt("fix-metadata")
    assert_clean(done, 0)
    assert "names database other, which exists; left as it is" in done.stdout
    assert json.loads(metadata.read_text())["dolt_database"] == "other"


def test_init_rig_and_migrate_point_existing_beads_at_the_server(
    town: TownFixture, bd: Path, bd_env: dict[str, str], dolt_binary: Path
) -> None:
    t = town
    t.rig("hq")
    server.start(t.town, t.settings)
    bd_init(bd, bd_env, t.root, t.port, "hq")
    (t.root / ".beads" / "dolt-server.port").write_text("1")
    created = t.gt_dolt("init-rig", "extra")
    assert_clean(created, 0)
    assert f"pointed the beads of rig hq at the server: port 1 -> {t.port}" in created.stdout
    server.stop(t.town, t.settings)
    old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "old")])
    beads_dir = t.root / "gastown" / ".beads"
    (beads_dir / "metadata.json").write_text(
        json.dumps({"database": "dolt", "dolt_mode": "embedded", "project_id": "p"}, indent=2)
    )
    moved = t.gt_dolt("migrate")
    assert_clean(moved, 0)
    repaired = json.loads((beads_dir / "metadata.json").read_text())
    assert repaired["dolt_mode"] == "server" and repaired["dolt_database"] == "gastown"
    assert repaired["dolt_server_port"] == t.port and repaired["project_id"] == "p"


def test_a_rogue_server_is_named_by_doctor_and_stop_rogue_stops_it_and_only_it(
    rigged_town: TownFixture, dolt_binary: Path
) -> None:
    """A server started the way bd starts its own: cwd <rig>/.beads/dolt, no --data-dir."""
    t = rigged_town
    ours = server.start(t.town, t.settings)
    rogue_dir = t.root / "gastown" / ".beads" / "dolt"
    rogue_dir.mkdir(parents=True)
    subprocess.run([str(dolt_binary), "init"], cwd=rogue_dir, env=dolt_env(), check=True, capture_output=True)
    rogue_port = free_port()
    rogue = subprocess.Popen(
        [str(dolt_binary), "sql-server", "-H", "127.0.0.1", "-P", str(rogue_port)],
        cwd=rogue_dir,
        env=dolt_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: rogue_port in procs.listening_ports(psutil.Process(rogue.pid)), "the rogue to listen")
        doctor = t.gt_dolt("doctor")
        assert_clean(doctor, 1)
        assert f"fail rogue servers: pid {rogue.pid} serving {rogue_dir} (port {rogue_port})" in doctor.stdout
        assert f"fix: gt-dolt stop-rogue --pid {rogue.pid}" in doctor.stdout
        refused = t.gt_dolt("stop-rogue", "--pid", str(ours.pid))
        assert_clean(refused, 1)
        assert "nothing was signalled" in refused.stderr and alive(ours.pid)
        stopped = t.gt_dolt("stop-rogue")
        assert_clean(stopped, 0)
        assert f"stopped rogue dolt sql-server pid {rogue.pid}" in stopped.stdout
        assert rogue.wait(timeout=60) == 0  # SIGTERM: Dolt shuts down cleanly and exits 0
        assert alive(ours.pid)
        history = subprocess.run(
            [str(dolt_binary), "log", "-n", "1"],
            cwd=rogue_dir,
            env=dolt_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert history.returncode == 0 and "Initialize data repository" in history.stdout  # its data is intact
        assert "ok   rogue servers" in t.gt_dolt("doctor").stdout
    finally:
        end(rogue)


def test_a_planted_symlink_as_metadata_json_is_never_written_through(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    canary = tmp_path / "canary.json"
    canary.write_text('{"dolt_mode": "embedded", "dolt_server_port": 1}')
    canary.chmod(0o644)
    before = (canary.read_bytes(), canary.stat().st_mode)
    (t.root / ".beads").mkdir(exist_ok=True)
    (t.root / ".beads" / "metadata.json").unlink(missing_ok=True)  # the one init-rig wrote
    (t.root / ".beads" / "metadata.json").symlink_to(canary)
    link = t.root / ".beads" / "metadata.json"
    for args, code in ((["start"], 0), (["fix-metadata"], 0), (["doctor", "--fix"], 1), (["doctor"], 1)):
        done = t.gt_dolt(*args)
        assert_clean(done, code)
        assert f"{link} is a symlink to {canary}" in done.stdout, (args, done.stdout)
    assert (canary.read_bytes(), canary.stat().st_mode) == before
    assert os.path.islink(t.root / ".beads" / "metadata.json")


def test_bd_lists_in_a_second_town_the_issues_bd_made_in_the_first_after_sync_and_pull(
    town: TownFixture, bd: Path, bd_env: dict[str, str], bd_ports: list[int], dolt_binary: Path, tmp_path: Path
) -> None:
    """Two machines share issues: town a pushes its rig, town b clones it once, then sync and pull."""
    a = town
    assert_clean(a.gt_dolt("init-rig", "hq"), 0)
    server.start(a.town, a.settings)
    bd_init(bd, bd_env, a.root, a.port, "hq")
    bd_create(bd, bd_env, a.root, "made in town a")
    url = (tmp_path / "remotes" / "hq").as_uri()
    assert_clean(a.gt_dolt("remote", "add", "--rig", "hq", "origin", url), 0)
    assert_clean(a.gt_dolt("sync"), 0)

    b = make_town(tmp_path / "second")
    bd_ports.append(b.port)
    try:
        b.town.data_dir.mkdir(parents=True)
        cloned = subprocess.run(
            [str(dolt_binary), "clone", url, "hq"], cwd=b.town.data_dir, env=dolt_env(), capture_output=True, text=True
        )
        assert cloned.returncode == 0, cloned.stderr
        shutil.copytree(a.root / ".beads", b.root / ".beads")  # the rig's beads files, as a git clone brings them
        subprocess.run(["git", "init", "-q", str(b.root)], check=True, env=bd_env, timeout=60)
        subprocess.run(["git", "-C", str(b.root), "config", "beads.role", "maintainer"], check=True, timeout=60)
        server.start(b.town, b.settings)
        assert_clean(b.gt_dolt("fix-metadata"), 0)  # town b's beads now name town b's server
        seen_in_b = run_bd(bd, bd_env, b.root, "list", "--json")
        assert "made in town a" in seen_in_b.stdout, seen_in_b.stdout + seen_in_b.stderr
        bd_create(bd, bd_env, b.root, "made in town b")
        assert_clean(b.gt_dolt("sync"), 0)
        assert_clean(a.gt_dolt("pull"), 0)
        seen_in_a = run_bd(bd, bd_env, a.root, "list", "--json")
        assert "made in town b" in seen_in_a.stdout, seen_in_a.stdout + seen_in_a.stderr
    finally:
        cleanup_town(b)
