"""One behaviour, three ways in: the same command lines through gt-dolt's own parser (no Invoke),
through gt-dolt handed over to Invoke, and as `invoke dolt.<task>`, each in an identical fresh
town, give the same exit codes, the same output (pids, ports, times and the town's path masked)
and leave the same files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, cleanup_town, make_town

PROJECT_TASKS = """\
from invoke import Collection

import gastown_tasks

ns = Collection()
gastown_tasks.add_dolt(ns)
"""

RUNNERS = ("gt-dolt", "gt-dolt handed to Invoke", "invoke dolt.*")

# Each step: the command line, the exit code it must give, and a line it must print (masked, stdout or
# stderr): the three entry points must agree with each other and with this.
CASES: dict[str, list[tuple[list[str], int, str]]] = {
    "a stopped town": [
        ([], 3, "dolt sql-server is not running\n"),
        (["status"], 3, "  databases (on disk): hq\n"),
        (["status", "--json"], 3, '  "running": false,\n'),
        (["list"], 0, "hq                       <town>/.dolt-data/hq\n"),
        (["list", "--json"], 0, '    "path": "<town>/.dolt-data/hq",\n'),
        (["logs", "-n", "5"], 0, "no log yet: <town>/daemon/dolt.log is written when the server starts"),
        (["migrate", "--dry-run"], 0, "nothing to migrate: no beads data outside .dolt-data\n"),
        (["doctor"], 0, "ok   port: <port> is free\n"),
    ],
    "rigs": [
        (
            ["init-rig", "beta"],
            0,
            "created rig beta at <town>/.dolt-data/beta (the server serves it from its next start)",
        ),
        (["sql", "-q", "SHOW TABLES"], 0, "| issues       |\n"),
        (["init-rig", "beta"], 1, "error: rig beta already exists at <town>/.dolt-data/beta\n"),
        (["init-rig", "bad name"], 2, "error: invalid rig name 'bad name': use 1-64 letters"),
        (["init-rig", "MySQL"], 2, "error: invalid rig name 'MySQL': the server reserves it; choose another name\n"),
        (["list"], 0, "beta                     <town>/.dolt-data/beta  beads: beta\nhq "),
    ],
    "a server's day": [
        (["start"], 0, "dolt sql-server started: pid <pid> on 127.0.0.1:<port>, serving hq"),
        (["start"], 0, "dolt sql-server already running: pid <pid> on 127.0.0.1:<port>, serving hq"),
        (["status"], 0, "dolt sql-server is running: pid <pid>\n"),
        (["list"], 0, "hq                       <town>/.dolt-data/hq  served\n"),
        (["sql", "-q", "SELECT COUNT(*) AS n FROM issues", "-r", "hq"], 0, "| 1 |\n"),
        (["sql", "--query=SELECT nosuchcolumn FROM issues"], 1, 'column "nosuchcolumn" could not be found'),
        (["stop"], 0, "dolt sql-server stopped (pid <pid>)\n"),
        (["stop"], 0, "dolt sql-server is not running\n"),
        (["status"], 3, "dolt sql-server is not running\n"),
    ],
    "bad values": [
        (["status", "--port", "0"], 2, "error: invalid port '0' (from --port): it must be a whole number from 1"),
        (["status", "-p", "70000"], 2, "error: invalid port '70000' (from --port)"),
        (["start", "--timeout", "-1"], 2, "error: invalid start_timeout '-1' (from --timeout)"),
        (["logs", "-n", "many"], 2, "error: invalid -n 'many': give a number of lines from 0 to 100,000\n"),
        (["sql", "--rig", "nosuchrig", "-q", "SELECT 1"], 1, "error: no rig nosuchrig in <town>/.dolt-data;"),
        (["status", "--bogus"], 1, "No idea what '--bogus' is!\n"),
        (["init-rig"], 1, "'init-rig' did not receive required positional arguments: 'name'\n"),
    ],
}

MASKS = [
    (re.compile(r"'dolt\.([a-z-]+)'"), r"'\1'"),  # Invoke names a task as it was typed: dolt.init-rig, init-rig
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?"), "<time>"),
    (re.compile(r"\bpid \d+"), "pid <pid>"),
    (re.compile(r'"pid": \d+'), '"pid": <pid>'),
    (re.compile(r"\(up \d+s\)"), "(up <n>s)"),
    (re.compile(r'"uptime_seconds": [\d.]+'), '"uptime_seconds": <n>'),
    (re.compile(r"  health: .*"), "  health: <health>"),
    (re.compile(r"  disk: .*"), "  disk: <disk>"),
    (re.compile(r"  commits: .*"), "  commits: <commits>"),
]


def masked(text: str, town: TownFixture) -> str:
    text = text.replace(str(town.root), "<town>").replace(str(town.port), "<port>")
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def files(town: TownFixture) -> dict[str, object]:
    """What a command leaves: the names in the town, .dolt-data and daemon/, and what the state says."""
    state_file = town.root / "daemon" / "dolt-state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return {
        folder: sorted(os.listdir(town.root / folder)) if (town.root / folder).is_dir() else None
        for folder in (".", ".dolt-data", "daemon")
    } | {"state keys": sorted(state), "state running": state.get("running")}


def command(runner: str, project: Path, args: list[str]) -> list[str]:
    if runner == "invoke dolt.*":
        name, *rest = args or ["status"]
        return [sys.executable, "-m", "invoke", "-r", str(project), f"dolt.{name}", *rest]
    return [*GT_DOLT, *args]


def environment(runner: str, town: TownFixture) -> dict[str, str]:
    env = {k: v for k, v in town.env().items() if not k.startswith("INVOKE_")}
    if runner == "gt-dolt handed to Invoke":
        env["INVOKE_RUN_ECHO"] = "false"  # a harmless Invoke setting: gt-dolt hands the line to Invoke
    return env


@pytest.fixture
def towns(tmp_path: Path, template_db: Path, dolt_binary: Path) -> Iterator[dict[str, TownFixture]]:
    """One identical town per runner (rig hq, a copy of the same database), and the project whose
    tasks.py composes the dolt collection, outside every town."""
    made = {}
    for i, runner in enumerate(RUNNERS):
        town = make_town(tmp_path / f"town{i}")
        shutil.copytree(template_db, town.root / ".dolt-data" / "hq", symlinks=True)
        made[runner] = town
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "tasks.py").write_text(PROJECT_TASKS)
    yield made
    for town in made.values():
        cleanup_town(town)


@pytest.mark.parametrize("case", CASES)
def test_every_entry_point_gives_the_same_exit_codes_output_and_files(
    case: str, towns: dict[str, TownFixture], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    seen: dict[str, list[tuple[object, ...]]] = {runner: [] for runner in RUNNERS}
    for runner, town in towns.items():
        for args, _, _ in CASES[case]:
            done = subprocess.run(
                command(runner, project, args),
                cwd=town.root,
                env=environment(runner, town),
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            step = (args, done.returncode, masked(done.stdout, town), masked(done.stderr, town), files(town))
            seen[runner].append(step)
    reference = seen[RUNNERS[0]]
    for (args, code, line), (_, got, out, err, _) in zip(CASES[case], reference, strict=True):
        assert (got, line in out + err) == (code, True), (
            f"gt-dolt {args}: exit {got}, wanted {code} and {line!r}:\n{out}{err}"
        )
    for runner in RUNNERS[1:]:
        for ours, theirs in zip(reference, seen[runner], strict=True):
            assert theirs == ours, f"{runner} differs from gt-dolt on {ours[0]}"


def imported(town: TownFixture, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *GT_DOLT[1:], *args],
        cwd=town.root,
        env=environment("gt-dolt", town),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_plain_command_lines_import_only_what_they_use(rigged_town: TownFixture) -> None:
    t = rigged_town
    version = imported(t, "--version")
    assert not {"invoke", "psutil", "pymysql", "dataclasses", "gastown_tasks.ops"} & version
    stopped = imported(t, "status")
    assert "psutil" in stopped and not {"invoke", "pymysql", "dataclasses", "filelock"} & stopped
    t.gt_dolt("start").check_returncode()
    for command_line in (["status"], ["list"]):
        modules = imported(t, *command_line)
        assert "pymysql" in modules and not {"invoke", "dataclasses", "filelock"} & modules, command_line
    stop = imported(t, "stop")  # takes the town lock: filelock (which brings dataclasses) is its cost
    assert {"pymysql", "filelock"} <= stop and "invoke" not in stop
