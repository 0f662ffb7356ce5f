"""How fast `gt-dolt watch` catches a wedged server and has it answering again (issue 21, item 3).

    .venv/bin/python bench/wedge.py [--reps N] [--interval S]

For each fault, a fresh watcher on a 1-rig town (so no backoff applies): the fault is made, then
we wait for the watcher's log line naming the wedge's restart, and for a new server to answer.
Faults, all real: SIGSTOP; the connection cap pinned (max_connections 3, three idle clients
held); a rig Dolt opened read-only (undropped while this script held its journal lock).  Reported:
detection (fault -> the watcher's second wedged check, when it acts) in watch intervals, and
fault -> answering again against bare Dolt's readiness in the same run.  Loopback
only; every server is this lab's, stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymysql

sys.path.insert(0, str(Path(__file__).parent))
from lab import BenchTown, Lab, lab_session, make_town, query_once, spawn_bare, town_env, wait_answering  # noqa: E402
from timing import Series  # noqa: E402

DOLT = Path.home() / ".cache/gastown-tasks/dolt/v0.40.5-0.20260715172757-a6690826d767/bin/dolt"
GT_DOLT = Path(sys.executable).parent / "gt-dolt"
TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
DEADLINE = 120.0
ACTED = "check 2 in a row: wedged"  # the watcher's decision to dump (silent) or restart (read-only)


def gt(lab: Lab, town: BenchTown, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GT_DOLT), *args], cwd=town.root, env=town_env(lab, town), capture_output=True, text=True, timeout=300
    )


def pid_of(town: BenchTown) -> int:
    return int((town.root / "daemon" / "dolt.pid").read_text().split()[0])


def connect(town: BenchTown, db: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=town.port, user="root", database=db, autocommit=True)


def wait_for(condition, what: str) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    while time.perf_counter() - began < DEADLINE:
        if condition():
            return time.perf_counter()
        time.sleep(0.01)
    raise RuntimeError(f"waited {DEADLINE:g}s for {what}")


def watch_log(town: BenchTown) -> str:
    path = town.root / "daemon" / "dolt-watch.log"
    return path.read_text() if path.exists() else ""


def fault_stop(lab: Lab, town: BenchTown) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def made():  # type: ignore[no-untyped-def]
        os.kill(pid_of(town), signal.SIGSTOP)  # this lab's server, started just now
        yield

    return made()


def fault_full(lab: Lab, town: BenchTown) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def made():  # type: ignore[no-untyped-def]
        held = [connect(town) for _ in range(3)]
        try:
            yield
        finally:
            for conn in held:
                with contextlib.suppress(Exception):
                    conn.close()

    return made()


def fault_read_only(lab: Lab, town: BenchTown) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def made():  # type: ignore[no-untyped-def]
        conn = connect(town)
        try:
            with conn.cursor() as cur:
                cur.execute("DROP DATABASE rig0000")
                lock = town.data_dir / ".dolt_dropped_databases" / "rig0000" / ".dolt" / "noms" / "LOCK"
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    cur.execute("CALL dolt_undrop('rig0000')")
                finally:
                    os.close(fd)
        finally:
            conn.close()
        yield

    return made()


FAULTS = {"SIGSTOP": fault_stop, "connection cap pinned": fault_full, "rig read-only": fault_read_only}


def sample(lab: Lab, town: BenchTown, fault, interval: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(fault -> the watcher acts, fault -> a new server answers), in seconds."""
    done = gt(lab, town, "start")
    assert done.returncode == 0, done.stderr
    old = pid_of(town)
    (town.root / "daemon" / "dolt-watch.log").unlink(missing_ok=True)
    watcher = subprocess.Popen(
        [str(GT_DOLT), "watch", "--interval", interval],
        cwd=town.root,
        env=town_env(lab, town),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert watcher.stdout is not None and "watching" in watcher.stdout.readline()
        with fault(lab, town):
            began = time.perf_counter()
            acted = wait_for(
                lambda: "dump of pid" in watch_log(town) or "restarted it" in watch_log(town), "the watcher"
            )
            answered = wait_for(
                lambda: (town.root / "daemon" / "dolt.pid").exists() and pid_of(town) != old and query_once(town.port),
                "a new server to answer",
            )
        wait_for(lambda: "restarted it" in watch_log(town), "the watcher's restart line")
        return acted - began, answered - began
    finally:
        os.killpg(watcher.pid, signal.SIGINT)
        watcher.wait(timeout=60)
        gt(lab, town, "stop", "--force")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--interval", default="1")
    args = parser.parse_args(argv)
    interval = float(args.interval)
    with lab_session(DOLT) as lab:
        bare = Series("bare readiness")
        town = make_town(lab, "bare", 1)
        for _ in range(args.reps):
            began = time.perf_counter()
            proc = spawn_bare(lab, town)
            wait_answering(proc, town.port)
            bare.samples.append(time.perf_counter() - began)
            proc.terminate()
            proc.wait(timeout=60)
        rows = []
        for name, fault in FAULTS.items():
            town = make_town(lab, name.replace(" ", "-"), 1)
            (town.root / "tasks.py").write_text(TASKS)
            if fault is fault_full:
                (town.root / "invoke.yaml").write_text("dolt:\n  server:\n    listener:\n      max_connections: 3\n")
            acted, answering = Series(f"{name}: acted"), Series(f"{name}: answering")
            for _ in range(args.reps):
                try:
                    a, b = sample(lab, town, fault, args.interval)
                    acted.samples.append(a)
                    answering.samples.append(b)
                except (RuntimeError, AssertionError) as exc:
                    print(f"{name}: {exc}", file=sys.stderr)
                    acted.failures += 1
            rows.append((name, acted, answering))
        print(f"watch --interval {args.interval}; bare readiness {bare.median * 1000:.0f} ms (n={len(bare.samples)})")
        print(
            "| fault | acted: intervals (median, max) | answering again: median ms | max ms | × bare readiness "
            "| n | failures |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, acted, answering in rows:
            worst = max(acted.samples, default=float("nan"))
            print(
                f"| {name} | {acted.median / interval:.1f}, {worst / interval:.1f} | {answering.median * 1000:.0f} | "
                f"{max(answering.samples, default=float('nan')) * 1000:.0f} | {answering.median / bare.median:.1f}× | "
                f"{len(answering.samples)}/{args.reps} | {acted.failures} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
