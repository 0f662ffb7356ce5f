"""Benchmarks: what gt-dolt costs on top of Python and of Dolt itself (issues 5, 9 and 12).

    .venv/bin/python bench/run.py [--reps N] [--only commands,start,scale,operations,imports] [--gt-dolt PATH]

Command lines (`--version`, `status`, `list`, and the Invoke path `invoke dolt.*`) are timed by
hyperfine in rotating rounds (bench/hyper.py).  Start and stop are timed here, against a bare
`dolt sql-server` in the same town, because where they end is an event (the first query answers,
the process has exited) that a command-line timer cannot see.  Every figure is a ratio of medians
measured in this one run: the machines here are shared and noisy.  Towns, rigs and servers are
temporary (free ports, never 3307) and removed at the end, also on Ctrl-C.  Results: Markdown on
stdout, JSON in bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hyper
import report
from lab import (
    BenchTown,
    Lab,
    dolt_version,
    idle_client,
    lab_session,
    make_project,
    make_town,
    port_open,
    query_once,
    show_databases,
    spawn_bare,
    town_env,
    wait_answering,
    wait_port_closed,
)
from timing import Figure, Series, run_timed

from gastown_tasks import __version__
from gastown_tasks.ops.build.binary import DOLT_VERSION, find_dolt
from gastown_tasks.ops.server.drain import QUIET_SECONDS

# Targets of issue 12 (ratios of medians; the stop target is an overhead against `python -c pass`).
VERSION_TARGET = 2.0
STATUS_TARGET = 3.5
LIST_TARGET = 3.0
START_TARGETS = {1: 2.0, 50: 1.3}
STOP_TARGET = 4.0  # (gt-dolt stop - bare SIGTERM until exit) / python -c pass, 1 rig
SCALE_TARGET = 2.0  # issue 5: status and list with 1000 rigs against 1 rig
START_RIGS = (1, 10, 50)
SCALE_RIGS = (1, 100, 1000)
MIN_REPS = 5
PHASES = ("commands", "start", "scale", "operations", "imports")
RECOVERIES = 5  # SIGKILLs the watcher must recover from
WATCH_INTERVAL = "1"
SERVER_TIMEOUT = "600"  # seconds gt-dolt may take to start the 1000-rig server (untimed setup)
SIDES = ("gt-dolt", "invoke")


@dataclass
class Bench:
    lab: Lab
    gt: Path
    project: Path  # a tasks.py composing the dolt collection, outside every town
    reps: int
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    towns: dict[int, BenchTown] = field(default_factory=dict)

    def town(self, rigs: int) -> BenchTown:
        """One town per rig count, made on first use and shared by every phase."""
        if rigs not in self.towns:
            self.towns[rigs] = make_town(self.lab, f"town-{rigs}", rigs)
        return self.towns[rigs]

    @property
    def python(self) -> str:
        """The interpreter of the environment gt-dolt is installed in: `python -c pass` there is
        the floor every command line of that install pays."""
        beside = self.gt.parent / "python"
        return str(beside) if beside.exists() else sys.executable

    def argv(self, side: str, *args: str) -> list[str]:
        """A command as a user types it: `gt-dolt status`, or `invoke dolt.status` (the Invoke path)."""
        if side == "gt-dolt":
            return [str(self.gt), *args]
        invoke = str(self.gt.parent / "invoke")
        return [invoke, "-r", str(self.project), f"dolt.{args[0]}", *args[1:]]

    def run(self, town: BenchTown, argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
        """From inside the town, port from GT_DOLT_PORT."""
        return run_timed(argv, town.root, town_env(self.lab, town))

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(f"note: {text}")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rigs_label(rigs: int) -> str:
    return f"{rigs} rig" if rigs == 1 else f"{rigs} rigs"


@contextmanager
def serving(bench: Bench, *towns: BenchTown) -> Iterator[None]:
    """Servers running (started by gt-dolt, untimed) for the block, and stopped after it."""
    try:
        for town in towns:
            _, done = bench.run(town, bench.argv("gt-dolt", "start", "--timeout", SERVER_TIMEOUT))
            if done.returncode != 0:
                raise RuntimeError(f"gt-dolt start failed in {town.root}: {done.stderr.strip()}")
        yield
    finally:
        for town in towns:
            with suppress(subprocess.SubprocessError):
                bench.run(town, bench.argv("gt-dolt", "stop", "--timeout", "30"))


# --- command lines against python -c pass -----------------------------------------------------


def commands_phase(bench: Bench) -> None:
    town = bench.town(1)
    commands = {
        "python -c pass": [bench.python, "-c", "pass"],
        "gt-dolt --version": bench.argv("gt-dolt", "--version"),
    }
    for side in SIDES:
        for command in ("status", "list"):
            commands[f"{side} {command}"] = bench.argv(side, command)
    with serving(bench, town):
        s = hyper.measure([hyper.Group(town.root, town_env(bench.lab, town), commands)], bench.reps)
    floor = s["python -c pass"]
    bench.figures.append(Figure("gt-dolt --version vs python -c pass", s["gt-dolt --version"], floor, VERSION_TARGET))
    for command, target in (("status", STATUS_TARGET), ("list", LIST_TARGET)):
        label = f"{command} (1 rig, server running)"
        bench.figures.append(Figure(f"gt-dolt {label} vs python -c pass", s[f"gt-dolt {command}"], floor, target))
        bench.figures.append(Figure(f"invoke dolt.{label} vs python -c pass", s[f"invoke {command}"], floor))


# --- start and stop against bare Dolt --------------------------------------------------------


@dataclass
class StartStop:
    """The series of one start/stop phase: bare Dolt, gt-dolt and invoke, same town, same port."""

    rigs: int
    bare_start: Series = field(default_factory=lambda: Series("bare: spawn until SELECT 1 answers"))
    bare_exit: Series = field(default_factory=lambda: Series("bare: SIGTERM until the process exits"))
    floor: Series = field(default_factory=lambda: Series("python -c pass"))
    start: dict[str, Series] = field(default_factory=lambda: {side: Series(f"{side} start") for side in SIDES})
    stop: dict[str, Series] = field(default_factory=lambda: {side: Series(f"{side} stop") for side in SIDES})
    first_query_failures: int = 0


def bare_cycle(bench: Bench, town: BenchTown, s: StartStop) -> None:
    """Bare start (the physical limit of readiness), then SIGTERM until the process has exited."""
    began = time.perf_counter()
    proc = spawn_bare(bench.lab, town)
    answered = False
    try:
        wait_answering(proc, town.port)
        s.bare_start.samples.append(time.perf_counter() - began)
        answered = True
    except RuntimeError as exc:
        s.bare_start.failures += 1
        bench.note(str(exc))
    finally:
        began = time.perf_counter()
        proc.terminate()
        proc.wait(timeout=60)
        exited = time.perf_counter() - began
        wait_port_closed(town.port)
    if answered:
        s.bare_exit.samples.append(exited)


def managed_cycle(bench: Bench, town: BenchTown, s: StartStop, side: str) -> None:
    """start, one query that must answer at once, then stop (which returns once the process is gone)."""
    elapsed, done = bench.run(town, bench.argv(side, "start"))
    started = done.returncode == 0
    if started:
        s.start[side].samples.append(elapsed)
        if not query_once(town.port, timeout=1.0):
            s.first_query_failures += 1
    else:
        s.start[side].failures += 1
        bench.note(f"{side} start exited {done.returncode}: {done.stderr.strip()[:300]}")
    elapsed, done = bench.run(town, bench.argv(side, "stop"))
    if done.returncode != 0 or port_open(town.port):
        s.stop[side].failures += 1
        bench.note(f"{side} stop exited {done.returncode}; port open: {port_open(town.port)}")
    elif started:
        s.stop[side].samples.append(elapsed)


def floor_sample(bench: Bench, town: BenchTown, s: StartStop) -> None:
    elapsed, done = run_timed([bench.python, "-c", "pass"], town.root, bench.lab.env)
    if done.returncode == 0:
        s.floor.samples.append(elapsed)


def start_phase(bench: Bench, rigs: int) -> None:
    town, s = bench.town(rigs), StartStop(rigs)
    cycles: list[Callable[[Bench, BenchTown, StartStop], None]] = [
        bare_cycle,
        lambda b, t, ss: managed_cycle(b, t, ss, "gt-dolt"),
        lambda b, t, ss: managed_cycle(b, t, ss, "invoke"),
    ]
    warm = StartStop(rigs)
    for cycle in cycles:  # not counted: page cache, first spawn, bytecode
        cycle(bench, town, warm)
    for rep in range(bench.reps):
        for cycle in cycles if rep % 2 == 0 else cycles[::-1]:
            cycle(bench, town, s)
        floor_sample(bench, town, s)
    label = rigs_label(rigs)
    for side in SIDES:
        first = side == "gt-dolt"
        bench.figures.append(
            Figure(
                f"start, {label}: {side} start → answers vs bare readiness",
                s.start[side],
                s.bare_start,
                START_TARGETS.get(rigs) if first else None,
                note=f"first queries failed: {s.first_query_failures}" if first else "",
                extra_failures=s.first_query_failures if first else 0,
            )
        )
    for side in SIDES:
        bench.figures.append(
            Figure(
                f"stop, {label}: {side} stop − bare SIGTERM→exit, vs python -c pass",
                s.stop[side],
                s.floor,
                STOP_TARGET if rigs == 1 and side == "gt-dolt" else None,
                less=s.bare_exit,
            )
        )
    bench.extras.setdefault("first_query_failures", {})[rigs] = s.first_query_failures


# --- scale: list and status with many rigs ---------------------------------------------------


def scale_phase(bench: Bench, running: bool) -> None:
    towns = [bench.town(rigs) for rigs in SCALE_RIGS]
    state = "running" if running else "stopped"
    groups = [
        hyper.Group(
            town.root,
            town_env(bench.lab, town),
            {f"{cmd}, {rigs_label(town.rigs)}, {state}": bench.argv("gt-dolt", cmd) for cmd in ("status", "list")},
            {} if running else {f"status, {rigs_label(town.rigs)}, {state}": 3},
        )
        for town in towns
    ]
    dolt_alone: dict[int, Series] = {}
    with serving(bench, *towns) if running else nullcontext():
        s = hyper.measure(groups, bench.reps)
        if running:
            dolt_alone = {town.rigs: sql_floor(town, bench.reps) for town in towns}
    for cmd in ("status", "list"):
        one = s[f"{cmd}, 1 rig, {state}"]
        for rigs in SCALE_RIGS[1:]:
            bench.figures.append(
                Figure(
                    f"{cmd}, {rigs_label(rigs)} vs 1 rig (server {state})",
                    s[f"{cmd}, {rigs_label(rigs)}, {state}"],
                    one,
                    SCALE_TARGET if rigs == SCALE_RIGS[-1] else None,
                )
            )
    for rigs in SCALE_RIGS[1:] if running else ():
        bench.figures.append(
            Figure(f"Dolt alone: connect + SHOW DATABASES, {rigs_label(rigs)} vs 1", dolt_alone[rigs], dolt_alone[1])
        )


def sql_floor(town: BenchTown, reps: int) -> Series:
    """What any client pays the server for `list`: one connect and SHOW DATABASES (Dolt's own cost,
    which grows with the number of databases)."""
    series = Series(f"connect + SHOW DATABASES, {rigs_label(town.rigs)}")
    for _ in range(reps):
        began = time.perf_counter()
        if show_databases(town.port):
            series.samples.append(time.perf_counter() - began)
        else:
            series.failures += 1
    return series


# --- operations: what the drain costs, how fast watch brings a server back ------------------------


def stop_with_and_without_drain(bench: Bench, town: BenchTown, with_idle_client: bool) -> Figure:
    """`stop` (which drains) against `stop --force`, alternating.  With an idle client, a connection that
    has been idle longer than the drain's quiet rule is open during the stop: a pool's spare
    connection, nobody working, so the drain must not wait for it."""
    who = f"a client idle {QUIET_SECONDS + 1}s connected" if with_idle_client else "nobody connected"
    drained, forced = Series(f"gt-dolt stop (drain, {who})"), Series(f"gt-dolt stop --force ({who})")
    for rep in range(bench.reps):
        for force in (False, True) if rep % 2 == 0 else (True, False):
            bench.run(town, bench.argv("gt-dolt", "start"))
            with idle_client(town.port) if with_idle_client else nullcontext():
                if with_idle_client:
                    time.sleep(QUIET_SECONDS + 1)  # the condition measured, not a synchronisation
                elapsed, done = bench.run(town, bench.argv("gt-dolt", "stop", *(["--force"] if force else [])))
            series = forced if force else drained
            if done.returncode == 0:
                series.samples.append(elapsed)
            else:
                series.failures += 1
    return Figure(f"stop, 1 rig, {who}: with its drain vs --force", drained, forced)


def operations_phase(bench: Bench) -> None:
    """stop with its drain (nobody connected) against stop --force; SIGKILL → answering again under
    `gt-dolt watch`, against bare Dolt's readiness."""
    town = bench.town(1)
    bench.figures.append(stop_with_and_without_drain(bench, town, with_idle_client=False))
    bench.figures.append(stop_with_and_without_drain(bench, town, with_idle_client=True))
    bare, recovered = Series("bare readiness"), Series("SIGKILL → answering again under watch")
    for _ in range(RECOVERIES):
        bare_cycle(bench, town, StartStop(1, bare_start=bare))
    env = town_env(bench.lab, town)
    for _ in range(RECOVERIES):  # a new watcher each time: its backoff applies from the second restart on
        bench.run(town, bench.argv("gt-dolt", "start"))
        watcher = subprocess.Popen(
            bench.argv("gt-dolt", "watch", "--interval", WATCH_INTERVAL),
            cwd=town.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            # its first line says it is watching; never wait for it without a deadline
            if watcher.stdout is None or not select.select([watcher.stdout], [], [], 30)[0]:
                recovered.failures += 1
                continue
            watcher.stdout.readline()
            os.kill(int((town.root / "daemon" / "dolt.pid").read_text()), signal.SIGKILL)
            began = time.perf_counter()
            while not query_once(town.port, timeout=0.2) and time.perf_counter() - began < 60:
                time.sleep(0.01)
            if time.perf_counter() - began < 60:
                recovered.samples.append(time.perf_counter() - began)
            else:
                recovered.failures += 1
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)
            bench.run(town, bench.argv("gt-dolt", "stop"))
    bench.figures.append(
        Figure(f"watch --interval {WATCH_INTERVAL}: SIGKILL → answering again vs bare readiness", recovered, bare)
    )


# --- what each command imports ---------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)$")
IMPORT_RUNS = 5


def importtime(bench: Bench, town: BenchTown, args: list[str]) -> list[tuple[str, int, int, int]]:
    """(module, depth, self µs, cumulative µs) of every import `python -X importtime` reports."""
    done = subprocess.run(
        [bench.python, "-X", "importtime", *args],
        cwd=town.root,
        env=town_env(bench.lab, town),
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            rows.append((match.group(4), len(match.group(3)) // 2, int(match.group(1)), int(match.group(2))))
    return rows


def import_row(rows: list[tuple[str, int, int, int]], startup: set[str]) -> dict[str, Any]:
    """What the command imports beyond the interpreter's own start-up."""
    extra = [row for row in rows if row[0] not in startup]
    top = [(name, cum) for name, depth, _, cum in extra if depth == 0]
    return {
        "ms": round(sum(self_us for _, _, self_us, _ in extra) / 1000, 1),
        "modules": len(extra),
        "packages": sorted({name.split(".")[0] for name, *_ in extra}),
        "heaviest": [(name, round(cum / 1000, 1)) for name, cum in sorted(top, key=lambda kv: -kv[1])[:8]],
    }


def imports_phase(bench: Bench) -> dict[str, Any]:
    """`python -X importtime` of each command path (the median of IMPORT_RUNS runs)."""
    town = bench.town(1)
    startup = {row[0] for row in importtime(bench, town, ["-c", "pass"])}
    gt = ["-m", "gastown_tasks"]
    invoke = ["-m", "invoke", "-r", str(bench.project)]
    paths: list[tuple[str, list[str], bool]] = [
        ("gt-dolt --version", [*gt, "--version"], False),
        ("gt-dolt status (stopped)", [*gt, "status"], False),
        ("gt-dolt list (stopped)", [*gt, "list"], False),
        ("gt-dolt start", [*gt, "start"], False),
        ("gt-dolt status", [*gt, "status"], True),
        ("gt-dolt list", [*gt, "list"], True),
        ("gt-dolt stop", [*gt, "stop"], True),
        ("invoke dolt.status", [*invoke, "dolt.status"], True),
    ]
    found: dict[str, Any] = {}
    for label, args, running in paths:
        runs = []
        for _ in range(IMPORT_RUNS):
            with serving(bench, town) if running and label != "gt-dolt stop" else nullcontext():
                if label == "gt-dolt stop":
                    bench.run(town, bench.argv("gt-dolt", "start"))
                runs.append(import_row(importtime(bench, town, args), startup))
                if label == "gt-dolt start":
                    bench.run(town, bench.argv("gt-dolt", "stop"))
        middle = statistics.median_low(row["ms"] for row in runs)
        found[label] = next(row for row in runs if row["ms"] == middle)
    return found


# --- driver ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=21, help=f"samples of each side (min {MIN_REPS})")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument(
        "--gt-dolt",
        type=Path,
        default=Path(sys.executable).parent / "gt-dolt",
        help="the gt-dolt to measure; its environment's python and invoke are used beside it",
    )
    args = parser.parse_args(argv)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    if args.reps < MIN_REPS or not set(args.only) <= set(PHASES):
        parser.error(f"--reps must be ≥ {MIN_REPS}; --only takes {', '.join(PHASES)}")
    return args


def run_phases(bench: Bench, phases: list[str]) -> dict[str, Any]:
    imports: dict[str, Any] = {}
    for _ in range(2):  # bytecode and page cache, so no figure's first sample pays for them
        bench.run(bench.town(1), bench.argv("gt-dolt", "--version"))
    if "commands" in phases:
        log("command lines against python -c pass (hyperfine)")
        commands_phase(bench)
    if "start" in phases:
        for rigs in START_RIGS:
            log(f"start/stop against bare Dolt, {rigs_label(rigs)}")
            start_phase(bench, rigs)
    if "scale" in phases:
        for running in (True, False):
            log(f"scale: status and list with {SCALE_RIGS} rigs, server {'running' if running else 'stopped'}")
            scale_phase(bench, running)
    if "operations" in phases:
        log("operations: the drain's cost, watch's recovery")
        operations_phase(bench)
    if "imports" in phases:
        log("python -X importtime of each command path")
        imports = imports_phase(bench)
    return imports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hyper.hyperfine()  # fail before building towns when it is missing
    began = time.monotonic()
    with lab_session(find_dolt()) as lab:
        bench = Bench(lab, args.gt_dolt.resolve(), make_project(lab), args.reps)
        meta = {
            "gastown_tasks": __version__,
            "dolt_version": dolt_version(lab),
            "dolt_pin": DOLT_VERSION,
            "gt_dolt": str(bench.gt),
            "reps": args.reps,
            "phases": args.only,
            "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        try:
            imports = run_phases(bench, args.only)
        except KeyboardInterrupt:
            log("interrupted: partial results below, no JSON written")
            print(report.table(bench.figures))
            return 130
    meta["seconds"] = round(time.monotonic() - began, 1)
    print(report.table(bench.figures))
    if imports:
        print("\n" + report.import_table(imports))
    for text in bench.notes:
        print(f"note: {text}")
    data = report.payload(bench.figures, meta, imports, bench.notes)
    data["first_query_failures"] = bench.extras.get("first_query_failures", {})
    path = report.write_json(data)
    print(f"\n{meta['dolt_version']}, {args.reps} reps, {meta['seconds']:.0f} s; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
