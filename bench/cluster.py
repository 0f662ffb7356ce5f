"""Cluster and scale figures, run by hand: replication delay, failover time, a restarted pair, load.

    .venv/bin/python bench/cluster.py [--samples 40] [--runs 3] [--loads 1,4,16,64] [--seconds 4]
    .venv/bin/python bench/cluster.py --only failover,restart      # the fencing figures alone
    git archive <rev before fencing> | tar -x -C /tmp/before          # then, against it:
    .venv/bin/python bench/cluster.py --only failover,restart --before /tmp/before

- replication delay: a 1-row INSERT on the primary until the row is visible on the standby
  (median of --samples writes, 50 ms apart);
- failover time: the primary SIGKILLed (dead, not yet reaped) until the first write is accepted on
  the new primary, with `gt-dolt failover --force` run at once (--runs times);
- restarted pair: both servers SIGKILLed, then `gt-dolt start` launched in both towns at once,
  until the first write is accepted (the returning primary starts fenced and promotes itself once
  its peer answers; --runs times), against the baseline of the same run: two unclustered towns
  started at once, until the first accepts a write (the same two start-ups on the same cores);
- with --before DIR, failover and the restarted pair again with gt-dolt from DIR (without fencing),
  alternating with this one run by run: the ratios are the price of fencing;
- load: N agents (threads, one connection each) writing single rows as fast as they can for
  --seconds, at each N in --loads: throughput, write latency p50/p95, the server's RSS.

Towns on loopback with their own ports, under one temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pymysql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lab import Lab, free_port, lab_session, make_town  # noqa: E402

from gastown_tasks.ops.build.binary import find_dolt  # noqa: E402
from gastown_tasks.ops.polling import poll_until  # noqa: E402

GT_DOLT = [sys.executable, "-m", "gastown_tasks"]
TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"


def configure(root: Path, port: int, api: int, role: str, peer: tuple[str, int, int]) -> None:
    name, peer_api, peer_sql = peer
    (root / "tasks.py").write_text(TASKS)
    (root / "invoke.yaml").write_text(
        f"dolt:\n  port: {port}\n  backup_max_age_hours: 0\n  cluster:\n    role: {role}\n    epoch: 1\n"
        f"    remotesapi_port: {api}\n    standbys:\n"
        f"      - {{name: {name}, host: 127.0.0.1, remotesapi_port: {peer_api}, sql_port: {peer_sql}}}\n"
    )


BEFORE: dict[str, str] = {}  # PYTHONPATH of the package measured as the baseline, while it is measured


def gt_env(lab: Lab) -> dict[str, str]:
    return {**{k: v for k, v in lab.env.items() if not k.startswith("GT_DOLT_")}, **BEFORE}


@contextlib.contextmanager
def package(path: str | None) -> Iterator[None]:
    """gt-dolt runs from `path` (a checkout of another commit) inside the block; None: this one."""
    BEFORE.clear()
    if path:
        BEFORE["PYTHONPATH"] = path
    try:
        yield
    finally:
        BEFORE.clear()


def gt(lab: Lab, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = gt_env(lab)
    done = subprocess.run([*GT_DOLT, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"gt-dolt {' '.join(args)}: {done.stderr}")
    return done


def connect(port: int, database: str | None = "rig0000") -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=port, user="root", password="", database=database, autocommit=True, connect_timeout=5
    )


def cluster(lab: Lab, tag: str) -> tuple[Path, Path, int, int]:
    a, b = make_town(lab, f"a{tag}", 1), make_town(lab, f"b{tag}", 0)
    api_a, api_b = free_port(), free_port()
    configure(a.root, a.port, api_a, "primary", ("b", api_b, b.port))
    configure(b.root, b.port, api_b, "standby", ("a", api_a, a.port))
    gt(lab, b.root, "start")  # the standby first: the primary takes writes once its peer has answered
    gt(lab, a.root, "start")
    with connect(a.port) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
    assert poll_until(lambda: _visible(b.port, "SELECT COUNT(*) FROM t"), 60), "table never replicated"
    return a.root, b.root, a.port, b.port


def _visible(port: int, sql: str) -> bool:
    try:
        with connect(port) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return True
    except pymysql.err.MySQLError:
        return False


def replication_delay(a_port: int, b_port: int, samples: int) -> list[float]:
    delays = []
    with connect(a_port) as writer, connect(b_port) as reader:
        for i in range(1, samples + 1):
            started = time.perf_counter()
            with writer.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (%s, 'x')", (i,))

            def seen(row: int = i) -> bool:
                with reader.cursor() as cur:
                    cur.execute("SELECT 1 FROM t WHERE id = %s", (row,))
                    return bool(cur.fetchall())

            assert poll_until(seen, 30, first_delay=0.0005, max_delay=0.002)
            delays.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
    return delays


def kill(root: Path) -> None:
    """SIGKILL the town's server; return once it is dead (a zombie is dead: whoever adopted it reaps
    it in its own time, up to seconds here, which is no part of a failover)."""
    proc = psutil.Process(int((root / "daemon" / "dolt.pid").read_text().split()[0]))
    proc.send_signal(signal.SIGKILL)

    def dead() -> bool:
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert poll_until(dead, 30), f"pid {proc.pid} survived SIGKILL"


ATTEMPT = itertools.count(10_000_000)


def first_write(port: int, timeout: float = 120) -> None:
    """Poll until a write is accepted on `port` (refused connections, read-only errors: not yet)."""

    def accepted() -> bool:
        try:
            with connect(port) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (%s, 'first write')", (next(ATTEMPT),))
                return True
        except pymysql.err.MySQLError:
            return False

    assert poll_until(accepted, timeout, max_delay=0.005), f"no write accepted on port {port}"


def failover_time(lab: Lab, a_root: Path, b_root: Path, a_port: int, b_port: int) -> float:
    started = time.perf_counter()
    kill(a_root)
    gt(lab, b_root, "failover", "--force")
    first_write(b_port)
    return (time.perf_counter() - started) * 1000


def started_at_once(lab: Lab, roots: tuple[Path, Path], port: int) -> float:
    """`gt-dolt start` launched in both towns at once: until a write is accepted on `port`."""
    env = gt_env(lab)
    started = time.perf_counter()
    starts = [
        subprocess.Popen([*GT_DOLT, "start"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for root in roots
    ]
    first_write(port)
    elapsed = (time.perf_counter() - started) * 1000
    for proc in starts:
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"gt-dolt start: exit {proc.returncode}: {err.decode()}")
    return elapsed


def restarted_pair_time(lab: Lab, a_root: Path, b_root: Path, a_port: int) -> float:
    """Both killed, both started at once: until the returning primary (fenced, then promoted once its
    standby has answered) accepts a write."""
    kill(a_root)
    kill(b_root)
    return started_at_once(lab, (a_root, b_root), a_port)


def unclustered_pair_time(lab: Lab, tag: str) -> float:
    """The baseline: two unclustered towns started at once (the same two Dolt start-ups competing
    for the same cores), until the first accepts a write."""
    towns = [make_town(lab, f"{name}{tag}", 1) for name in ("u", "v")]
    for town in towns:
        (town.root / "tasks.py").write_text(TASKS)
        (town.root / "invoke.yaml").write_text(f"dolt:\n  port: {town.port}\n  backup_max_age_hours: 0\n")
        gt(lab, town.root, "start")
        with connect(town.port) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
        kill(town.root)
    return started_at_once(lab, (towns[0].root, towns[1].root), towns[0].port)


def summary(times: list[float]) -> dict[str, object]:
    return {"median": round(statistics.median(times), 1), "runs": [round(t, 1) for t in times]}


def load(port: int, agents: int, seconds: float, base: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    errors = [0]

    def agent(n: int) -> None:
        mine = []
        try:
            with connect(port) as conn, conn.cursor() as cur:
                i = 0
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    cur.execute("INSERT INTO t VALUES (%s, 'load')", (base + n * 1_000_000 + i,))
                    mine.append((time.perf_counter() - started) * 1000)
                    i += 1
        except pymysql.err.MySQLError:
            errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies) or [0.0]
    return {
        "agents": agents,
        "writes_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)], 2),
        "errors": errors[0],
    }


def server_rss_mb(root: Path) -> float:
    pid = int((root / "daemon" / "dolt.pid").read_text().split()[0])
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


PARTS = ("delay", "failover", "restart", "load")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loads", default="1,4,16,64")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--only", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument(
        "--before",
        help="a checkout of gastown-tasks without fencing (git archive REV | tar -x -C DIR): failover and the "
        "restarted pair are measured with it too, alternating, as the baseline",
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    results: dict[str, object] = {}
    with lab_session(find_dolt()) as lab:
        if "delay" in parts:
            a_root, b_root, a_port, b_port = cluster(lab, "0")
            delays = replication_delay(a_port, b_port, args.samples)
            results["replication_delay_ms"] = {
                "median": round(statistics.median(delays), 2),
                "min": round(min(delays), 2),
                "max": round(max(delays), 2),
                "samples": len(delays),
            }
            print(f"replication delay: median {statistics.median(delays):.2f} ms over {len(delays)} writes", flush=True)
        figures: dict[str, list[float]] = {}

        def measure(name: str, value: float) -> None:
            figures.setdefault(name, []).append(value)
            print(f"{name}: {value:.1f} ms", flush=True)

        versions = [("", None)] + ([(" before", args.before)] if args.before else [])
        for run in range(args.runs if parts & {"failover", "restart"} else 0):
            for suffix, path in versions if run % 2 == 0 else versions[::-1]:
                with package(path):
                    if "failover" in parts:
                        a_root, b_root, a_port, b_port = cluster(lab, f"f{run}{suffix.strip()}")
                        measure("failover" + suffix, failover_time(lab, a_root, b_root, a_port, b_port))
                    if "restart" in parts:
                        a_root, b_root, a_port, _ = cluster(lab, f"r{run}{suffix.strip()}")
                        measure("restarted pair" + suffix, restarted_pair_time(lab, a_root, b_root, a_port))
            if "restart" in parts:
                measure("two unclustered towns started at once", unclustered_pair_time(lab, f"{run}"))
        for name, times in figures.items():
            results[name.replace(" ", "_") + "_ms"] = summary(times)
        for name, base in (
            ("restarted pair", "two unclustered towns started at once"),
            ("restarted pair", "restarted pair before"),
            ("failover", "failover before"),
        ):
            if name in figures and base in figures:
                ratio = statistics.median(figures[name]) / statistics.median(figures[base])
                results[f"{name} vs {base}"] = round(ratio, 2)
                print(f"{name} vs {base}: {ratio:.2f}x", flush=True)
        if "load" in parts:
            single = make_town(lab, "load", 1)
            gt(lab, single.root, "start", "--port", str(single.port))
            with connect(single.port) as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(40))")
            rows = []
            for n, agents in enumerate(int(x) for x in args.loads.split(",")):
                row = load(single.port, agents, args.seconds, (n + 1) * 10**9)
                row["server_rss_mb"] = server_rss_mb(single.root)
                rows.append(row)
                print(json.dumps(row), flush=True)
            results["load"] = rows
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
