"""Rule 4, maintenance never costs the server: log rotation cannot stop a start, never leaves a half
file, and never keeps the town down while a large log is compressed.

The full-disk cases run in a private mount namespace (`unshare`, root only) on a small tmpfs that
is nearly full: room for the run files and Dolt's first lines, none for a compressed copy.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import TownFixture
from faultkit import IN_MOUNTS, assert_clean, audit_events, audited_gt_dolt

pytestmark = pytest.mark.hostile
root_only = pytest.mark.needs_root("mounts a small tmpfs in a private mount namespace")

MB = 1024 * 1024


def private_log(t: TownFixture, data: bytes) -> None:
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.log_file.write_bytes(data)
    t.town.log_file.chmod(0o600)


def in_mounts(t: TownFixture, specs: list[str], *commands: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(IN_MOUNTS), *specs]
    for command in commands:
        argv += ["--", *command]
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", *argv],
        cwd=t.root,
        env=t.env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert "mounts in place" in done.stderr, done.stderr
    return done


def listing(done: subprocess.CompletedProcess[str], path: Path) -> dict[str, int]:
    line = next(line for line in done.stderr.splitlines() if line.startswith(f"listing {path}:"))
    entries = line.split(": ", 1)[1]
    return {name: int(size) for name, size in (e.rsplit(" ", 1) for e in entries.split(", ") if e)}


class TestMaintenanceNeverCostsTheServer:
    def test_a_large_log_is_set_aside_before_the_server_starts_and_compressed_after_it_answers(
        self, rigged_town: TownFixture, tmp_path: Path
    ) -> None:
        t = rigged_town
        old = b"".join(b"old line %d\n" % i for i in range(2_000_000))  # ~25 MB
        private_log(t, old)
        audit = tmp_path / "audit.jsonl"
        done = audited_gt_dolt(t, audit, "start", INVOKE_DOLT_LOG_MAX_MB="1")
        assert_clean(done, 0)
        assert "rotated the log: the old one" in done.stdout and "compressed the old log" in done.stdout
        events = audit_events(audit)

        def first(match: Callable[[dict], bool]) -> int:
            return next(i for i, e in enumerate(events) if match(e))

        set_aside = first(lambda e: e["event"] == "os.rename" and e["paths"][-1].endswith("/dolt.log.1"))
        spawned = first(lambda e: e["event"] == "subprocess.Popen" and "sql-server" in e["argv"])
        compressing = first(lambda e: e["event"] == "open-write" and e["paths"][0].endswith(".dolt.log.copying.gz"))
        states = [
            i
            for i, e in enumerate(events)
            if e["event"] == "os.rename" and e["paths"][-1].endswith("/dolt-state.json") and spawned < i < compressing
        ]
        assert set_aside < spawned < compressing
        assert len(states) >= 2  # recorded at the spawn, then once it answered: the town was up meanwhile
        assert gzip.decompress(t.town.log_file.with_name("dolt.log.1.gz").read_bytes()) == old
        assert not t.town.log_file.with_name("dolt.log.1").exists()
        new_log = t.town.log_file.read_text()
        assert "gastown-tasks:" in new_log and "sql-server" in new_log  # this start's header, in a fresh log
        assert "old line" not in new_log

    def test_a_planted_name_in_the_rotation_is_a_note_not_a_failed_start(
        self, rigged_town: TownFixture, tmp_path: Path
    ) -> None:
        t = rigged_town
        canary = tmp_path / "canary"
        canary.write_text("never written\n")
        private_log(t, b"x\n" * 600_000)
        t.town.log_file.with_name("dolt.log.2.gz").symlink_to(canary)
        done = t.gt_dolt("start", INVOKE_DOLT_LOG_MAX_MB="1")
        assert_clean(done, 0)
        assert "the log was not rotated" in done.stdout and "dolt.log.2.gz is a symlink" in done.stdout
        assert canary.read_text() == "never written\n" and t.servers()

    @root_only
    def test_a_nearly_full_disk_skips_the_compression_with_a_note_and_every_start_still_works(
        self, rigged_town: TownFixture
    ) -> None:
        t = rigged_town
        daemon = t.town.daemon_dir
        done = in_mounts(
            t,
            [f"tmpfs:{daemon}:4m", f"file:{t.town.log_file}:{2 * MB}", f"fill:{daemon}:{256 * 1024}", f"list:{daemon}"],
            ["start"],
            ["stop"],
            ["start"],
            ["stop"],
            INVOKE_DOLT_LOG_MAX_MB="1",
        )
        assert_clean(done, 0)
        assert done.stdout.count("dolt sql-server started") == 2, done.stdout
        assert "the old log stays uncompressed as dolt.log.1" in done.stdout and "no space left" in done.stdout
        left = listing(done, daemon)
        assert left.get("dolt.log.1") == 2 * MB  # set aside whole, never half compressed, never lost
        assert not [name for name in left if "copying" in name or name.endswith(".gz")], left

    @root_only
    def test_a_rotation_by_hand_on_a_full_disk_fails_in_one_line_and_leaves_the_log_whole(
        self, rigged_town: TownFixture
    ) -> None:
        t = rigged_town
        daemon = t.town.daemon_dir
        done = in_mounts(
            t,
            [f"tmpfs:{daemon}:4m", f"file:{t.town.log_file}:{2 * MB}", f"fill:{daemon}:{64 * 1024}", f"list:{daemon}"],
            ["logs", "--rotate"],
        )
        assert_clean(done, 1)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no space left" in errors[0], done.stderr
        left = listing(done, daemon)
        assert left.get("dolt.log") == 2 * MB and not [n for n in left if "copying" in n or n.endswith(".gz")], left

    def test_a_set_aside_log_left_by_an_earlier_start_is_compressed_by_the_next(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        private_log(t, b"")
        waiting = t.town.log_file.with_name("dolt.log.1")
        waiting.write_bytes(b"from an earlier start\n" * 1000)
        waiting.chmod(0o600)
        done = t.gt_dolt("start")
        assert_clean(done, 0)
        assert "compressed the old log" in done.stdout and not waiting.exists()
        assert gzip.decompress(t.town.log_file.with_name("dolt.log.1.gz").read_bytes()).count(b"earlier") == 1000
        assert os.stat(t.town.log_file.with_name("dolt.log.1.gz")).st_mode & 0o777 == 0o600
