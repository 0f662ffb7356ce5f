"""Parsing once, into types: pid files, state files, ports, hosts, rig names, Dolt's log lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import BAD_RIG_NAMES
from gastown_tasks.ops.errors import ConfigError, RigError
from gastown_tasks.ops.files.datadir import clashing, is_valid_rig_name, some_of, validate_rig_name
from gastown_tasks.ops.files.logfile import LINE_MAX, tail_fd, visible
from gastown_tasks.ops.files.runfiles import MAX_PID, parse_pid, parse_pid_file, parse_state
from gastown_tasks.ops.rigs.onboarding import configured_rigs
from gastown_tasks.ops.server.readiness import log_fields, skipped_in_log
from gastown_tasks.ops.settings import normalize_host, parse_port, resolve_settings

PID_FILES = {
    b"4242\n": 4242,
    b"  4242  \n": 4242,
    b"4242\nnonce-from-gt\n": 4242,
    b"": None,
    b"\n \n": None,
    b"not a pid\n": None,
    b"-1\n": None,
    b"0\n": None,
    str(MAX_PID + 1).encode(): None,
    b"9" * 5000: None,
    "\u00b2\n".encode(): None,
    b"\xff\xfe\x00\x01": None,
}


@pytest.mark.parametrize(("raw", "pid"), PID_FILES.items(), ids=[repr(k[:12]) for k in PID_FILES])
def test_a_pid_file_holds_a_pid_or_says_why_not(raw: bytes, pid: int | None) -> None:
    parsed = parse_pid_file(raw, "dolt.pid")
    assert parsed.exists and parsed.pid == pid
    assert (parsed.problem is None) == (pid is not None)


@pytest.mark.parametrize("value", [True, "12", 0, -3, MAX_PID + 1, 1.5, None])
def test_parse_pid_takes_only_whole_numbers_in_range_and_text_digits(value: object) -> None:
    assert parse_pid(value) == (12 if value == "12" else None)


def test_a_state_file_uses_each_field_only_when_it_has_the_right_type_and_keeps_the_rest() -> None:
    raw = json.dumps(
        {"running": True, "pid": 77, "create_time": 12.5, "port": 4000, "databases": ["hq", 3], "gt_only": {"x": 1}}
    ).encode()
    state = parse_state(raw, "state")
    assert (state.running, state.pid, state.create_time, state.port, state.databases) == (True, 77, 12.5, 4000, ("hq",))
    assert state.extra == {"gt_only": {"x": 1}} and state.to_json()["gt_only"] == {"x": 1}
    assert state.claims(77) and not state.claims(78)


@pytest.mark.parametrize(
    "data",
    [{"pid": True}, {"pid": "77"}, {"pid": -1}, {"pid": 10**30}, {"create_time": "x"}, {"port": "4000"}, {"port": 0}],
)
def test_wrong_typed_state_fields_are_ignored(data: dict[str, object]) -> None:
    state = parse_state(json.dumps({"running": True, **data}).encode(), "state")
    assert state.pid is None and state.create_time is None and state.port is None and state.problem is None


@pytest.mark.parametrize(("raw", "said"), [(b"{", "not valid JSON"), (b"[]", "JSON object"), (b"\xff", "UTF-8")])
def test_an_unreadable_state_file_is_a_problem_not_a_crash(raw: bytes, said: str) -> None:
    state = parse_state(raw, "state")
    assert state.problem is not None and said in state.problem and not state.running


@pytest.mark.parametrize(
    ("value", "port"),
    [
        (3307, 3307),
        ("3307", 3307),
        (" 80 ", 80),
        ("abc", None),
        (0, None),
        (70000, None),
        ("-5", None),
        ("3307.5", None),
        ("\u00b3", None),
        ("9" * 5000, None),
        (True, None),
        (None, None),
    ],
)
def test_parse_port_is_the_one_port_rule(value: object, port: int | None) -> None:
    assert parse_port(value) == port


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("localhost", "127.0.0.1"),
        ("LOCALHOST", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("10.0.0.5", "10.0.0.5"),
        ("", None),
        ("a b", None),
        ("http://x", None),
        ("x@y", None),
    ],
)
def test_hosts_are_normalized_or_refused(value: str, host: str | None) -> None:
    assert normalize_host(value) == host


@pytest.mark.parametrize("name", BAD_RIG_NAMES.values(), ids=BAD_RIG_NAMES.keys())
def test_bad_rig_names_fail_the_one_rule(name: str) -> None:
    assert not is_valid_rig_name(name)
    with pytest.raises(RigError, match="invalid rig name"):
        validate_rig_name(name)


@pytest.mark.parametrize("name", ["hq", "gastown", "beads_1", "a-b", "x" * 64, "_under"])
def test_good_rig_names_pass(name: str) -> None:
    assert validate_rig_name(name) == name


def test_names_clash_by_case() -> None:
    assert clashing("HQ", ["gastown", "hq"]) == "hq" and clashing("beads", ["hq"]) is None


@pytest.mark.parametrize(
    ("value", "rigs"),
    [(None, ["hq"]), ("hq,gastown", ["hq", "gastown"]), (" hq , beta ", ["hq", "beta"]), (["hq", "x"], ["hq", "x"])],
)
def test_onboard_rigs_accept_text_or_a_list(value: object, rigs: list[str]) -> None:
    assert configured_rigs(value) == rigs


@pytest.mark.parametrize("value", [5, "hq,../x", ",", {"a": 1}])
def test_onboard_rigs_refuse_nonsense_with_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="onboard.rigs"):
        configured_rigs(value)


def test_dolt_log_fields_are_read_with_quoted_values_unquoted() -> None:
    line = (
        'time="2026-01-01T00:00:00Z" level=warning msg="skipping database" '
        'path="/t/.dolt-data/x" error="bad \\"json\\""'
    )
    fields = log_fields(line)
    assert fields["level"] == "warning" and fields["path"] == "/t/.dolt-data/x" and fields["error"] == 'bad "json"'


def test_skipped_rigs_are_found_by_their_path_in_dolts_log(tmp_path: Path) -> None:
    rig = tmp_path / "x"
    rig.mkdir()
    text = f'level=warning msg="skipping database" path="{rig}" error="corrupt repo state"\nother line\n'
    assert skipped_in_log(text, {os.path.realpath(rig): "x"}) == {"x": "corrupt repo state"}


def _fd(tmp_path: Path, data: bytes) -> int:
    path = tmp_path / "log"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_the_tail_gives_the_last_lines_and_where_the_file_ended(tmp_path: Path) -> None:
    fd = _fd(tmp_path, b"".join(b"line %d\n" % i for i in range(1000)))
    try:
        lines, end = tail_fd(fd, 3)
        assert lines == ["line 997", "line 998", "line 999"] and end == os.fstat(fd).st_size
        assert tail_fd(fd, 0)[0] == [] and tail_fd(fd, 5, start=end)[0] == []
    finally:
        os.close(fd)


def test_the_tail_of_a_huge_line_is_cut(tmp_path: Path) -> None:
    fd = _fd(tmp_path, b"x" * (3 * LINE_MAX) + b"\n")
    try:
        (line,), _ = tail_fd(fd, 5)
        assert len(line) < LINE_MAX + 100 and "line cut at" in line
    finally:
        os.close(fd)


def test_visible_shows_control_characters_and_keeps_text() -> None:
    assert visible("a\x1b[2Jb\tc\x07") == "a\\x1b[2Jb\tc\\x07"


def test_long_lists_of_rigs_are_cut_to_the_first_few_and_a_count() -> None:
    assert some_of(["a", "b"]) == "a, b"
    assert some_of([f"r{i}" for i in range(12)]) == ", ".join(f"r{i}" for i in range(12))
    assert some_of([f"r{i}" for i in range(1000)]) == ", ".join(f"r{i}" for i in range(10)) + " and 990 more"


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".example", "-bad.example", "bad-.example", ".", "a b"])
def test_host_names_the_resolver_cannot_take_are_refused(host: str) -> None:
    assert normalize_host(host) is None


def test_local_spellings_of_loopback_are_loopback() -> None:
    for host in ("localhost.", "::ffff:127.0.0.1", "[::1]", "LOCALHOST"):
        assert resolve_settings({"host": host}).is_loopback, host
