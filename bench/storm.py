"""The agent connection storm, side by side: our managed config, gt v1.0's, and Dolt's defaults.

Gas Town's agents run `bd` as a new process per call: the server sees a storm of short
connections, many ending without COM_QUIT, some held idle by hung processes.  This runs that mix
(bench/stormmix.py; a few real `bd` processes beside it, bench/stormbd.py) at each rate, against
the same Dolt binary started with each configuration (bench/stormservers.py), and reports per run:
client errors, connect+query p50/p99, Threads_connected over time, the server's CLOSE_WAIT sockets
and CPU, its RSS before and after, and the time after the storm until Threads_connected settles
(<= 10) while the hung clients still hold their connections (bench/stormwatch.py).

Bounded: every run lasts `--seconds` (default 20) plus at most `--settle-limit` (default 40) of
settling; each server is started fresh for its run and stopped after it; loopback only, free ports,
temporary towns removed at the end (also on Ctrl-C).

    .venv/bin/python bench/storm.py                          # 3 configs x 100/200/400 conn/s, ~11 min
    .venv/bin/python bench/storm.py --rates 200 --seconds 60 --configs managed,"gt v1.0"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import report
import stormbd
import stormmix
import stormservers
from lab import dolt_version, lab_session, make_town
from stormwatch import SETTLED, Monitor

from gastown_tasks.ops.build.binary import find_dolt
from gastown_tasks.ops.build.gobuild import bd_binary
from gastown_tasks.ops.polling import poll_until

RATES = (100, 200, 400)
DATABASE = "rig0000"  # the lab town's one rig


@dataclass
class Run:
    config: str
    rate: int
    seconds: float
    reclaim: int  # the idle reclaim the server reads back (@@net_read_timeout), seconds
    attempted: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # clients of each kind (bench/stormmix.py)
    held: int = 0  # abandoned connections the hung clients held until the settle time was measured
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None
    lag_p99_ms: float | None = None
    threads_max: int | None = None
    threads: list[tuple[float, int | None]] = field(default_factory=list)  # (seconds since the storm began, n)
    close_wait_max: int = 0
    close_wait_after: int = 0
    cpu_percent: float | None = None  # the server's, mean over the storm, % of one core
    cpu_ms_per_connection: float | None = None  # the server's CPU time during the storm / connections
    settle_s: float | None = None  # after the storm, until Threads_connected <= SETTLED; None: not within
    settle_limit: float = 0.0
    threads_left: int | None = None
    rss_before: int = 0
    rss_after: int = 0
    bd_calls: int = 0
    bd_errors: dict[str, int] = field(default_factory=dict)
    bd_p50_ms: float | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + sum(self.bd_errors.values())


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def storm_once(
    port: int,
    pid: int,
    rate: int,
    seconds: float,
    database: str,
    settle_limit: float,
    *,
    config: str = "",
    reclaim: int = 0,
    bd: stormbd.BdLoad | None = None,
    mix: dict[str, float] | None = None,
) -> Run:
    """One storm against a running server (127.0.0.1:port, process pid) and its settling."""
    run = Run(config, rate, seconds, reclaim, settle_limit=settle_limit)
    stormmix.prepare(port, database)
    monitor = Monitor(port, pid).start()
    storm = stormmix.Storm(port, rate, seconds, database, mix)
    try:
        poll_until(lambda: monitor.samples, 30, first_delay=0.01, max_delay=0.1)
        run.rss_before = psutil.Process(pid).memory_info().rss
        if bd is not None:
            bd.start()
        cpu_before = monitor.cpu_seconds()
        figures = storm.run()
        cpu_used = monitor.cpu_seconds() - cpu_before
        if bd is not None:
            bd.stop()
        finished = time.monotonic()
        run.settle_s = monitor.settle(settle_limit)
        run.close_wait_after = monitor.close_wait()
        run.threads_left = monitor.samples[-1].threads
        run.rss_after = psutil.Process(pid).memory_info().rss
    finally:
        run.held = storm.release()
        monitor.stop()
    during = monitor.window(storm.started, finished)
    run.attempted = figures.attempted
    run.errors = dict(figures.errors)
    run.kinds = dict(figures.kinds)
    run.p50_ms = _ms(stormmix.percentile(figures.latencies, 0.5))
    run.p99_ms = _ms(stormmix.percentile(figures.latencies, 0.99))
    run.lag_p99_ms = _ms(stormmix.percentile(figures.lag, 0.99))
    counts = [s.threads for s in monitor.samples if s.threads is not None]
    run.threads_max = max(counts) if counts else None
    run.threads = [(round(s.at + monitor.began - storm.started, 1), s.threads) for s in monitor.samples]
    run.close_wait_max = max((s.close_wait for s in monitor.samples), default=0)
    run.cpu_ms_per_connection = round(1000 * cpu_used / max(figures.attempted, 1), 2)
    run.cpu_percent = round(sum(s.cpu_percent for s in during) / len(during), 1) if during else None
    if bd is not None:
        run.bd_calls = sum(bd.calls.values())
        run.bd_errors = dict(bd.errors)
        run.bd_p50_ms = _ms(stormmix.percentile(bd.latencies, 0.5))
    return run


def _cell(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value:g}{suffix}" if isinstance(value, float) else f"{value}{suffix}"


def table(runs: list[Run]) -> str:
    lines = [
        "| config | rate/s | idle reclaim | clients | errors | p50 ms | p99 ms | Threads_connected max | "
        "CLOSE_WAIT max / after | server CPU | settle (≤ 10 threads) | RSS before → after MiB | bd calls (errors) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        settle = f"{r.settle_s:g} s" if r.settle_s is not None else f"> {r.settle_limit:g} s ({r.threads_left} left)"
        rss = f"{r.rss_before / 2**20:.0f} → {r.rss_after / 2**20:.0f}"
        cpu = f"{_cell(r.cpu_percent, '%')}, {_cell(r.cpu_ms_per_connection)} ms/conn"
        lines.append(
            f"| {r.config} | {r.rate} | {r.reclaim} s | {r.attempted} | {sum(r.errors.values())} | {_cell(r.p50_ms)} | "
            f"{_cell(r.p99_ms)} | {_cell(r.threads_max)} | {r.close_wait_max} / {r.close_wait_after} | "
            f"{cpu} | {settle} | {rss} | {r.bd_calls} ({sum(r.bd_errors.values())}) |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="connections a second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each storm (at most 120)")
    parser.add_argument("--settle-limit", type=float, default=40.0, help="seconds to wait for settling (at most 120)")
    parser.add_argument("--configs", default=",".join(stormservers.CONFIGS), help="comma-separated subset")
    parser.add_argument("--bd", type=int, default=2, help="bd worker loops beside the storm (0: none)")
    args = parser.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not (0 < args.seconds <= 120 and 0 < args.settle_limit <= 120) or not all(0 < r <= 1000 for r in args.rates):
        parser.error("--seconds and --settle-limit: (0, 120]; rates: (0, 1000]")
    if not set(args.configs) <= set(stormservers.CONFIGS):
        parser.error(f"--configs takes {', '.join(stormservers.CONFIGS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bd = bd_binary() if args.bd else None
    if bd is not None and not bd.is_file():
        print(f"no bd at {bd}: build it (gt-dolt install --bd) or pass --bd 0", file=sys.stderr)
        return 2
    began = time.monotonic()
    runs: list[Run] = []
    with lab_session(find_dolt()) as lab:
        towns = {config: make_town(lab, f"storm-{n}", 1) for n, config in enumerate(args.configs)}
        bd_ready: set[str] = set()
        try:
            for i, rate in enumerate(args.rates):
                order = args.configs[i % len(args.configs) :] + args.configs[: i % len(args.configs)]
                for config in order:
                    town = towns[config]
                    server = stormservers.start(lab, town, config)
                    try:
                        load = None
                        if bd is not None:
                            env = stormbd.bd_env(lab.env, lab.root / "bd-home")
                            if config not in bd_ready:
                                stormbd.init_workspace(bd, env, town.root, town.port, DATABASE)
                                bd_ready.add(config)
                            stormbd.forget_breaker(town.port)
                            load = stormbd.BdLoad(bd, env, town.root, workers=args.bd)
                        print(f"{config}: {rate}/s for {args.seconds:g}s (reclaim {server.reclaim}s)", file=sys.stderr)
                        run = storm_once(
                            town.port,
                            server.pid,
                            rate,
                            args.seconds,
                            DATABASE,
                            min(args.settle_limit, server.reclaim + 10),
                            config=config,
                            reclaim=server.reclaim,
                            bd=load,
                        )
                        runs.append(run)
                        print(table([run]).splitlines()[-1], file=sys.stderr)
                    finally:
                        stormservers.stop(lab, server)
                        stormbd.forget_breaker(town.port)
        except KeyboardInterrupt:
            print("interrupted: partial results below, no JSON written", file=sys.stderr)
            print(table(runs))
            return 130
        version = dolt_version(lab)
    print(table(runs))
    payload = {
        "dolt_version": version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": report.git_commit(),
        "machine": report.machine(),
        "seconds": round(time.monotonic() - began, 1),
        "settled_at_threads": SETTLED,
        "mix": stormmix.MIX,
        "args": {k: v for k, v in vars(args).items()},
        "runs": [asdict(r) for r in runs],
    }
    report.RESULTS.mkdir(parents=True, exist_ok=True)
    path: Path = report.RESULTS / f"storm-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\n{version}; {payload['seconds']:.0f} s; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
