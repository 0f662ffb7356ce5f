"""The planted-file matrix: every run-file position, every plant, every command, against a real Dolt.

For each position in the town and each plant, the same sequence of commands runs, each with a
timeout.  Each must end without a traceback, with the exit code documented for that position
(docs/reliability.md, "Hostile workspace"), and the canary outside the town must be byte-for-byte
and mode-for-mode unchanged.  A command that would write or remove a planted file refuses,
naming the path; read-only commands report it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import TownFixture
from faultkit import assert_clean
from hostile import JUNK, PLANTS, UNSAFE, Canary, gt, make_canary, plant

pytestmark = pytest.mark.hostile

SEQUENCE = ("status", "list", "logs", "doctor", "migrate", "init-rig", "doctor --fix", "start", "restart", "stop")


@dataclass(frozen=True)
class Position:
    """Where a plant goes, and what each command does about it."""

    where: Callable[[TownFixture], Path]
    target: Callable[[Canary], Path]  # what a link-to-folder plant points at
    refuses: frozenset[str]  # commands that exit 1 naming the planted path (unsafe plants)
    status: int = 3
    doctor: int = 1
    junk: dict[str, int] = field(default_factory=dict)  # codes when the plant is a plain file of ours
    junk_like_unsafe: bool = False  # a plain file where a folder must be: as bad as any plant
    plants: tuple[str, ...] = PLANTS
    unsafe_plants: tuple[str, ...] = UNSAFE  # plants that count as unsafe here


def _outside(c: Canary) -> Path:
    return c.folder


DAEMON_FILE = frozenset({"start", "restart"})
POSITIONS: dict[str, Position] = {
    "dolt.pid": Position(
        lambda t: t.town.pid_file, _outside, DAEMON_FILE | {"stop"}, status=1, junk={"status": 1, "doctor": 0}
    ),
    "dolt-state.json": Position(lambda t: t.town.state_file, _outside, DAEMON_FILE),
    "dolt.log": Position(lambda t: t.town.log_file, _outside, DAEMON_FILE | {"logs"}),
    "dolt.lock": Position(
        lambda t: t.town.lock_file,
        _outside,
        DAEMON_FILE | {"stop", "init-rig", "migrate", "doctor --fix"},
    ),
    "dolt-state.json.corrupt": Position(
        lambda t: t.town.state_file.with_name("dolt-state.json.corrupt"), _outside, frozenset()
    ),
    "config.yaml": Position(lambda t: t.town.config_file, _outside, DAEMON_FILE),
    "daemon": Position(
        lambda t: t.town.daemon_dir,
        _outside,
        DAEMON_FILE | {"stop", "init-rig", "migrate", "logs", "doctor --fix"},
        junk_like_unsafe=True,
        plants=tuple(p for p in PLANTS if p != "folder"),
    ),
    ".dolt-data": Position(
        lambda t: t.town.data_dir,
        _outside,
        DAEMON_FILE | {"list", "init-rig", "migrate"},
        junk_like_unsafe=True,
        plants=tuple(p for p in PLANTS if p != "folder"),
    ),
    # A rig folder: a link to a database elsewhere is never served by Dolt, so start refuses at
    # once; anything that is not a folder is simply not a rig.
    "rig folder": Position(
        lambda t: t.town.rig_dir("gastown"),
        lambda c: c.folder / "gastown" / ".beads" / "dolt" / "beads",
        DAEMON_FILE,
        unsafe_plants=("link-to-folder",),
    ),
}
# Each component of a migration source (<town>/gastown/.beads/dolt/beads): a link out of the
# town is skipped and reported, never followed; anything else simply holds no old database.
for depth, name in enumerate(("<rig>", ".beads", "dolt", "beads")):
    parts = ("gastown", ".beads", "dolt", "beads")[: depth + 1]
    POSITIONS[f"migration {name}"] = Position(
        lambda t, parts=parts: t.root.joinpath(*parts),
        lambda c, parts=parts: c.folder.joinpath(*parts),
        frozenset(),
        doctor=0,
        unsafe_plants=(),
    )


def expected(position: Position, kind: str) -> dict[str, int]:
    unsafe = kind in position.unsafe_plants or (kind in JUNK and position.junk_like_unsafe)
    if not unsafe:
        codes = dict.fromkeys(SEQUENCE, 0)
        codes["status"] = 3
        if kind in JUNK:
            codes.update(position.junk)
        return codes
    codes = {command: (1 if command in position.refuses else 0) for command in SEQUENCE}
    codes["status"] = position.status
    codes["doctor"] = codes["doctor --fix"] = position.doctor
    if codes["start"] == 0:  # it started: status after is "running" and stop stops it
        codes["stop"] = 0
    return codes


CASES = [(name, kind) for name, position in POSITIONS.items() for kind in position.plants]


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_a_planted_position_never_leaks_hangs_or_crashes(
    rigged_town: TownFixture, template_db: Path, tmp_path: Path, name: str, kind: str
) -> None:
    t = rigged_town
    position = POSITIONS[name]
    canary = make_canary(tmp_path / "canary", template_db)
    before = canary.snapshot()
    target = position.where(t)
    if name == "rig folder":
        pass  # gastown is not a rig yet: the plant is the only thing at that name
    plant(target, kind, position.target(canary), canary)
    codes = expected(position, kind)
    said: list[str] = []
    for command in SEQUENCE:
        args = command.split() + (["extra"] if command == "init-rig" else [])
        done = gt(t, *args)
        said.append(f"$ gt-dolt {command} -> {done.returncode}\n{done.stdout}{done.stderr}")
        assert_clean(done, codes[command])
        if codes[command] == 1 and command in position.refuses:
            assert str(target) in done.stderr, "\n".join(said)
    assert canary.snapshot() == before, "\n".join(said)
    assert not canary.file.read_text().startswith("\x00")
