"""A short run of the storm harness (bench/storm.py) against a managed server: no client errors, and
the connections hung clients hold are reclaimed.  Bounded in count (120 connections) and time (3 s
of storm, at most the reclaim + 10 s of settling); no speed is asserted: the figures live in
docs/benchmarks.md."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import TownFixture
from faultkit import assert_clean
from gastown_tasks.ops.files.runfiles import read_pid_file
from test_operations import configure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import storm  # noqa: E402  (bench/ is not a package)
from stormwatch import SETTLED  # noqa: E402

RECLAIM = 2  # seconds: dolt.wait_timeout for this town, so that settling is quick
MIX = {"quit": 0.4, "drop": 0.2, "write": 0.2, "abandon": 0.2}  # more hung clients than SETTLED


def test_a_short_storm_has_no_client_errors_and_the_hung_clients_connections_are_reclaimed(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    configure(t, f"dolt:\n  wait_timeout: {RECLAIM}\n")
    assert_clean(t.gt_dolt("start"), 0)
    pid = read_pid_file(t.town).pid
    assert pid
    run = storm.storm_once(t.port, pid, rate=40, seconds=3, database="hq", settle_limit=RECLAIM + 10, mix=MIX)
    assert run.attempted == 120 and run.errors == {}, run.errors
    assert run.held > SETTLED and run.threads_max is not None and run.threads_max > SETTLED  # there was a pile
    assert run.settle_s is not None, f"{run.threads_left} connections left {RECLAIM + 10}s after the storm"
    # every write that dropped its socket without COM_QUIT was committed
    assert run.kinds["write"] > 0 and t.query("SELECT COUNT(*) FROM storm_writes", "hq") == [(run.kinds["write"],)]
