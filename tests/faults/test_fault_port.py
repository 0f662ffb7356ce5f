"""Cases 5 and 6: the port is held by something that is not this town's server.

Plus the converse: this town's server on a port other than the configured one is still this
town's server (found, not duplicated).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conftest import TownFixture, cleanup_town, foreign_listener, free_port, make_town, spawn_dolt_by_hand
from faultkit import alive, assert_clean, audit_events, audited_gt_dolt, end, wait_for_sql
from gastown_tasks.ops.errors import PortInUse
from gastown_tasks.ops.files.runfiles import read_pid_file
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults


def test_port_held_by_a_foreign_listener_is_named_and_left_alone(rigged_town: TownFixture) -> None:
    """Case 5 through the ops API."""
    t = rigged_town
    holder = foreign_listener(t.port)
    try:
        with pytest.raises(PortInUse) as err:
            server.start(t.town, t.settings)
        assert str(t.port) in str(err.value) and f"pid {holder.pid}" in str(err.value)
        assert "gt-dolt start --port" in str(err.value)  # a remedy gt follows: the port is kept in config.yaml
        assert holder.poll() is None
        assert not t.servers()
        assert not t.town.pid_file.exists()
    finally:
        end(holder)


@pytest.mark.parametrize("bound_to", ["127.0.0.1", "0.0.0.0"])
def test_gt_dolt_start_on_a_port_held_by_a_non_dolt_listener_fails_naming_port_and_holder(
    rigged_town: TownFixture, tmp_path: Path, bound_to: str
) -> None:
    """Case 5 through gt-dolt: exit 1, port and holder named, holder alive, no Dolt left."""
    t = rigged_town
    holder = foreign_listener(t.port, bound_to)
    audit = tmp_path / "audit.jsonl"
    try:
        done = audited_gt_dolt(t, audit, "start", "--timeout", "30", GT_AUDIT_PROTECT=str(holder.pid))
        assert_clean(done, 1)
        assert f"port {t.port} is in use by pid {holder.pid} ({sys.executable}" in done.stderr
        assert "it is not this town's Dolt server, so it was left alone" in done.stderr
        assert holder.poll() is None
        assert not t.servers() and not t.town.pid_file.exists()
        assert not [e for e in audit_events(audit) if e["event"] == "subprocess.Popen"]  # nothing launched
        status = t.gt_dolt("status")
        assert_clean(status, 3)
        assert f"port {t.port} is held by pid {holder.pid}" in status.stdout
        assert_clean(t.gt_dolt("stop"), 0)
        assert holder.poll() is None
    finally:
        end(holder)


@pytest.fixture
def other_town(tmp_path: Path, dolt_binary: Path):
    fixture = make_town(tmp_path / "other-town")
    fixture.rig("hq")
    yield fixture
    cleanup_town(fixture)


def test_port_held_by_another_towns_dolt_is_named_and_never_touched(
    town: TownFixture, other_town: TownFixture, tmp_path: Path
) -> None:
    """Case 6, real Dolt: town B's server holds the port town A is configured for."""
    b = other_town
    a = make_town(town.root, port=b.port)  # the `town` fixture's town, pointed at B's port
    a.rig("hq")
    b_server = server.start(b.town, b.settings)
    b.query("CREATE TABLE marker (id INT PRIMARY KEY)", "hq")
    audit = tmp_path / "audit.jsonl"

    status = audited_gt_dolt(a, audit, "status", GT_AUDIT_PROTECT=str(b_server.pid))
    assert_clean(status, 3)
    assert f"port {b.port} is held by pid {b_server.pid}" in status.stdout
    assert "which is not this town's server" in status.stdout

    start = audited_gt_dolt(a, audit, "start", "--timeout", "30", GT_AUDIT_PROTECT=str(b_server.pid))
    assert_clean(start, 1)
    assert f"port {b.port} is in use by pid {b_server.pid}" in start.stderr
    assert str(b.town.data_dir) in start.stderr  # the holder's command line says whose it is

    stop = audited_gt_dolt(a, audit, "stop", "--timeout", "1", GT_AUDIT_PROTECT=str(b_server.pid))
    assert_clean(stop, 0)
    assert "is not running" in stop.stdout

    assert alive(b_server.pid) and b.query("SHOW TABLES", "hq") == [("marker",)]
    assert not a.servers() and not a.town.pid_file.exists()
    signals = [e for e in audit_events(audit) if e["event"] in ("os.kill", "os.killpg")]
    assert signals == []


def test_a_copied_town_never_stops_the_original_towns_server(other_town: TownFixture, tmp_path: Path) -> None:
    """`cp -r` of a town while its server runs: the copy's pid and state files name the original's
    server, with its exact create_time.  Still not the copy's server: it serves the other data dir.
    """
    b = other_town
    b_server = server.start(b.town, b.settings)
    copy = make_town(tmp_path / "copy", port=b.port)
    shutil.copytree(b.town.daemon_dir, copy.town.daemon_dir)
    shutil.copytree(b.town.data_dir, copy.town.data_dir, ignore=shutil.ignore_patterns("LOCK"))
    audit = tmp_path / "audit.jsonl"

    status = audited_gt_dolt(copy, audit, "status", GT_AUDIT_PROTECT=str(b_server.pid))
    assert_clean(status, 1)
    assert "not running" in status.stdout
    stop = audited_gt_dolt(copy, audit, "stop", "--timeout", "1", GT_AUDIT_PROTECT=str(b_server.pid))
    assert_clean(stop, 0)
    assert "is not running" in stop.stdout

    assert alive(b_server.pid)
    assert [e for e in audit_events(audit) if e["event"] in ("os.kill", "os.killpg")] == []
    assert read_pid_file(b.town).pid == b_server.pid


def test_this_towns_server_on_another_port_is_found_not_duplicated(rigged_town: TownFixture, dolt_binary: Path) -> None:
    """Started by hand on port Q with no pid file; the town is configured for port P.

    A second server on the same data dir would die on Dolt's lock, so start must see it.
    """
    t = rigged_town
    other = t.settings.with_overrides(port=free_port())
    by_hand = spawn_dolt_by_hand(dolt_binary, t, port=other.port)
    try:
        wait_for_sql(TownFixture(t.town, other))
        status = t.gt_dolt("status", "--port", str(t.port))  # Dolt wrote Q into config.yaml: P only by flag
        assert_clean(status, 0)
        assert f"pid {by_hand.pid}" in status.stdout and f"port:       {other.port}" in status.stdout
        assert f"not the town's port {t.port}" in status.stdout

        start = t.gt_dolt("start", "--port", str(t.port))
        assert_clean(start, 0)
        assert f"already running: pid {by_hand.pid} on 127.0.0.1:{other.port}" in start.stdout
        assert [p.pid for p in t.servers()] == [by_hand.pid]

        stop = t.gt_dolt("stop")
        assert_clean(stop, 0)
        assert f"stopped (pid {by_hand.pid})" in stop.stdout
        assert by_hand.wait(timeout=60) == 0  # SIGTERM: Dolt shuts down cleanly and exits 0
    finally:
        end(by_hand)
