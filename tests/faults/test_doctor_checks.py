"""gt-dolt doctor: one line per check (ok/warn/fail + the fixing command); --fix only the safe fixes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import (
    TownFixture,
    fake_dolt,
    first_line,
    foreign_listener,
    free_port,
    spawn_dolt_by_hand,
    spawn_fake_server,
)
from faultkit import alive, assert_clean, audit_events, audited_gt_dolt, dolt_trees, end, kill_9, wait_for_sql
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.files.runfiles import read_pid_file, read_state
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults

CHECKS = ("binary", "daemon", "port", "pid file", "state file", "orphans", "rigs")


def lines_by_check(output: str) -> dict[str, str]:
    """{check name: its line}; fails when a check is missing, doubled, or has no level."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        level, _, rest = line.partition(" ")
        name = rest.strip().split(":", 1)[0]
        if level in ("ok", "warn", "fail") and name in CHECKS:
            assert name not in found, f"two lines for {name}:\n{output}"
            found[name] = line
    assert sorted(found) == sorted(CHECKS), output
    return found


def level(lines: dict[str, str], name: str) -> str:
    return lines[name].split(" ", 1)[0]


def test_doctor_on_a_healthy_running_town_is_all_ok_and_exits_0(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    done = t.gt_dolt("doctor")
    assert_clean(done, 0)
    lines = lines_by_check(done.stdout)
    assert all(level(lines, name) == "ok" for name in CHECKS), done.stdout
    assert "dolt version 2.2.0" in lines["binary"]
    assert f"held by this town's server (pid {started.pid})" in lines["port"]
    assert "all served: hq" in lines["rigs"]


def test_doctor_on_a_stopped_town_says_the_port_is_free_and_exits_0(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("doctor")
    assert_clean(done, 0)
    lines = lines_by_check(done.stdout)
    assert f"{rigged_town.port} is free" in lines["port"] and level(lines, "port") == "ok"
    assert "served from the next start" in lines["rigs"]


def test_doctor_fails_on_a_missing_binary_and_names_install(rigged_town: TownFixture, tmp_path: Path) -> None:
    done = rigged_town.gt_dolt("doctor", INVOKE_DOLT_BINARY=str(tmp_path / "no-such-dolt"))
    assert_clean(done, 1)
    lines = lines_by_check(done.stdout)
    assert level(lines, "binary") == "fail" and "fix: gt-dolt install" in lines["binary"]


def test_doctor_fails_on_a_binary_that_does_not_run_as_dolt(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("doctor", INVOKE_DOLT_BINARY=str(fake_dolt("dolt-fake-dies-at-start")))
    assert_clean(done, 1)
    lines = lines_by_check(done.stdout)
    assert level(lines, "binary") == "fail" and "does not run" in lines["binary"]


def test_doctor_warns_on_another_dolt_version(rigged_town: TownFixture) -> None:
    """The named FAKE old-version answers `dolt version` with 1.0.0."""
    done = rigged_town.gt_dolt("doctor", INVOKE_DOLT_BINARY=str(fake_dolt("dolt-fake-old-version")))
    assert_clean(done, 0)  # a warning does not fail doctor
    lines = lines_by_check(done.stdout)
    assert level(lines, "binary") == "warn" and "Dolt 1.0.0" in lines["binary"] and "2.2.0" in lines["binary"]
    assert "fix: gt-dolt install" in lines["binary"]


def test_doctor_fails_on_a_port_held_by_someone_else_and_names_the_holder(rigged_town: TownFixture) -> None:
    t = rigged_town
    holder = foreign_listener(t.port)
    try:
        done = t.gt_dolt("doctor")
        assert_clean(done, 1)
        lines = lines_by_check(done.stdout)
        assert level(lines, "port") == "fail"
        assert f"pid {holder.pid}" in lines["port"] and "gt-dolt start --port" in lines["port"]
        assert holder.poll() is None
    finally:
        end(holder)


def test_doctor_warns_on_a_stale_pid_file_and_fix_removes_only_that(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    kill_9(started.pid)
    done = t.gt_dolt("doctor")
    assert_clean(done, 0)
    lines = lines_by_check(done.stdout)
    assert level(lines, "pid file") == "warn" and f"names pid {started.pid}" in lines["pid file"]
    assert "fix: gt-dolt doctor --fix" in lines["pid file"]
    assert level(lines, "state file") == "warn" and "fix: gt-dolt doctor --fix" in lines["state file"]

    trees = dolt_trees(t.root)
    audit = tmp_path / "audit.jsonl"
    fixed = audited_gt_dolt(t, audit, "doctor", "--fix")
    assert_clean(fixed, 0)
    assert f"fixed: removed the stale {t.town.pid_file}" in fixed.stdout
    assert f"fixed: marked {t.town.state_file} stopped" in fixed.stdout
    after = lines_by_check(fixed.stdout)
    assert all(level(after, name) == "ok" for name in CHECKS), fixed.stdout
    assert not t.town.pid_file.exists() and read_state(t.town).to_json()["running"] is False
    assert dolt_trees(t.root) == trees
    events = audit_events(audit)
    touched = {p for e in events for p in e.get("paths", [])} - {"/dev/null"}
    assert all(str(t.town.daemon_dir) in (p, str(Path(p).parent)) for p in touched), touched
    assert _only_dolt_version(events)
    assert_clean(t.gt_dolt("status"), 3)


def _only_dolt_version(events: list[dict]) -> bool:
    """The only processes doctor starts are `dolt version`; it signals nothing."""
    popens = [e for e in events if e["event"] == "subprocess.Popen"]
    signals = [e for e in events if e["event"] in ("os.kill", "os.killpg")]
    return not signals and all(e["argv"][1:] == ["version"] for e in popens)


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe", b"[]"], ids=["truncated", "not-utf8", "a-list"])
def test_doctor_fix_replaces_a_corrupt_state_file_and_keeps_a_copy(rigged_town: TownFixture, content: bytes) -> None:
    t = rigged_town
    t.town.state_file.write_bytes(content)
    done = t.gt_dolt("doctor")
    assert_clean(done, 0)
    assert level(lines_by_check(done.stdout), "state file") == "warn"
    fixed = t.gt_dolt("doctor", "--fix")
    assert_clean(fixed, 0)
    assert f"fixed: replaced the unreadable {t.town.state_file}" in fixed.stdout
    assert level(lines_by_check(fixed.stdout), "state file") == "ok"
    assert read_state(t.town).problem is None
    assert (t.town.daemon_dir / "dolt-state.json.corrupt").read_bytes() == content


def test_doctor_fix_on_a_running_server_records_it_and_never_signals_it(
    rigged_town: TownFixture, tmp_path: Path
) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    t.town.pid_file.write_text("garbage\n")
    t.town.state_file.write_text('{"running": false}')
    done = t.gt_dolt("doctor")
    assert_clean(done, 0)
    lines = lines_by_check(done.stdout)
    assert level(lines, "pid file") == "warn" and f"this town's server is pid {started.pid}" in lines["pid file"]
    assert level(lines, "state file") == "warn"
    audit = tmp_path / "audit.jsonl"
    fixed = audited_gt_dolt(t, audit, "doctor", "--fix", GT_AUDIT_PROTECT=str(started.pid))
    assert_clean(fixed, 0)
    assert f"fixed: recorded the running server (pid {started.pid})" in fixed.stdout
    assert all(level(lines_by_check(fixed.stdout), name) == "ok" for name in CHECKS), fixed.stdout
    assert read_pid_file(t.town).pid == started.pid
    state = json.loads(t.town.state_file.read_text())
    assert state["running"] is True and state["pid"] == started.pid and state["databases"] == ["hq"]
    assert _only_dolt_version(audit_events(audit)) and alive(started.pid)


def test_doctor_warns_on_an_orphan_server_of_this_town_on_another_port(
    rigged_town: TownFixture, dolt_binary: Path
) -> None:
    """A server of this town started by hand on another port, unknown to the pid file.

    Dolt writes the port it was started on into .dolt-data/config.yaml, where gt (and so gt-dolt)
    reads the town's port: it is the town's port now, and only the orphan is worth a warning."""
    t = rigged_town
    other = t.settings.with_overrides(port=free_port())
    by_hand = spawn_dolt_by_hand(dolt_binary, t, port=other.port)
    try:
        wait_for_sql(TownFixture(t.town, other))
        done = t.gt_dolt("doctor")
        assert_clean(done, 1)  # the beads init-rig pointed at the old port
        lines = lines_by_check(done.stdout)
        assert f"fail beads hq: {t.root / '.beads'} says port {t.port} (the server is on {other.port})" in done.stdout
        assert level(lines, "orphans") == "warn"
        assert f"pid {by_hand.pid} (port {other.port})" in lines["orphans"] and "does not name it" in lines["orphans"]
        assert level(lines, "port") == "ok" and f"{other.port} is held by this town's server" in lines["port"]
        assert f"GT_DOLT_PORT={t.port} is not used" in done.stdout
        assert_clean(t.gt_dolt("doctor", "--fix"), 0)
        assert read_pid_file(t.town).pid == by_hand.pid
        assert by_hand.poll() is None
    finally:
        server.stop(t.town, t.settings)
        end(by_hand)


def test_doctor_warns_on_a_rig_on_disk_that_the_server_does_not_serve(
    rigged_town: TownFixture, dolt_binary: Path
) -> None:
    """A rig made on disk while the server ran (e.g. by Gas Town's own tools) is served only after
    a restart.
    """
    t = rigged_town
    server.start(t.town, t.settings)
    late = subprocess.run(
        [str(dolt_binary), "init", "--name", "t", "--email", "t@example.invalid"],
        cwd=_mkdir(t.town.rig_dir("late")),
        capture_output=True,
        text=True,
        env=dolt_env(),
    )
    assert late.returncode == 0, late.stderr
    done = t.gt_dolt("doctor")
    assert_clean(done, 0)
    lines = lines_by_check(done.stdout)
    assert level(lines, "rigs") == "warn" and "not served: late" in lines["rigs"]
    assert "fix: gt-dolt restart" in lines["rigs"]
    assert_clean(t.gt_dolt("restart"), 0)
    assert level(lines_by_check(t.gt_dolt("doctor").stdout), "rigs") == "ok"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_doctor_fails_when_daemon_is_not_a_folder(rigged_town: TownFixture) -> None:
    import shutil

    t = rigged_town
    shutil.rmtree(t.town.daemon_dir)
    t.town.daemon_dir.write_text("x")
    done = t.gt_dolt("doctor")
    assert_clean(done, 1)
    lines = lines_by_check(done.stdout)
    assert level(lines, "daemon") == "fail" and f"fix: mv {t.town.daemon_dir}" in lines["daemon"]
    fixed = t.gt_dolt("doctor", "--fix")
    assert_clean(fixed, 1)
    assert str(t.town.daemon_dir) in fixed.stderr and t.town.daemon_dir.read_text() == "x"


def test_doctor_outside_a_town_exits_4(tmp_path: Path) -> None:
    from conftest import GT_DOLT

    done = subprocess.run([*GT_DOLT, "doctor"], cwd=tmp_path, capture_output=True, text=True)
    assert_clean(done, 4)
    assert "not in a Gas Town workspace" in done.stderr


def test_doctor_fails_when_two_servers_serve_this_town(rigged_town: TownFixture) -> None:
    """Two `dolt sql-server`s on one data dir: a real Dolt refuses (its lock), so two named
    FAKEs (ignores-sigterm) stand in.  doctor names both and signals neither.
    """
    t = rigged_town
    fakes = []
    try:
        for _ in range(2):
            fake = spawn_fake_server("dolt-fake-ignores-sigterm", t, port=free_port())
            fakes.append(fake)
            assert "listening" in first_line(fake)
        done = t.gt_dolt("doctor")
        assert_clean(done, 1)
        line = lines_by_check(done.stdout)["orphans"]
        assert line.startswith("fail orphans: 2 dolt sql-servers serve")
        assert all(f"pid {fake.pid}" in line for fake in fakes)
        assert all(fake.poll() is None for fake in fakes)
    finally:
        for fake in fakes:
            end(fake)
