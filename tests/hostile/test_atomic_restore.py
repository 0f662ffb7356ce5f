"""Rule 3, atomic or invisible: a restore cut short at any instant leaves the rig absent or complete.

The matrix: the server running or stopped, times each step of a restore (Dolt about to restore
into the staging folder, the staged copy about to move to the dropped-databases folder, the
staging folder about to be removed, the final rename), times Ctrl-C or kill -9 right there (an
audit hook in the command itself sends the signal: tests/kill_at.py), plus a kill while
Dolt itself restores.  After each: the rig is either not there at all (not on disk, not listed,
not served) or there with every row; a retry then restores it, and nothing staged is left.
(migrate and init-rig follow the same rule; their interruption matrix comes with their shared
"stage then rename" helper.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from conftest import GT_DOLT, TownFixture
from faultkit import assert_clean, end, wait_until
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.hostile

KILL_AT = Path(__file__).parent.parent / "kill_at.py"
ROWS = [(i,) for i in range(1, 101)]

# (audit event, text in its arguments, which occurrence): a step of the restore, just before it runs.
STEPS = {
    "before-dolt-restores": ("subprocess.Popen", "dolt_backup", 1),
    "before-the-move-to-dropped": ("gastown_tasks.rename", "", 1),
    "before-staging-is-removed": ("shutil.rmtree", "restoring-", 1),
    "before-the-final-rename": ("gastown_tasks.rename", "", 2),  # no server: the rename into .dolt-data
    "before-the-server-takes-it": ("socket.connect", "{port}", 1),  # a server: its dolt_undrop call
}
HANDED_OVER = {"before-staging-is-removed", "before-the-final-rename", "before-the-server-takes-it"}
COMMON = ["before-dolt-restores", "before-the-move-to-dropped", "before-staging-is-removed"]
CASES = [("stopped", step) for step in [*COMMON, "before-the-final-rename"]]
CASES += [("running", step) for step in [*COMMON, "before-the-server-takes-it"]]


def back_up(t: TownFixture, mode: str) -> TownFixture:
    """Rig hq with 100 rows and a backup; the server left running or stopped."""
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    t.query("INSERT INTO beads VALUES " + ", ".join(f"({i})" for i in range(1, 101)), "hq")
    assert_clean(t.gt_dolt("backup"), 0)
    if mode == "stopped":
        server.stop(t.town, t.settings)
    return t


def running(t: TownFixture) -> bool:
    return bool(t.servers())


def listed(t: TownFixture) -> list[str]:
    done = t.gt_dolt("list", "--json")
    assert_clean(done, 0)
    return [entry["name"] for entry in json.loads(done.stdout)]


def leftovers(t: TownFixture) -> list[str]:
    staged = [p.name for p in t.town.daemon_dir.glob("restoring-*")]
    dropped = t.town.data_dir / ".dolt_dropped_databases"
    marked = [p.name for p in dropped.glob("*") if (p / ".gastown-restore").exists()] if dropped.is_dir() else []
    return staged + marked


def assert_absent_or_complete(t: TownFixture, name: str) -> bool:
    """The rig `name` is not there at all, or there with every row; True when it is there."""
    was_running = running(t)
    on_disk = t.town.rig_dir(name).exists()
    if not was_running:
        server.start(t.town, t.settings)  # what the next start would serve
    served = (name,) in t.query("SHOW DATABASES")
    if on_disk or served or name in listed(t):
        assert on_disk and served and name in listed(t), (on_disk, served)
        assert t.query("SELECT id FROM beads ORDER BY id", name) == ROWS
    if not was_running:
        server.stop(t.town, t.settings)
    return on_disk


def retry_restores_it(t: TownFixture, name: str, present: bool) -> None:
    again = t.gt_dolt("restore", "--rig", "hq", "--as", name)
    if present:
        assert_clean(again, 1)
        assert "already exists" in again.stderr
    else:
        assert_clean(again, 0)
    assert leftovers(t) == [] or present
    assert_absent_or_complete(t, name)
    assert t.town.rig_dir(name).exists()


def interrupted_at(t: TownFixture, step: str, sig: str, *args: str) -> subprocess.CompletedProcess[str]:
    event, match, nth = STEPS[step]
    return subprocess.run(
        [sys.executable, "-P", str(KILL_AT), "--event", event, match.format(port=t.port), str(nth), sig, *args],
        cwd=t.root,
        env=t.env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


class TestRestoreIsAtomicOrInvisible:
    @pytest.mark.parametrize("sig", ["INT", "KILL"], ids=["ctrl-c", "kill-9"])
    @pytest.mark.parametrize(("mode", "step"), CASES, ids=[f"{mode}-{step}" for mode, step in CASES])
    def test_a_restore_cut_short_at_any_step_leaves_the_rig_absent_or_complete(
        self, rigged_town: TownFixture, mode: str, step: str, sig: str
    ) -> None:
        t = back_up(rigged_town, mode)
        done = interrupted_at(t, step, sig, "restore", "--rig", "hq", "--as", "copy")
        assert f"kill_at: SIG{sig} at" in done.stderr, done.stderr  # the step was reached and cut
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == (130 if sig == "INT" else -9), done.stderr
        if step in HANDED_OVER:  # the complete copy waits where no server serves it
            assert "copy" in leftovers(t), leftovers(t)
        present = assert_absent_or_complete(t, "copy")
        assert not present  # every step here comes before the rig is handed over
        retry_restores_it(t, "copy", present)

    @pytest.mark.parametrize("mode", ["running", "stopped"])
    @pytest.mark.parametrize("sig", ["INT", "KILL"], ids=["ctrl-c-to-both", "kill-9-to-gt-dolt"])
    def test_a_restore_cut_short_while_dolt_restores_leaves_the_rig_absent_or_complete(
        self, rigged_town: TownFixture, mode: str, sig: str
    ) -> None:
        t = back_up(rigged_town, mode)
        job = subprocess.Popen(
            [*GT_DOLT, "restore", "--rig", "hq", "--as", "copy"],
            cwd=t.root,
            env=t.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:

            def restoring() -> psutil.Process | None:
                try:
                    kids = psutil.Process(job.pid).children(recursive=True)
                except psutil.NoSuchProcess:
                    return None
                return next((k for k in kids if "dolt_backup" in " ".join(k.cmdline())), None)

            wait_until(lambda: restoring() or job.poll() is not None, "Dolt to restore")
            if sig == "INT":
                os.killpg(job.pid, signal.SIGINT)  # the whole foreground group, as Ctrl-C (its own session)
            else:
                job.send_signal(signal.SIGKILL)
            job.wait(timeout=120)
        finally:
            end(job)
        wait_until(lambda: restoring_children_gone(job.pid), "the Dolt restoring to end with gt-dolt")
        present = assert_absent_or_complete(t, "copy")
        retry_restores_it(t, "copy", present)

    def test_a_database_dropped_under_the_same_name_is_kept_not_lost(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        server.start(t.town, t.settings)
        t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
        t.query("INSERT INTO beads VALUES (1)", "hq")
        assert_clean(t.gt_dolt("backup"), 0)
        t.query("INSERT INTO beads VALUES (2)", "hq")  # after the backup: only the dropped copy has it
        t.query("DROP DATABASE hq")
        done = t.gt_dolt("restore", "--rig", "hq")
        assert_clean(done, 0)
        assert "the dropped database hq" in done.stdout and "is kept as hq_before_restore_" in done.stdout
        assert t.query("SELECT id FROM beads", "hq") == [(1,)]
        kept = done.stdout.split("is kept as ")[1].split(" ")[0]
        t.query(f"CALL dolt_undrop('{kept}')")
        assert t.query("SELECT id FROM beads ORDER BY id", kept) == [(1,), (2,)]


def restoring_children_gone(pid: int) -> bool:
    """No Dolt of that restore left (it dies with gt-dolt: PR_SET_PDEATHSIG)."""
    for proc in psutil.process_iter():
        try:
            if "dolt_backup('restore'" in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.Error:
            continue
    return True
