"""Rule 2, verify what you claim: start says where the server listens and what it serves only once
the server's own sockets and files prove it, and a server is the town's only if it serves the
whole .dolt-data through the town's config or data dir, never one rig's folder.

The config swap is a FAKE wrapper (tests/fakes/dolt-fake-config-swap) that changes the config
gt-dolt wrote and then runs the real Dolt on it: what someone who could write .dolt-data would do
between gt-dolt's write and Dolt's read (least privilege now refuses such a folder, so this is the
only way left to show the check itself).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from conftest import FAKES, TownFixture, cleanup_town, free_port, make_town, spawn_dolt_by_hand
from faultkit import alive, assert_clean, audit_events, audited_gt_dolt, end, wait_until
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.files.runfiles import read_state
from gastown_tasks.ops.host import tcp
from gastown_tasks.ops.server import server
from gastown_tasks.ops.sql import sqlclient
from hostile import wait_answering

pytestmark = pytest.mark.hostile
root_only = pytest.mark.needs_root("binds every interface inside a network namespace it makes")

SWAPS: dict[str, Callable[[Path], str]] = {
    "host-every-interface": lambda _: "host:0.0.0.0",
    "another-port": lambda _: f"port:{free_port()}",
    "metrics-on-every-interface": lambda _: f"metrics:{free_port()}",
    "another-data-dir": lambda other: f"data_dir:{other}",
}
SAID = {
    "host-every-interface": "beyond the configured",
    "another-port": "beyond the configured",
    "metrics-on-every-interface": "beyond the configured",
    "another-data-dir": "the databases it serves are not the town's",
}


class TestStartProvesWhatItSays:
    @pytest.mark.parametrize("swap", list(SWAPS))
    def test_a_server_that_read_another_config_is_stopped_and_the_start_fails(
        self, rigged_town: TownFixture, dolt_binary: Path, tmp_path: Path, swap: str
    ) -> None:
        t = rigged_town
        other = tmp_path / "other-data"
        other.mkdir()
        subprocess.run([str(dolt_binary), "init"], cwd=_mkdir(other / "hq"), env=dolt_env(), check=True, timeout=60)
        done = t.gt_dolt(
            "start",
            "--timeout",
            "30",
            INVOKE_DOLT_BINARY=str(FAKES / "dolt-fake-config-swap"),
            FAKE_REAL_DOLT=str(dolt_binary),
            FAKE_SWAP=SWAPS[swap](other),
        )
        assert_clean(done, 1)
        assert "is not the server gt-dolt configured" in done.stderr and SAID[swap] in done.stderr, done.stderr
        assert "it was stopped" in done.stderr
        assert not [p for p in psutil.process_iter() if _is_the_fake(p)]  # no server left, anywhere
        assert not t.town.pid_file.exists() and read_state(t.town).running is False
        assert sqlclient.served_databases(t.settings, timeout=1) is None

    def test_a_started_server_listens_exactly_where_start_says(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        done = t.gt_dolt("start")
        assert_clean(done, 0)
        assert f"on 127.0.0.1:{t.port}," in done.stdout
        pid = int(t.town.pid_file.read_text())
        listening = {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections() if c.status == "LISTEN"}
        assert listening == {("127.0.0.1", t.port)}

    @root_only
    def test_a_server_configured_for_every_interface_is_verified_as_listening_there(
        self, rigged_town: TownFixture
    ) -> None:
        """Go listens on `::` for 0.0.0.0: that is what was asked.  In a network namespace of the
        test's own, where loopback is the only interface: nothing is exposed."""
        t = rigged_town
        python = f"{sys.executable} -P -m gastown_tasks"
        script = f"ip link set lo up && {python} start && {python} status --json && {python} stop"
        done = subprocess.run(
            ["unshare", "--net", "sh", "-c", script],
            cwd=t.root,
            env=t.env(GT_DOLT_HOST="0.0.0.0", INVOKE_DOLT_ALLOW_PASSWORDLESS_BIND="true"),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert_clean(done, 0)
        assert f"on 0.0.0.0:{t.port}," in done.stdout and "is not the server gt-dolt configured" not in done.stderr

    def test_a_running_server_started_with_another_config_is_named_not_hidden(
        self, rigged_town: TownFixture, dolt_binary: Path
    ) -> None:
        """Started by hand on every interface: `start` finds it (it is the town's) and says so."""
        t = rigged_town
        by_hand = spawn_dolt_by_hand(dolt_binary, t, "--host", "0.0.0.0", "--port", str(t.port))
        try:
            wait_answering(t)
            done = t.gt_dolt("start")
            assert_clean(done, 0)
            assert "already running" in done.stdout and "was not started with gt-dolt's config" in done.stdout
            assert f":{t.port}, beyond the configured 127.0.0.1:{t.port}" in done.stdout
        finally:
            end(by_hand)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_the_fake(proc: psutil.Process) -> bool:
    try:
        return any("dolt-fake-config-swap" in arg for arg in proc.cmdline()[:1]) and proc.status() != "zombie"
    except psutil.Error:
        return False


# Servers started by hand in and around the town: (cwd, arguments) relative to the town.
def _one_rig_from_inside(t: TownFixture, port: int) -> tuple[Path, list[str]]:
    return t.town.rig_dir("hq"), ["--host", "127.0.0.1", "--port", str(port)]


def _one_rig_by_flag(t: TownFixture, port: int) -> tuple[Path, list[str]]:
    return t.root, ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(t.town.rig_dir("hq"))]


def _whole_town_from_inside(t: TownFixture, port: int) -> tuple[Path, list[str]]:
    return t.town.data_dir, ["--host", "127.0.0.1", "--port", str(port)]


def _whole_town_by_flag(t: TownFixture, port: int) -> tuple[Path, list[str]]:
    return t.root, ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(t.town.data_dir)]


def _whole_town_with_own_config(t: TownFixture, port: int) -> tuple[Path, list[str]]:
    config = t.town.data_dir / "mine.yaml"
    config.write_text(f"listener:\n  host: 127.0.0.1\n  port: {port}\n")
    return t.town.data_dir, ["--config", config.name]


ONE_RIG = {"one-rig-from-its-folder": _one_rig_from_inside, "one-rig-by-data-dir-flag": _one_rig_by_flag}
WHOLE_TOWN = {
    "town-from-dolt-data": _whole_town_from_inside,
    "town-by-data-dir-flag": _whole_town_by_flag,
    "town-with-a-config-of-its-own": _whole_town_with_own_config,
}


def by_hand(binary: Path, cwd: Path, args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(binary), "sql-server", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dolt_env(),
        start_new_session=True,
    )


class TestTheTownsServerServesTheWholeTown:
    @pytest.mark.parametrize("how", list(ONE_RIG))
    @pytest.mark.parametrize("port", ["the-towns-port", "another-port"])
    def test_a_server_of_one_rig_is_never_the_towns_nor_stopped_by_stop(
        self, town: TownFixture, dolt_binary: Path, tmp_path: Path, how: str, port: str
    ) -> None:
        t = town
        t.rig("hq")
        t.rig("gastown")
        listen = t.port if port == "the-towns-port" else free_port()
        cwd, args = ONE_RIG[how](t, listen)
        lone = by_hand(dolt_binary, cwd, args)
        audit = tmp_path / "audit.jsonl"
        try:
            wait_answering(t, listen)
            start = t.gt_dolt("start")
            assert_clean(start, 1)
            assert f"pid {lone.pid}" in start.stderr and f"serves only {t.town.rig_dir('hq')}" in start.stderr
            assert f"gt-dolt stop-rogue --pid {lone.pid}" in start.stderr
            status = t.gt_dolt("status")
            assert_clean(status, 3)
            assert f"pid {lone.pid}" in status.stdout  # named in a note, not taken for the town's server
            stop = audited_gt_dolt(t, audit, "stop", GT_AUDIT_PROTECT=str(lone.pid))
            assert_clean(stop, 0)
            assert "is not running" in stop.stdout
            assert not [e for e in audit_events(audit) if e["event"].startswith("os.kill")] and alive(lone.pid)
            doctor = t.gt_dolt("doctor")
            assert_clean(doctor, 1)
            assert "fail orphans" in doctor.stdout and f"pid {lone.pid}" in doctor.stdout
            rogue = t.gt_dolt("stop-rogue", "--pid", str(lone.pid))
            assert_clean(rogue, 0)
            wait_until(lambda: lone.poll() is not None, "the one-rig server to stop")
            assert_clean(t.gt_dolt("start"), 0)  # now the town's own server serves every rig
            assert {"hq", "gastown"} <= set(sqlclient.served_databases(t.settings) or [])
        finally:
            end(lone)

    @pytest.mark.parametrize("how", list(WHOLE_TOWN))
    def test_a_server_of_the_whole_data_dir_started_by_hand_is_the_towns(
        self, rigged_town: TownFixture, dolt_binary: Path, how: str
    ) -> None:
        t = rigged_town
        listen = free_port()
        cwd, args = WHOLE_TOWN[how](t, listen)
        whole = by_hand(dolt_binary, cwd, args)
        try:
            wait_answering(t, listen)
            start = t.gt_dolt("start")
            assert_clean(start, 0)
            assert "already running" in start.stdout and f"pid {whole.pid}" in start.stdout
            assert_clean(t.gt_dolt("stop"), 0)
            wait_until(lambda: whole.poll() is not None, "stop to stop it")
        finally:
            end(whole)


class TestANestedTownIsNotARogue:
    def test_stop_rogue_never_stops_the_server_of_a_town_inside_this_one(
        self, rigged_town: TownFixture, tmp_path: Path
    ) -> None:
        """A clone inside a rig with its own demo town: that town's server is that town's business."""
        t = rigged_town
        nested = make_town(t.root / "gastown" / "clone" / "demo-town")
        audit = tmp_path / "audit.jsonl"
        try:
            nested.rig("hq")
            inner = server.start(nested.town, nested.settings)
            listed = t.gt_dolt("doctor")
            assert f"pid {inner.pid}" not in listed.stdout
            done = audited_gt_dolt(t, audit, "stop-rogue", GT_AUDIT_PROTECT=str(inner.pid))
            assert_clean(done, 0)
            assert "no rogue Dolt server" in done.stdout
            refused = t.gt_dolt("stop-rogue", "--pid", str(inner.pid))
            assert_clean(refused, 1)
            assert "nothing was signalled" in refused.stderr and alive(inner.pid)
            assert not [e for e in audit_events(audit) if e["event"].startswith("os.kill")]
        finally:
            cleanup_town(nested)

    def test_a_beads_server_inside_a_rig_is_still_a_rogue(self, rigged_town: TownFixture, dolt_binary: Path) -> None:
        """The split brain the rogue check exists for stays caught: no town marker on its way."""
        t = rigged_town
        folder = t.root / "gastown" / ".beads" / "dolt"
        folder.mkdir(parents=True)
        subprocess.run([str(dolt_binary), "init"], cwd=_mkdir(folder / "beads"), env=dolt_env(), check=True, timeout=60)
        rogue = by_hand(dolt_binary, folder, ["--host", "127.0.0.1", "--port", str(free_port())])
        try:
            wait_until(lambda: any(os.path.samefile(p.cwd(), folder) for p in _ours(rogue)), "the rogue to run")
            done = t.gt_dolt("stop-rogue")
            assert_clean(done, 0)
            assert f"stopped rogue dolt sql-server pid {rogue.pid}" in done.stdout
        finally:
            end(rogue)


def _ours(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return [psutil.Process(proc.pid)]
    except psutil.Error:
        return []


class TestALoopbackConnectToItselfIsNoServer:
    def test_a_socket_connected_to_itself_is_recognised_and_dropped_without_a_time_wait(self) -> None:
        """On loopback, a connect to a free port in the ephemeral range can pick that port as its own
        source (TCP simultaneous open): it "answers", and its TIME_WAIT would keep Dolt from binding
        the port.  Made here on purpose (bind, then connect to the same address)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.connect(("127.0.0.1", port))
        assert tcp.self_connected(sock)
        tcp.drop(sock)
        with socket.socket() as server_sock:  # the port is free at once: no TIME_WAIT was left
            server_sock.bind(("127.0.0.1", port))
        with socket.create_connection(("127.0.0.1", free_port_listening()), timeout=5) as other:
            assert not tcp.self_connected(other)


def free_port_listening() -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    _LISTENERS.append(listener)
    return listener.getsockname()[1]


_LISTENERS: list[socket.socket] = []
