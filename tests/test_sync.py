"""Sharing rigs between towns through Dolt remotes (sync, pull, remote), and kill-imposters.

Two towns on one machine stand for two machines: a `file://` remote between them, real Dolt,
real servers on free loopback ports.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import TownFixture, cleanup_town, end, free_port, make_town
from faultkit import alive, assert_clean, wait_until
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.host import procs
from gastown_tasks.ops.server import server
from gastown_tasks.ops.sql import sqlclient


def _issues(t: TownFixture) -> list[tuple]:
    return [tuple(row) for row in t.query("SELECT id, title FROM issues ORDER BY id", "hq")]


def _add_issue(t: TownFixture, issue: int, title: str) -> None:
    t.query(f"INSERT INTO issues VALUES ({issue}, '{title}')", "hq")  # left uncommitted: sync commits it


def _result(done: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], dict]:
    return {(row["rig"], row["remote"]): row for row in json.loads(done.stdout)["results"]}


def _clone(dolt: Path, url: str, into: TownFixture) -> None:
    """The second machine's first copy of the rig: Dolt's own clone (no server runs there yet)."""
    into.town.data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(dolt), "clone", url, "hq"], cwd=into.town.data_dir, env=dolt_env(), check=True, capture_output=True
    )


@pytest.fixture
def second_town(tmp_path: Path, dolt_binary: Path):  # type: ignore[no-untyped-def]
    fixture = make_town(tmp_path / "second")
    yield fixture
    cleanup_town(fixture)


@pytest.mark.parametrize("running", [True, False], ids=["both-servers-run", "both-stopped"])
def test_issues_made_in_one_town_appear_in_the_other_through_a_file_remote(
    rigged_town: TownFixture, second_town: TownFixture, dolt_binary: Path, tmp_path: Path, running: bool
) -> None:
    a, b = rigged_town, second_town
    url = (tmp_path / "remotes" / "hq").as_uri()
    server.start(a.town, a.settings)
    a.query("CREATE TABLE issues (id INT PRIMARY KEY, title VARCHAR(40))", "hq")
    _add_issue(a, 1, "made in town a")
    assert_clean(a.gt_dolt("remote", "add", "--rig", "hq", "origin", url), 0)
    if not running:
        server.stop(a.town, a.settings)
    pushed = a.gt_dolt("sync", "--json")
    assert_clean(pushed, 0)
    row = _result(pushed)[("hq", "origin")]
    assert row["result"] == "pushed" and "committed 1 changed table(s) first" in row["detail"]
    assert json.loads(pushed.stdout)["through"] == ("the server" if running else "the Dolt CLI")

    _clone(dolt_binary, url, b)
    server.start(b.town, b.settings)
    assert _issues(b) == [(1, "made in town a")]
    _add_issue(b, 2, "made in town b")
    if not running:
        server.stop(b.town, b.settings)
    assert_clean(b.gt_dolt("sync"), 0)

    pulled = a.gt_dolt("pull", "--json")
    assert_clean(pulled, 0)
    assert _result(pulled)[("hq", "origin")]["result"] == "pulled"
    if not running:
        server.start(a.town, a.settings)
    assert _issues(a) == [(1, "made in town a"), (2, "made in town b")]
    again = a.gt_dolt("pull")
    assert_clean(again, 0)
    assert "up to date" in again.stdout and "0 pulled, 0 failed" in again.stdout


def test_a_push_the_remote_refuses_is_reported_not_forced_and_force_names_what_it_overwrites(
    rigged_town: TownFixture, second_town: TownFixture, dolt_binary: Path, tmp_path: Path
) -> None:
    a, b = rigged_town, second_town
    url = (tmp_path / "remotes" / "hq").as_uri()
    a.rig("zz")  # a rig without a remote: reported, and the others still pushed
    server.start(a.town, a.settings)
    a.query("CREATE TABLE issues (id INT PRIMARY KEY, title VARCHAR(40))", "hq")
    assert_clean(a.gt_dolt("remote", "add", "--rig", "hq", "origin", url), 0)
    assert_clean(a.gt_dolt("sync"), 0)
    _clone(dolt_binary, url, b)
    server.start(b.town, b.settings)
    _add_issue(b, 7, "only town b has it")
    assert_clean(b.gt_dolt("sync"), 0)
    _add_issue(a, 8, "only town a has it")

    refused = a.gt_dolt("sync", "--json")
    assert_clean(refused, 1)
    results = _result(refused)
    hq = results[("hq", "origin")]
    assert hq["result"] == "failed" and "gt-dolt pull --rig hq" in hq["detail"] and "--force" in hq["detail"]
    assert results[("zz", "")]["result"] == "no remote"
    assert _issues(b) == [(7, "only town b has it")]  # town b's commit is still on the remote
    b_head = b.query("SELECT commit_hash FROM dolt_log LIMIT 1", "hq")[0][0]

    dry = a.gt_dolt("sync", "--rig", "hq", "--force", "--dry-run")
    assert_clean(dry, 0)
    assert "would push" in dry.stdout
    forced = a.gt_dolt("sync", "--rig", "hq", "--force")
    assert_clean(forced, 0)
    assert "OVERWROTE 1 commit(s) on origin" in forced.stdout and b_head[:8] in forced.stdout


def test_remote_add_list_remove_and_credentials_are_never_printed(rigged_town: TownFixture) -> None:
    t = rigged_town
    secret_url = f"http://alice:s3cret-pass@127.0.0.1:{free_port()}/org/hq?token=t0ken-value"
    added = t.gt_dolt("remote", "add", "--rig", "hq", "mirror", secret_url)
    assert_clean(added, 0)
    listed = t.gt_dolt("remote", "list", "--json")
    shown = t.gt_dolt("remote-list", "--rig", "hq")
    synced = t.gt_dolt("sync", "--rig", "hq")  # nothing listens there: Dolt's reason, masked
    assert_clean(synced, 1)
    for done in (added, listed, shown, synced):
        output = done.stdout + done.stderr
        assert "s3cret-pass" not in output and "t0ken-value" not in output, output
    assert json.loads(listed.stdout) == [
        {
            "rig": "hq",
            "name": "mirror",
            "url": secret_url.replace("s3cret-pass", "***").replace("t0ken-value", "***"),
            "branch": "main",
        }
    ]
    assert "alice:***@127.0.0.1" in shown.stdout
    assert_clean(t.gt_dolt("remote", "remove", "--rig", "hq", "mirror"), 0)
    assert "hq: no remote" in t.gt_dolt("remote", "list").stdout


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["remote", "add", "--rig", "nope", "origin", "file:///tmp/x"], 1, "no rig nope"),
        (["remote", "add", "origin", "file:///tmp/x"], 2, "needs --rig"),
        (["remote", "add", "--rig", "hq", "origin", "file://relative/x"], 2, "must be absolute"),
        (["remote", "add", "--rig", "hq", "origin", "not a url"], 2, "invalid remote URL"),
        (["remote", "add", "--rig", "hq", "bad name", "file:///tmp/x"], 2, "invalid remote name"),
        (["remote", "add", "--rig", "hq", "origin", "http://[::1"], 2, "Dolt refused remote origin"),
        (["remote", "add", "--rig", "hq", "taken", "file:///tmp/y"], 2, "remote already exists"),
        (["remote", "remove", "--rig", "hq", "origin"], 2, "has no remote origin"),
        (["sync", "--rig", "nope"], 1, "no rig nope"),
        (["pull", "--rig", "../hq"], 2, "invalid rig name"),
        (["sync", "--rig", "linked"], 1, "symlink"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_input_is_one_line_and_an_exit_code(
    rigged_town: TownFixture, args: list[str], code: int, said: str
) -> None:
    t = rigged_town
    (t.town.data_dir / "linked").symlink_to(t.town.rig_dir("hq"))
    assert_clean(t.gt_dolt("remote", "add", "--rig", "hq", "taken", "file:///tmp/x"), 0)
    done = t.gt_dolt(*args)
    assert_clean(done, code)
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_remote_inside_the_towns_data_is_refused(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("remote", "add", "--rig", "hq", "origin", (t.town.data_dir / "copy").as_uri())
    assert_clean(done, 2)
    assert "inside" in done.stderr and not (t.town.data_dir / "copy").exists()


def _dolt_server(dolt: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """A real dolt sql-server of this test's, serving `data_dir` on `port` (started by hand elsewhere)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(dolt), "sql-server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dolt_env(),
        start_new_session=True,
    )


def _listens(pid: int, port: int) -> bool:
    proc = procs.live(pid)
    return proc is not None and port in procs.listening_ports(proc)


def test_kill_imposters_stops_a_server_of_no_town_on_our_port_only_when_asked(
    rigged_town: TownFixture, dolt_binary: Path, tmp_path: Path
) -> None:
    t = rigged_town
    imposter = _dolt_server(dolt_binary, tmp_path / "elsewhere", t.port)
    try:
        wait_until(lambda: _listens(imposter.pid, t.port), "the imposter to listen on the town's port")
        refused = t.gt_dolt("start")
        assert refused.returncode != 0 and f"pid {imposter.pid}" in refused.stderr, refused.stderr
        assert f"pid {imposter.pid} is an imposter" in refused.stderr and "gt-dolt kill-imposters" in refused.stderr
        restart = t.gt_dolt("restart")
        assert restart.returncode != 0 and f"pid {imposter.pid} is an imposter" in restart.stderr
        dry = t.gt_dolt("kill-imposters", "--dry-run")
        assert_clean(dry, 0)
        assert f"would stop imposter pid {imposter.pid}" in dry.stdout and alive(imposter.pid)
        killed = t.gt_dolt("kill-imposters", "--json")
        assert_clean(killed, 0)
        assert [v["pid"] for v in json.loads(killed.stdout)["stopped"]] == [imposter.pid]
        assert imposter.wait(timeout=30) is not None
        assert_clean(t.gt_dolt("start"), 0)
        assert sqlclient.served_databases(t.settings) == ["hq"]
        assert "no imposter" in t.gt_dolt("kill-imposters").stdout  # the town's own server is not one
    finally:
        end(imposter)


@pytest.mark.parametrize("where", ["nested", "sibling"])
def test_kill_imposters_never_stops_another_towns_server(
    rigged_town: TownFixture, dolt_binary: Path, tmp_path: Path, where: str
) -> None:
    t = rigged_town
    other = (t.root / "rigs" / "clone") if where == "nested" else (tmp_path / "sibling")
    (other / "mayor").mkdir(parents=True)
    (other / "mayor" / "town.json").write_text('{"name": "other"}\n')
    theirs = _dolt_server(dolt_binary, other / ".dolt-data", t.port)
    try:
        wait_until(lambda: _listens(theirs.pid, t.port), "the other town's server to listen on our port")
        start = t.gt_dolt("start")
        assert start.returncode != 0 and f"pid {theirs.pid}" in start.stderr and "is an imposter" not in start.stderr
        done = t.gt_dolt("kill-imposters")
        assert_clean(done, 0)
        assert f"left alone: pid {theirs.pid}" in done.stdout and f"the server of the town at {other}" in done.stdout
        assert "no imposter" in done.stdout and alive(theirs.pid) and theirs.poll() is None
    finally:
        end(theirs)
    assert os.path.isdir(other / ".dolt-data")


def test_a_pull_that_conflicts_is_a_failed_row_and_the_rig_keeps_its_own_rows(
    rigged_town: TownFixture, second_town: TownFixture, dolt_binary: Path, tmp_path: Path
) -> None:
    a, b = rigged_town, second_town
    url = (tmp_path / "remotes" / "hq").as_uri()
    server.start(a.town, a.settings)
    a.query("CREATE TABLE issues (id INT PRIMARY KEY, title VARCHAR(40))", "hq")
    _add_issue(a, 1, "first")
    assert_clean(a.gt_dolt("remote", "add", "--rig", "hq", "origin", url), 0)
    assert_clean(a.gt_dolt("sync"), 0)
    _clone(dolt_binary, url, b)
    server.start(b.town, b.settings)
    b.query("UPDATE issues SET title = 'renamed in b' WHERE id = 1", "hq")
    assert_clean(b.gt_dolt("sync"), 0)
    a.query("UPDATE issues SET title = 'renamed in a' WHERE id = 1", "hq")
    a.query("CALL DOLT_COMMIT('-Am', 'a renames it')", "hq")

    pulled = a.gt_dolt("pull", "--json")
    assert_clean(pulled, 1)
    row = _result(pulled)[("hq", "origin")]
    assert row["result"] == "failed" and "conflict" in row["detail"].lower(), row
    assert "rig hq is unchanged" in row["detail"] and "gt-dolt sql --rig hq" in row["detail"]
    assert _issues(a) == [(1, "renamed in a")]
    assert a.query("SELECT COUNT(*) FROM dolt_conflicts", "hq") == [(0,)]  # no merge left half done
    assert a.query("SELECT is_merging FROM dolt_merge_status", "hq") == [(0,)]
