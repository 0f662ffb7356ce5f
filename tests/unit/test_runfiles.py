"""The run files in <town>/daemon/: what a pid or state file says, what reading a planted one
reports, and what writing them leaves (atomic, private, other tools' keys kept)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gastown_tasks.ops.errors import FileFailure, UnsafeFolder
from gastown_tasks.ops.files import runfiles
from gastown_tasks.ops.files.runfiles import MAX_PID, STATE_FILE_LIMIT, PidFile, State
from gastown_tasks.ops.town import Town


@pytest.fixture
def town(tmp_path: Path) -> Town:
    (tmp_path / "town" / "daemon").mkdir(parents=True)
    return Town(tmp_path / "town")


def test_the_largest_possible_pid_is_a_pid_and_one_more_is_not() -> None:
    assert runfiles.parse_pid(MAX_PID) == MAX_PID and runfiles.parse_pid(str(MAX_PID)) == MAX_PID
    assert runfiles.parse_pid(1) == 1 and runfiles.parse_pid("1") == 1
    assert runfiles.parse_pid(MAX_PID + 1) is None and runfiles.parse_pid("0") is None


def test_a_pid_file_says_impossible_for_a_number_and_not_a_pid_for_text() -> None:
    assert runfiles.parse_pid_file(b"-7\n", "p") == PidFile(exists=True, problem="p holds an impossible pid (-7)")
    assert runfiles.parse_pid_file(b"0\n", "p").problem == "p holds an impossible pid (0)"
    assert runfiles.parse_pid_file(b"abc\n", "p").problem == "p does not hold a pid ('abc')"
    assert runfiles.parse_pid_file(b"\n", "p") == PidFile(exists=True, problem="p is empty")
    long = runfiles.parse_pid_file(b"x" * 100, "p").problem
    assert long == f"p does not hold a pid ({'x' * 40!r})"  # shown cut to 40 characters


def test_a_pid_file_written_is_read_back_private_and_removed(town: Town) -> None:
    assert runfiles.read_pid_file(town) == PidFile(exists=False)
    runfiles.write_pid_file(town, 4242)
    assert town.pid_file.read_bytes() == b"4242\n"
    assert stat.S_IMODE(town.pid_file.stat().st_mode) == 0o600
    assert runfiles.read_pid_file(town) == PidFile(exists=True, pid=4242)
    assert runfiles.remove_run_file(town, town.pid_file) is True and not town.pid_file.exists()


def test_a_planted_pid_file_is_reported_unsafe_and_existing(town: Town, tmp_path: Path) -> None:
    (tmp_path / "target").write_text("1\n")
    town.pid_file.symlink_to(tmp_path / "target")
    found = runfiles.read_pid_file(town)
    assert found.exists and found.unsafe and found.pid is None
    assert found.problem is not None and "symlink" in found.problem


def test_a_planted_daemon_folder_is_reported_unsafe_and_the_pid_file_absent(town: Town, tmp_path: Path) -> None:
    town.daemon_dir.rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "dolt.pid").write_text("1\n")
    town.daemon_dir.symlink_to(tmp_path / "elsewhere")
    found = runfiles.read_pid_file(town)
    assert found.exists is False and found.unsafe and found.pid is None
    assert found.problem is not None and "not a folder" in found.problem
    state = runfiles.read_state(town)
    assert state.problem is not None and "not a folder" in state.problem and not state.running


def test_a_pid_file_that_cannot_be_read_exists_but_is_not_unsafe(town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object, **kwargs: object) -> bytes:
        raise FileFailure("cannot read daemon/dolt.pid: an I/O error; check the disk, then retry")

    monkeypatch.setattr(runfiles.safefs, "read_bytes", failing)
    found = runfiles.read_pid_file(town)
    assert found.exists and not found.unsafe and found.problem is not None and "I/O error" in found.problem
    state = runfiles.read_state(town)
    assert (
        state.problem
        == "cannot read daemon/dolt.pid: an I/O error; check the disk, then retry; treating the state as unknown"
    )


def test_a_state_written_is_read_back_the_same_private_and_sorted(town: Town) -> None:
    state = State(
        running=True,
        pid=77,
        create_time=12.5,
        host="127.0.0.1",
        port=3307,
        started_at="2026-01-01T00:00:00+00:00",
        answered_at="2026-01-01T00:00:01+00:00",
        data_dir="/t/.dolt-data",
        databases=("hq", "gastown"),
        log_file="/t/daemon/dolt.log",
        managed_by="gt-dolt",
        disk_bytes=0,
        stopped_at="2026-01-01T00:00:02+00:00",
        last_error="it stopped",
    )
    runfiles.write_state(town, state)
    assert runfiles.read_state(town) == state
    text = town.state_file.read_text()
    assert text.endswith("}\n") and list(json.loads(text)) == sorted(json.loads(text))
    assert json.loads(text)["databases"] == ["hq", "gastown"] and "problem" not in json.loads(text)
    assert stat.S_IMODE(town.state_file.stat().st_mode) == 0o600


def test_no_state_file_is_the_default_state_not_running_and_without_a_problem(town: Town) -> None:
    state = runfiles.read_state(town)
    assert state == State() and state.to_json() == {"running": False} and state.problem is None


def test_an_empty_pid_file_or_unreadable_state_file_is_named_by_its_path(town: Town) -> None:
    town.pid_file.write_text("")
    assert runfiles.read_pid_file(town) == PidFile(exists=True, problem=f"{town.pid_file} is empty")
    town.state_file.write_text("{")
    assert runfiles.read_state(town).problem == f"{town.state_file} is not valid JSON; treating the state as unknown"


def test_a_state_is_written_without_its_problem_and_as_plain_json_values() -> None:
    data = State(pid=1, databases=("hq",), problem="unreadable").to_json()
    assert data == {"running": False, "pid": 1, "databases": ["hq"]} and type(data["databases"]) is list


def test_keys_named_like_our_internals_in_a_state_file_are_kept_as_another_tools() -> None:
    state = runfiles.parse_state(b'{"problem": "theirs", "extra": 1, "pid": 3}', "s")
    assert state.problem is None and state.extra == {"problem": "theirs", "extra": 1} and state.pid == 3


def test_keys_another_tool_wrote_survive_a_rewrite(town: Town) -> None:
    town.state_file.write_text(json.dumps({"running": True, "pid": 5, "gt_epoch": 3}))
    state = runfiles.read_state(town)
    runfiles.write_state(town, state.replace(running=False, stopped_at="now"))
    assert json.loads(town.state_file.read_text()) == {"running": False, "pid": 5, "stopped_at": "now", "gt_epoch": 3}


def test_other_tools_keys_are_dropped_when_keeping_them_would_outgrow_what_we_read(town: Town) -> None:
    huge = "x" * (STATE_FILE_LIMIT // 2)
    runfiles.write_state(town, State(running=True, pid=5, extra={"junk": huge}))
    written = json.loads(town.state_file.read_text())
    assert written == {"running": True, "pid": 5}
    fits = "x" * (STATE_FILE_LIMIT // 4)
    runfiles.write_state(town, State(pid=5, extra={"kept": fits}))
    assert json.loads(town.state_file.read_text())["kept"] == fits


def test_a_state_claims_answered_and_created_only_for_its_own_running_pid() -> None:
    state = State(running=True, pid=7, port=3307, answered_at="t", create_time=1.5)
    assert state.claims(7) and not state.claims(8)
    assert state.answered(7) and not state.answered(8)
    assert not state.replace(answered_at=None).answered(7)
    assert not state.replace(port=None).answered(7)
    assert not state.replace(running=False).claims(7) and not state.replace(running=False).answered(7)
    assert state.created(7) == 1.5 and state.created(8) is None


def test_state_fields_of_the_wrong_type_or_size_are_dropped_and_the_rest_used() -> None:
    raw = {
        "running": "true",
        "pid": 12,
        "create_time": float("inf"),
        "host": "h" * 4097,
        "log_file": "l" * 4096,
        "disk_bytes": -1,
        "databases": "hq",
        "managed_by": 3,
    }
    state = runfiles.parse_state(json.dumps(raw).encode(), "s")
    assert state.running is False and state.pid == 12 and state.create_time is None
    assert state.host is None and state.log_file == "l" * 4096
    assert state.disk_bytes is None and state.databases == () and state.managed_by is None
    assert runfiles.parse_state(b'{"disk_bytes": true}', "s").disk_bytes is None
    assert runfiles.parse_state(b'{"disk_bytes": 0}', "s").disk_bytes == 0
    assert runfiles.parse_state(b'{"create_time": 3}', "s").create_time == 3.0
    assert runfiles.parse_state(b'{"create_time": false}', "s").create_time is None
    assert runfiles.parse_state(b'{"port": 65535}', "s").port == 65535


def test_an_unreadable_state_file_says_where_and_that_the_state_is_unknown() -> None:
    assert runfiles.parse_state(b"{", "s").problem == "s is not valid JSON; treating the state as unknown"
    assert runfiles.parse_state(b"[1]", "s").problem == "s does not hold a JSON object; treating the state as unknown"
    assert runfiles.parse_state(b"\xff", "s").problem == "s is not UTF-8 text; treating the state as unknown"
    assert runfiles.parse_state(b"[" * 100_000, "s").problem == "s is not valid JSON; treating the state as unknown"


def test_iso_time_is_rfc3339_utc_to_the_second() -> None:
    assert runfiles.iso_time(0) == "1970-01-01T00:00:00+00:00"
    assert runfiles.iso_time(86399.9) == "1970-01-01T23:59:59+00:00"
    assert runfiles.iso_time().endswith("+00:00") and len(runfiles.iso_time()) == 25


def test_ensure_daemon_dir_creates_it_and_leaves_no_probe(tmp_path: Path) -> None:
    town = Town(tmp_path)
    runfiles.ensure_daemon_dir(town)
    assert town.daemon_dir.is_dir() and list(town.daemon_dir.iterdir()) == []


def test_ensure_daemon_dir_refuses_a_file_in_its_place(tmp_path: Path) -> None:
    town = Town(tmp_path)
    town.daemon_dir.write_text("")
    with pytest.raises(UnsafeFolder, match="daemon is a file, not a folder"):
        runfiles.ensure_daemon_dir(town)
