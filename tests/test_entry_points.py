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

CASES: dict[str, list[list[str]]] = {
    "a stopped town": [
        [],
        ["status"],
        ["status", "--json"],
        ["list"],
        ["list", "--json"],
        ["logs", "-n", "5"],
        ["migrate", "--dry-run"],
        ["doctor"],
    ],
    "rigs": [
        ["init-rig", "beta"],
        ["sql", "-q", "SHOW TABLES"],
        ["init-rig", "beta"],
        ["init-rig", "bad name"],
        ["init-rig", "MySQL"],
        ["list"],
    ],
    "a server's day": [
        ["start"],
        ["start"],
        ["status"],
        ["list"],
        ["sql", "-q", "SELECT COUNT(*) AS n FROM issues", "-r", "hq"],
        ["sql", "--query=SELECT nosuchcolumn FROM issues"],
        ["stop"],
        ["stop"],
        ["status"],
    ],
    "bad values": [
        ["status", "--port", "0"],
        ["status", "-p", "70000"],
        ["start", "--timeout", "-1"],
        ["logs", "-n", "many"],
        ["sql", "--rig", "nosuchrig", "-q", "SELECT 1"],
        ["status", "--bogus"],
        ["init-rig"],
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
        for args in CASES[case]:
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
    assert any(code != 0 for _, code, *_ in reference) or case != "bad values"
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
    assert "psutil" in stopped and not {"invoke", "pymysql", "dataclasses"} & stopped
    t.gt_dolt("start").check_returncode()
    for command_line in (["status"], ["list"], ["stop"]):
        modules = imported(t, *command_line)
        assert "pymysql" in modules and not {"invoke", "dataclasses"} & modules, command_line
