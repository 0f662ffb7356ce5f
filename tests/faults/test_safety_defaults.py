"""Safety defaults: loopback only, private log, no shell, and nothing inside any .dolt/ is ours to touch."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import stat
from pathlib import Path

import psutil
import pytest

import gastown_tasks
from conftest import TownFixture, fake_dolt, old_database
from faultkit import (
    alive,
    assert_clean,
    audit_events,
    audited_gt_dolt,
    dolt_trees,
    tree_snapshot,
    wait_for_sql,
    wait_until,
)
from gastown_tasks.ops.files.runfiles import read_pid_file
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults

PACKAGE = Path(gastown_tasks.__file__).parent
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish", "csh", "tcsh"}


def listen_addresses(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


# --- loopback only ---------------------------------------------------------------------------


def test_server_listens_on_loopback_only_by_default(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    assert listen_addresses(started.pid) == {"127.0.0.1"}


def test_gt_dolt_server_listens_on_loopback_only_and_its_command_line_says_so(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    assert_clean(t.gt_dolt("start"), 0)
    pid = read_pid_file(t.town).pid
    assert pid is not None and listen_addresses(pid) == {"127.0.0.1"}
    args = psutil.Process(pid).cmdline()
    assert args[args.index("--config") + 1] == str(t.town.config_file)
    assert '  host: "127.0.0.1"' in t.town.config_file.read_text().splitlines()


def test_another_host_is_used_only_when_configured(rigged_town: TownFixture) -> None:
    """GT_DOLT_HOST=127.0.0.2 (still loopback, so the test exposes nothing) is honoured."""
    t = rigged_town
    assert_clean(t.gt_dolt("start", GT_DOLT_HOST="127.0.0.2"), 0)
    pid = read_pid_file(t.town).pid
    assert pid is not None and listen_addresses(pid) == {"127.0.0.2"}
    assert_clean(t.gt_dolt("stop", GT_DOLT_HOST="127.0.0.2"), 0)


# --- daemon/ file modes ----------------------------------------------------------------------


def _modes(daemon: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.lstat().st_mode) for p in [daemon, *daemon.iterdir()]}


def test_log_is_0600_and_no_daemon_file_is_world_writable_even_with_umask_0(rigged_town: TownFixture) -> None:
    t = rigged_town
    shutil.rmtree(t.town.daemon_dir)  # made by init-rig; let gt-dolt make it under umask 0
    for command in ("start", "status", "restart", "doctor", "stop"):
        done = t.gt_dolt(command, umask=0)
        assert_clean(done, 0)
        modes = _modes(t.town.daemon_dir)
        assert modes["dolt.log"] == 0o600, modes
        assert not {name: mode for name, mode in modes.items() if mode & stat.S_IWOTH}, modes


def test_a_world_readable_log_left_by_someone_else_is_made_private_at_start(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.log_file.write_text("old lines\n")
    t.town.log_file.chmod(0o666)
    assert_clean(t.gt_dolt("start"), 0)
    assert stat.S_IMODE(t.town.log_file.stat().st_mode) == 0o600
    assert t.town.log_file.read_text().startswith("old lines\n")  # appended to, not replaced


def test_doctor_warns_about_world_writable_daemon_files(rigged_town: TownFixture) -> None:
    t = rigged_town
    assert_clean(t.gt_dolt("start"), 0)
    t.town.state_file.chmod(0o666)
    done = t.gt_dolt("doctor")
    assert_clean(done, 0)
    line = next(line for line in done.stdout.splitlines() if line.startswith("warn daemon:"))
    assert str(t.town.state_file) in line and f"fix: chmod o-w {t.town.state_file}" in line


# --- no shell --------------------------------------------------------------------------------

SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
    ("pty", "spawn"),
}
PROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


def _stringish(node: ast.AST) -> bool:
    """A command built as one string: a literal, an f-string, + or % on strings, or .format()."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _stringish(node.left) or _stringish(node.right)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def shell_uses(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                found.append(f"{where}: shell={ast.unparse(keyword.value)}")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, name = func.value.id, func.attr
            if (owner, name) in SHELL_CALLS:
                found.append(f"{where}: {owner}.{name}()")
            if owner in ("c", "ctx", "context") and name in ("run", "sudo"):
                found.append(f"{where}: Invoke {owner}.{name}() runs a shell")
            if owner == "subprocess" and name in PROCESS_CALLS and node.args and _stringish(node.args[0]):
                found.append(f"{where}: subprocess.{name}() with a command string")
        if isinstance(func, ast.Name) and func.id in PROCESS_CALLS and node.args and _stringish(node.args[0]):
            found.append(f"{where}: {func.id}() with a command string")
    return found


def test_the_scanner_catches_every_shell_pattern_it_looks_for() -> None:
    bad = """
import os, subprocess
subprocess.run("dolt version", shell=True)
subprocess.Popen(["dolt"], shell=flag)
subprocess.check_output(f"dolt {x}")
subprocess.run("dolt " + name)
os.system("dolt")
os.popen("dolt")
c.run("dolt sql-server")
"""
    assert len(shell_uses(bad, "bad.py")) == 8


def test_no_shell_anywhere_in_the_package_source() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        found += shell_uses(source, str(path.relative_to(PACKAGE.parent)))
        assert "shell=True" not in source, path
    assert found == []


# --- runtime: audited runs with a real Dolt --------------------------------------------------


def _inside_dolt(path: str) -> bool:
    return ".dolt" in Path(path).parts


def test_package_never_writes_deletes_or_signals_inside_dolt_folders_and_never_runs_a_shell(
    town: TownFixture, dolt_binary: Path, tmp_path: Path
) -> None:
    """Every public command, each under the audit hook; the log holds what the package itself
    did (Dolt's own writes are another process's).
    """
    t = town
    audit = tmp_path / "audit.jsonl"
    has_migrate = (PACKAGE / "ops" / "migrate.py").exists()
    if has_migrate:
        old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "old")])
    steps = [
        (["init-rig", "hq"], 0),
        (["migrate", "--dry-run"], 0),
        (["migrate"], 0),
        (["start"], 0),
        (["status"], 0),
        (["list"], 0),
        (["init-rig", "served"], 0),
        (["doctor"], 0),
        (["doctor", "--fix"], 0),
        (["restart"], 0),
        (["stop"], 0),
        (["doctor", "--fix"], 0),
        (["status"], 3),
    ]
    for args, code in steps:
        if args[0] == "migrate" and not has_migrate:
            continue
        assert_clean(audited_gt_dolt(t, audit, *args), code)
    # a stale pid file and a corrupt state, recovered by start and stop
    t.town.pid_file.write_text("garbage\n")
    t.town.state_file.write_text("{")
    assert_clean(audited_gt_dolt(t, audit, "start"), 0)
    assert_clean(audited_gt_dolt(t, audit, "stop"), 0)

    events = audit_events(audit)
    assert events, "the audit hook recorded nothing"
    assert any(e["event"] == "subprocess.Popen" and e["argv"][1:2] == ["sql-server"] for e in events)
    inside = [e for e in events if any(_inside_dolt(p) for p in e.get("paths", []))]
    assert inside == []
    popens = [e for e in events if e["event"] == "subprocess.Popen"]
    assert all(isinstance(e["argv"], list) for e in popens), popens
    assert not [e for e in popens if os.path.basename(e["argv"][0]) in SHELLS], popens
    assert not [e for e in events if e["event"] in ("os.system", "os.exec", "os.spawn", "os.posix_spawn")]


def test_dolt_trees_are_byte_identical_around_stop_of_a_frozen_real_server(rigged_town: TownFixture) -> None:
    """The real server is frozen (SIGSTOP) so that Dolt itself cannot write; whatever changes
    in a .dolt/ folder across `gt-dolt stop` would then be the package's doing.
    """
    t = rigged_town
    t.rig("second")
    assert_clean(t.gt_dolt("start"), 0)
    wait_for_sql(t)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    pid = read_pid_file(t.town).pid
    assert pid is not None
    proc = psutil.Process(pid)
    proc.send_signal(signal.SIGSTOP)  # this town's own server, started by this test
    wait_until(lambda: proc.status() == psutil.STATUS_STOPPED, "the server to be stopped (SIGSTOP)")
    before = dolt_trees(t.root)
    assert len(before) >= 2, before.keys()
    stop = t.gt_dolt("stop", "--timeout", "0.5")  # SIGTERM waits in a frozen process: SIGKILL follows
    assert_clean(stop, 0)
    assert not alive(pid)
    assert dolt_trees(t.root) == before


@pytest.mark.parametrize("fake", ["dolt-fake-dies-at-start", "dolt-fake-never-ready"])
def test_dolt_trees_are_byte_identical_around_failed_starts(rigged_town: TownFixture, fake: str) -> None:
    """The named fakes write nothing, so the snapshot isolates the package's launch and clean-up."""
    t = rigged_town
    before = dolt_trees(t.root)
    done = t.gt_dolt("start", "--timeout", "1", INVOKE_DOLT_BINARY=str(fake_dolt(fake)))
    assert_clean(done, 1)
    assert dolt_trees(t.root) == before
    assert_clean(t.gt_dolt("stop"), 0)
    assert dolt_trees(t.root) == before


def _no_times(snapshot: dict[str, tuple]) -> dict[str, tuple]:
    """A tree snapshot without files' mtimes (kind, mode, size, bytes remain)."""
    return {path: entry[:3] + entry[4:] if entry[0] == "file" else entry for path, entry in snapshot.items()}


def test_migrate_moves_each_dolt_tree_whole_and_unchanged(town: TownFixture, dolt_binary: Path) -> None:
    """migrate renames whole databases: each .dolt/ tree arrives byte for byte.  (Not mtime for mtime:
    Dolt's own reading of each database, to count its rows before and after, touches them.)"""
    t = town
    sources = {
        "hq": t.root / ".beads" / "dolt" / "beads",
        "gastown": t.root / "gastown" / ".beads" / "dolt" / "beads",
    }
    for folder in sources.values():
        old_database(dolt_binary, folder, [(1, "old")])
    before = {rig: _no_times(tree_snapshot(folder / ".dolt")) for rig, folder in sources.items()}
    assert_clean(t.gt_dolt("migrate", "--dry-run"), 0)
    assert {rig: _no_times(tree_snapshot(folder / ".dolt")) for rig, folder in sources.items()} == before
    assert_clean(t.gt_dolt("migrate"), 0)
    after = {rig: _no_times(tree_snapshot(t.town.rig_dir(rig) / ".dolt")) for rig in sources}
    assert after == before
