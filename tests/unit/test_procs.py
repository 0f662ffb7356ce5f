"""Process ownership: the evidence that a pid is this town's `dolt sql-server`, and ending processes.

The evidence functions get stand-in processes (`Seen`: what psutil would report) so every case of
the rule is exact; the rest run real child processes of this test (a Python whose argv[0] is
"dolt" stands in for a server), each ended by its pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from gastown_tasks.ops.host import procs
from gastown_tasks.ops.polling import poll_until


class Seen:
    """What psutil shows of a process: its argv, working folder, open files, owner, start time."""

    def __init__(
        self,
        args: list[str],
        cwd: str | None = None,
        files: list[str] = (),  # type: ignore[assignment]
        uid: int | None = None,
        pid: int = 4242,
        created: float | None = 1000.0,
    ) -> None:
        self.args, self._cwd, self.files, self.uid, self.pid, self.created = args, cwd, list(files), uid, pid, created

    def cmdline(self) -> list[str]:
        return self.args

    def cwd(self) -> str:
        if self._cwd is None:
            raise psutil.AccessDenied(self.pid)
        return self._cwd

    def open_files(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(path=p) for p in self.files]

    def uids(self) -> SimpleNamespace:
        if self.uid is None:
            raise psutil.AccessDenied(self.pid)
        return SimpleNamespace(real=self.uid, effective=self.uid, saved=self.uid)

    def username(self) -> str:
        raise KeyError(self.uid)  # a uid without a name in /etc/passwd

    def create_time(self) -> float:
        if self.created is None:
            raise psutil.AccessDenied(self.pid)
        return self.created


@pytest.fixture
def town(tmp_path: Path) -> SimpleNamespace:
    data = tmp_path / "town" / ".dolt-data"
    (data / "hq" / ".dolt").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    return SimpleNamespace(data=data, config=data / "config.yaml", rig=data / "hq", other=tmp_path / "other")


DOLT = "/home/u/.cache/gastown-tasks/dolt/bin/dolt"


def _proc(seen: Seen) -> psutil.Process:
    return seen  # type: ignore[return-value]


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "value"),
    [
        (["dolt", "sql-server", "--port", "3308"], "3308"),
        (["dolt", "sql-server", "--port=3309"], "3309"),
        (["dolt", "sql-server", "-P", "3310"], "3310"),
        (["dolt", "sql-server", "-P=3311", "--port", "3312"], "3311"),  # the first given wins
        (["dolt", "sql-server", "--port"], None),  # a flag at the end has no value
        (["dolt", "sql-server", "--ports=1"], None),  # another flag that starts the same
        (["dolt", "sql-server"], None),
    ],
)
def test_a_flag_is_read_as_name_value_or_name_equals_value(args: list[str], value: str | None) -> None:
    assert procs.flag_value(args, "--port", "-P") == value


def test_flag_port_is_a_valid_port_or_none() -> None:
    assert procs.flag_port(_proc(Seen(["dolt", "sql-server", "-P", "3308"]))) == 3308
    assert procs.flag_port(_proc(Seen(["dolt", "sql-server", "--port", "3309"]))) == 3309
    assert procs.flag_port(_proc(Seen(["dolt", "sql-server", "--port=99999"]))) is None
    assert procs.flag_port(_proc(Seen(["dolt", "sql-server"]))) is None


@pytest.mark.parametrize(
    ("args", "is_server"),
    [
        ([DOLT, "sql-server"], True),
        (["dolt", "--data-dir", "/d", "sql-server"], True),
        (["dolt-fake-never-ready", "sql-server"], True),
        (["dolt"], False),
        (["dolt", "sql"], False),
        (["python3", "dolt", "sql-server"], False),  # the program is python, not dolt
        (["/opt/dolthub/bin/mysqld", "sql-server"], False),
        (["sql-server", "dolt"], False),
        ([], False),
    ],
)
def test_a_dolt_sql_server_is_a_dolt_program_with_sql_server_after_it(args: list[str], is_server: bool) -> None:
    assert procs.is_dolt_sql_server(_proc(Seen(args))) is is_server


# --- which folder a server serves ------------------------------------------------------------


def test_a_server_working_in_the_data_dir_with_no_flags_serves_the_town(town: SimpleNamespace) -> None:
    seen = Seen([DOLT, "sql-server"], cwd=str(town.data))
    assert procs.serves_town(_proc(seen), town.data, town.config)
    assert procs.looks_like_town_server(_proc(seen), town.data, town.config)
    assert procs.serves_data_dir(_proc(seen), town.data)
    assert procs.served_data_dir(_proc(seen)) == str(town.data.resolve())


def test_a_server_started_in_one_rig_serves_that_rig_not_the_town(town: SimpleNamespace) -> None:
    seen = Seen([DOLT, "sql-server"], cwd=str(town.rig), files=[str(town.rig / ".dolt" / "noms" / "LOCK")])
    assert procs.serves_data_dir(_proc(seen), town.data)  # it holds files in the data dir
    assert not procs.serves_town(_proc(seen), town.data, town.config)  # but serves one rig
    assert not procs.looks_like_town_server(_proc(seen), town.data, town.config)


def test_a_server_elsewhere_that_names_the_data_dir_but_holds_nothing_there_is_not_the_towns(
    town: SimpleNamespace,
) -> None:
    """A claim on the command line (or a symlink planted since) is not evidence."""
    seen = Seen([DOLT, "sql-server", "--data-dir", str(town.data)], cwd=str(town.other))
    assert not procs.serves_town(_proc(seen), town.data, town.config)
    assert not procs.serves_data_dir(_proc(seen), town.data)
    assert procs.served_data_dir(_proc(seen)) == str(town.other.resolve())


def test_a_server_with_data_dir_flag_that_holds_files_there_serves_the_town(town: SimpleNamespace) -> None:
    held = [str(town.rig / ".dolt" / "noms" / "LOCK")]
    seen = Seen([DOLT, "sql-server", f"--data-dir={town.data}"], cwd=str(town.other), files=held)
    assert procs.serves_town(_proc(seen), town.data, town.config)
    assert procs.served_data_dir(_proc(seen)) == str(town.data.resolve())
    relative = Seen([DOLT, "sql-server", "--data-dir", "../town/.dolt-data"], cwd=str(town.other), files=held)
    assert procs.serves_town(_proc(relative), town.data, town.config)
    rig_only = Seen([DOLT, "sql-server", "--data-dir", str(town.rig)], cwd=str(town.other), files=held)
    assert not procs.serves_town(_proc(rig_only), town.data, town.config)
    assert procs.served_data_dir(_proc(rig_only)) == str(town.rig.resolve())


def test_a_server_with_the_towns_config_serves_it_and_one_with_another_config_only_if_dolt_says_so(
    town: SimpleNamespace,
) -> None:
    ours = Seen([DOLT, "sql-server", "--config", "config.yaml"], cwd=str(town.data), pid=77)
    assert procs.serves_town(_proc(ours), town.data, town.config)
    assert procs.served_data_dir(_proc(ours)) == str(town.data.resolve())
    mine = Seen([DOLT, "sql-server", "--config=/etc/mine.yaml"], cwd=str(town.data), pid=77)
    assert not procs.serves_town(_proc(mine), town.data, town.config)
    assert not procs.serves_town(_proc(mine), town.data, town.config, info_pid=lambda: 78)
    assert procs.serves_town(_proc(mine), town.data, town.config, info_pid=lambda: 77)
    assert procs.looks_like_town_server(_proc(ours), town.data, town.config)
    assert not procs.looks_like_town_server(_proc(mine), town.data, town.config, info_pid=lambda: 78)
    assert procs.looks_like_town_server(_proc(mine), town.data, town.config, info_pid=lambda: 77)


def test_a_config_elsewhere_names_its_folder_only_when_the_server_holds_files_there(town: SimpleNamespace) -> None:
    config = str(town.data / "config.yaml")
    held = [str(town.rig / ".dolt" / "noms" / "LOCK")]
    assert procs.served_data_dir(_proc(Seen([DOLT, "sql-server", "--config", config], str(town.other), held))) == str(
        town.data.resolve()
    )
    assert procs.served_data_dir(_proc(Seen([DOLT, "sql-server", "--config", config], str(town.other)))) == str(
        town.other.resolve()
    )


def test_a_deleted_working_folder_is_read_by_its_name(town: SimpleNamespace) -> None:
    seen = Seen([DOLT, "sql-server"], cwd=f"{town.data} (deleted)")
    assert procs.serves_town(_proc(seen), town.data, town.config)
    assert procs.served_data_dir(_proc(seen)) == str(town.data.resolve())


def test_relative_flags_are_read_from_the_servers_working_folder_not_ours(
    town: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when Linux shows that folder as deleted; our own working folder must not matter."""
    monkeypatch.chdir(town.data)  # a mistaken join against our folder would find the data dir
    held = [str(town.rig / ".dolt" / "noms" / "LOCK")]
    for cwd in (str(town.other), f"{town.other} (deleted)"):
        flagged = Seen([DOLT, "sql-server", "--data-dir", "../town/.dolt-data"], cwd=cwd, files=held)
        assert procs.serves_town(_proc(flagged), town.data, town.config), cwd
        assert procs.served_data_dir(_proc(flagged)) == str(town.data.resolve()), cwd
        configured = Seen([DOLT, "sql-server", "--config", "../town/.dolt-data/config.yaml"], cwd=cwd, files=held)
        assert procs.serves_town(_proc(configured), town.data, town.config), cwd
        assert procs.served_data_dir(_proc(configured)) == str(town.data.resolve()), cwd
        here = Seen([DOLT, "sql-server", "--data-dir", "."], cwd=cwd, files=held)
        assert not procs.serves_town(_proc(here), town.data, town.config), cwd
        assert procs.served_data_dir(_proc(here)) == str(town.other.resolve()), cwd


def test_a_server_whose_folder_is_unseen_but_holds_the_data_dir_is_judged_by_its_flag(
    town: SimpleNamespace,
) -> None:
    held = [str(town.rig / ".dolt" / "noms" / "LOCK")]
    named = Seen([DOLT, "sql-server", "--data-dir", str(town.data)], cwd=None, files=held)
    assert procs.serves_town(_proc(named), town.data, town.config)
    assert not procs.serves_town(_proc(Seen([DOLT, "sql-server"], cwd=None, files=held)), town.data, town.config)


def test_an_unseen_working_folder_is_no_evidence(town: SimpleNamespace) -> None:
    seen = Seen([DOLT, "sql-server", "--data-dir", str(town.data)], cwd=None)
    assert not procs.serves_town(_proc(seen), town.data, town.config)
    assert procs.served_data_dir(_proc(seen)) is None


def test_a_file_in_a_sibling_folder_that_starts_the_same_is_not_under_the_data_dir(town: SimpleNamespace) -> None:
    sibling = town.data.parent / ".dolt-data-old"
    sibling.mkdir()
    seen = Seen([DOLT, "sql-server"], cwd=str(town.other), files=[str(sibling / "LOCK")])
    assert not procs.serves_data_dir(_proc(seen), town.data)
    assert procs.held_children(_proc(seen), town.data) == set()


def test_held_children_names_each_entry_of_the_folder_holding_a_file(town: SimpleNamespace) -> None:
    files = [str(town.rig / ".dolt" / "noms" / "a"), str(town.rig / "b"), str(town.data / "gastown" / "c")]
    seen = Seen([DOLT, "sql-server"], cwd=str(town.data), files=[*files, str(town.other / "x")])
    assert procs.held_children(_proc(seen), town.data) == {"hq", "gastown"}


# --- owners and start times ------------------------------------------------------------------


def test_a_process_whose_uid_has_no_name_is_named_by_uid_and_an_unseen_one_as_unknown() -> None:
    assert procs.owner_name(_proc(Seen(["x"], uid=4242))) == "uid 4242"
    assert procs.owner_name(_proc(Seen(["x"], uid=0))) == "uid 0"
    assert procs.owner_name(_proc(Seen(["x"]))) == "an unknown user"
    assert procs.owner_uid(_proc(Seen(["x"]))) is None


def test_runs_as_us_compares_the_effective_uid() -> None:
    assert procs.runs_as_us(_proc(Seen(["x"], uid=os.geteuid())))
    assert not procs.runs_as_us(_proc(Seen(["x"], uid=os.geteuid() + 1)))
    assert not procs.runs_as_us(_proc(Seen(["x"])))


def test_the_same_process_is_one_whose_create_time_matches_within_the_clock_tick() -> None:
    seen = _proc(Seen(["x"], created=1000.0))
    assert procs.same_process(seen, 1000.0) and procs.same_process(seen, 1000.9) and procs.same_process(seen, 999.1)
    assert not procs.same_process(seen, 1001.0) and not procs.same_process(seen, 999.0)
    assert not procs.same_process(seen, None)
    assert not procs.same_process(_proc(Seen(["x"], created=None)), 1000.0)  # unseen is not the same


# --- real processes --------------------------------------------------------------------------


def _child(
    code: str, *, argv0: str = "python3", extra: tuple[str, ...] = (), cwd: Path | None = None
) -> subprocess.Popen[str]:
    """A Python child that runs `code`, then prints "ready" and sleeps until ended."""
    script = f"import sys, time, signal\n{code}\nprint('ready', flush=True)\ntime.sleep(120)\n"
    child = subprocess.Popen(
        [argv0, "-S", "-c", script, *extra], executable=sys.executable, stdout=subprocess.PIPE, text=True, cwd=cwd
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout:
            child.stdout.close()


def test_live_is_a_running_process_never_pid_zero_or_below_and_never_a_zombie(
    children: list[subprocess.Popen[str]],
) -> None:
    assert procs.live(os.getpid()) is not None and procs.live(os.getpid()).pid == os.getpid()  # type: ignore[union-attr]
    assert procs.live(0) is None and procs.live(-1) is None
    assert procs.live(1) is not None  # pid 1 is a process like any other
    child = _child("")
    children.append(child)
    os.kill(child.pid, signal.SIGKILL)
    assert poll_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 10)
    assert procs.live(child.pid) is None
    child.wait()
    assert procs.live(child.pid) is None


def test_terminate_ends_a_process_with_sigterm_and_says_no_kill_was_needed(
    children: list[subprocess.Popen[str]],
) -> None:
    child = _child("")
    children.append(child)
    proc = psutil.Process(child.pid)
    assert procs.terminate(proc, timeout=30) is False
    assert not proc.is_running()  # ended and reaped (psutil's wait reaps a child of ours)


def test_terminate_kills_a_process_that_ignores_sigterm_and_says_so(children: list[subprocess.Popen[str]]) -> None:
    child = _child("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    children.append(child)
    proc = psutil.Process(child.pid)
    assert procs.terminate(proc, timeout=0.2) is True
    assert not proc.is_running()


def test_terminate_of_a_process_already_gone_needs_no_kill(children: list[subprocess.Popen[str]]) -> None:
    child = _child("")
    children.append(child)
    proc = psutil.Process(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert procs.terminate(proc, timeout=5) is False


def test_wait_exited_is_false_while_a_process_runs_and_true_once_it_has_ended(
    children: list[subprocess.Popen[str]],
) -> None:
    child = _child("")
    children.append(child)
    proc = psutil.Process(child.pid)
    assert procs.wait_exited(proc, 0.05) is False
    os.kill(child.pid, signal.SIGTERM)
    assert procs.wait_exited(proc, 30) is True


def test_end_child_ends_with_sigterm_or_after_the_grace_with_sigkill_and_reaps(
    children: list[subprocess.Popen[str]],
) -> None:
    polite = _child("")
    stubborn = _child("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    children += [polite, stubborn]
    procs.end_child(polite)
    procs.end_child(stubborn, grace=0.2)
    assert polite.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL
    procs.end_child(polite)  # already ended: nothing to do
    assert polite.returncode == -signal.SIGTERM


def test_describe_pid_says_exited_names_the_command_and_cuts_a_long_one(
    children: list[subprocess.Popen[str]],
) -> None:
    assert procs.describe_pid(0) == "exited"
    child = _child("", extra=("x" * 200,))
    children.append(child)
    text = procs.describe_pid(child.pid)
    assert len(text) == 120 and text.startswith("python3 -S -c import sys, time, signal ") and text.endswith("...")
    short = _child("", extra=("a\nb",))
    children.append(short)
    assert procs.describe_pid(short.pid).endswith("time.sleep(120) a b")  # one line, whatever the args hold


def test_describe_pid_names_the_folder_a_dolt_server_serves(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    child = _child("", argv0="dolt", extra=("sql-server",), cwd=tmp_path)
    children.append(child)
    assert procs.describe_pid(child.pid) == f"dolt sql-server serving {tmp_path.resolve()}"
    assert child.pid in [p.pid for p in procs.dolt_servers()]
    assert os.getpid() not in [p.pid for p in procs.dolt_servers()]  # this test's Python is no server
    os.kill(child.pid, signal.SIGKILL)
    assert poll_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 10)
    assert child.pid not in [p.pid for p in procs.dolt_servers()]  # a zombie serves nothing


@pytest.mark.needs_root("runs a process as another user with setpriv")
def test_describe_pid_says_who_runs_another_users_process() -> None:
    child = subprocess.Popen(
        ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", sys.executable, "-S", "-c",
         "print('ready', flush=True); import time; time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        text = procs.describe_pid(child.pid)
        assert text.endswith(", run by uid 4242") or text.endswith(f", run by {psutil.Process(child.pid).username()}")
        assert not procs.runs_as_us(psutil.Process(child.pid))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_the_listener_on_a_port_is_found_with_its_address_and_a_free_port_has_none() -> None:
    with socket.socket() as listener, socket.socket() as idle, socket.socket() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.connect(listener.getsockname())  # a connection, not a listener
        outgoing = client.getsockname()[1]
        idle.bind(("127.0.0.1", 0))  # bound, not listening: nobody answers there
        port, free = listener.getsockname()[1], idle.getsockname()[1]
        me = psutil.Process()
        assert procs.listeners_on_port(port) == [os.getpid()]
        assert procs.listeners_on_port(free) == []
        assert port in procs.listening_ports(me) and free not in procs.listening_ports(me)
        assert outgoing not in procs.listening_ports(me)
        assert ("127.0.0.1", port) in procs.listen_addresses(me)
        assert ("127.0.0.1", outgoing) not in procs.listen_addresses(me)
        assert procs.listeners_where("127.0.0.1", port) == [os.getpid()]
        assert procs.listeners_where("127.0.0.1", free) == []
        holders = procs.port_holders("127.0.0.1", port)
        assert [h.pid for h in holders] == [os.getpid()]
        assert holders[0].describe() == f"pid {os.getpid()} ({procs.describe_pid(os.getpid())})"
        assert procs.port_holders("127.0.0.1", free) == []


def test_a_holder_without_a_pid_is_described_by_what_is_known() -> None:
    assert procs.Holder(None, "a process this user cannot see").describe() == "a process this user cannot see"
    assert procs.Holder(7, "dolt sql-server").describe() == "pid 7 (dolt sql-server)"
