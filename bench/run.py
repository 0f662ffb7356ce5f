"""Benchmarks: gt-dolt's overhead over bare Dolt, and how its cost grows with rigs .

    .venv/bin/python bench/run.py [--reps N] [--only import,status,start,scale] [--gt-dolt PATH]

(--gt-dolt measures another gt-dolt, e.g. a wrapper around a patched copy of the package.)

Every figure is a ratio of medians of two things measured alternately in this one run (A-B, then
B-A), because the machines here are shared and noisy; absolute times are shown only beside them.
Towns, rigs and servers are temporary (free ports, never 3307) and are removed at the end, also on
Ctrl-C.  Results: a Markdown table on stdout and JSON in bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import report
from lab import (
    BenchTown,
    Lab,
    dolt_version,
    lab_session,
    make_town,
    port_open,
    query_once,
    spawn_bare,
    town_env,
    wait_answering,
    wait_port_closed,
)
from timing import Figure, Series, order, run_timed

from gastown_tasks import __version__
from gastown_tasks.ops.binary import DOLT_VERSION, find_dolt

START_RIGS = (1, 10, 50)
SCALE_RIGS = (1, 100, 1000)
START_TARGET = 1.25
STOP_TARGET = 1.5
STATUS_TARGET = 1.5
SCALE_TARGET = 2.0
MIN_REPS = 5
PHASES = ("import", "status", "start", "scale")
SERVER_TIMEOUT = "600"  # seconds gt-dolt may take to start the 1000-rig server (untimed setup)


@dataclass
class Bench:
    lab: Lab
    gt: Path
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

    def gt_run(self, town: BenchTown, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        """gt-dolt as a user runs it: from inside the town, port from GT_DOLT_PORT."""
        return run_timed([str(self.gt), *args], town.root, town_env(self.lab, town))

    def timed(self, town: BenchTown, args: tuple[str, ...], series: Series, expect: int) -> None:
        elapsed, done = self.gt_run(town, *args)
        if done.returncode == expect:
            series.samples.append(elapsed)
        else:
            series.failures += 1
            self.note(f"gt-dolt {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[:300]}")

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
            _, done = bench.gt_run(town, "start", "--timeout", SERVER_TIMEOUT)
            if done.returncode != 0:
                raise RuntimeError(f"gt-dolt start failed in {town.root}: {done.stderr.strip()}")
        yield
    finally:
        for town in towns:
            with suppress(subprocess.SubprocessError):
                bench.gt_run(town, "stop", "--timeout", "30")


# --- import time -----------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)$")


def importtime(bench: Bench, module: str) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) for every import `python -X importtime` reports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=bench.lab.root,
        env=bench.lab.env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            rows.append((match.group(4), int(match.group(1)), int(match.group(2))))
    return rows


def cumulative_ms(rows: list[tuple[str, int, int]], module: str) -> float:
    return next(cum for name, _, cum in rows if name == module) / 1000


def by_package(rows: list[tuple[str, int, int]]) -> list[tuple[str, float]]:
    """Self time summed per top-level package: which dependency the import cost comes from."""
    totals: dict[str, float] = {}
    for name, self_us, _ in rows:
        root = name.split(".")[0]
        totals[root] = totals.get(root, 0.0) + self_us / 1000
    return sorted(((k, round(v, 1)) for k, v in totals.items()), key=lambda kv: -kv[1])


def import_phase(bench: Bench) -> dict[str, Any]:
    cli, ops, runs = Series("import gastown_tasks.cli"), Series("import gastown_tasks.ops"), []
    for rep in range(bench.reps):
        for module, series in order(rep, (("gastown_tasks.cli", cli), ("gastown_tasks.ops", ops))):
            rows = importtime(bench, module)
            series.samples.append(cumulative_ms(rows, module))
            if module == "gastown_tasks.cli":
                runs.append(rows)
    median_run = min(runs, key=lambda rows: abs(cumulative_ms(rows, "gastown_tasks.cli") - cli.median))
    heaviest = sorted(median_run, key=lambda row: -row[2])[:25]
    return {
        "cli_ms": round(cli.median, 1),
        "ops_ms": round(ops.median, 1),
        "cli_samples_ms": cli.samples,
        "ops_samples_ms": ops.samples,
        "by_package_ms": by_package(median_run),
        "heaviest_cumulative_ms": [(name, round(cum / 1000, 1)) for name, _, cum in heaviest],
    }


# --- status against --version ----------------------------------------------------------------


def python_floor(bench: Bench, town: BenchTown, series: Series) -> None:
    """The same interpreter doing nothing: what any Python CLI pays before its first import."""
    elapsed, done = run_timed([sys.executable, "-c", "pass"], town.root, bench.lab.env)
    if done.returncode == 0:
        series.samples.append(elapsed)
    else:
        series.failures += 1


def status_phase(bench: Bench) -> None:
    town = bench.town(1)
    status, version = Series("gt-dolt status (running)"), Series("gt-dolt --version")
    floor = Series("python -c pass")
    with serving(bench, town):
        for rep in range(bench.reps):
            for args, series in order(rep, ((("status",), status), (("--version",), version))):
                bench.timed(town, args, series, expect=0)
            python_floor(bench, town, floor)
    bench.figures.append(Figure("status (server running) vs gt-dolt --version", status, version, STATUS_TARGET))
    bench.figures.append(Figure("gt-dolt --version vs python -c pass (imports, Invoke)", version, floor))


# --- start and stop against bare Dolt --------------------------------------------------------


@dataclass
class StartStop:
    """The series of one start/stop phase: bare Dolt against gt-dolt, same town, same port."""

    bare_start: Series = field(default_factory=lambda: Series("bare: spawn until SELECT 1 answers"))
    ours_start: Series = field(default_factory=lambda: Series("gt-dolt start"))
    first_query: Series = field(default_factory=lambda: Series("first SELECT 1 after gt-dolt start"))
    bare_closed: Series = field(default_factory=lambda: Series("bare: SIGTERM until the port is closed"))
    bare_exit: Series = field(default_factory=lambda: Series("bare: SIGTERM until the process exits"))
    ours_stop: Series = field(default_factory=lambda: Series("gt-dolt stop"))


def bare_cycle(bench: Bench, town: BenchTown, s: StartStop) -> None:
    """Bare start (the physical limit of readiness), then bare stop."""
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
        wait_port_closed(town.port)
        closed = time.perf_counter() - began
        proc.wait(timeout=60)
        exited = time.perf_counter() - began
    if answered:
        s.bare_closed.samples.append(closed)
        s.bare_exit.samples.append(exited)


def ours_cycle(bench: Bench, town: BenchTown, s: StartStop) -> None:
    """gt-dolt start, one query that must answer at once, then gt-dolt stop."""
    elapsed, done = bench.gt_run(town, "start")
    started = done.returncode == 0
    if started:
        s.ours_start.samples.append(elapsed)
        began = time.perf_counter()
        if query_once(town.port, timeout=1.0):
            s.first_query.samples.append(time.perf_counter() - began)
        else:
            s.first_query.failures += 1
    else:
        s.ours_start.failures += 1
        bench.note(f"gt-dolt start exited {done.returncode}: {done.stderr.strip()[:300]}")
    elapsed, done = bench.gt_run(town, "stop")
    if done.returncode != 0 or port_open(town.port):
        s.ours_stop.failures += 1
        bench.note(f"gt-dolt stop exited {done.returncode}; port open: {port_open(town.port)}")
    elif started:
        s.ours_stop.samples.append(elapsed)


def start_phase(bench: Bench, rigs: int) -> None:
    town, s = bench.town(rigs), StartStop()
    bare_cycle(bench, town, StartStop())  # warm-up, not counted: page cache, first spawn
    ours_cycle(bench, town, StartStop())
    for rep in range(bench.reps):
        for side in order(rep, (bare_cycle, ours_cycle)):
            side(bench, town, s)
    label = rigs_label(rigs)
    bench.figures.append(
        Figure(
            f"start, {label}: gt-dolt start vs bare readiness",
            s.ours_start,
            s.bare_start,
            START_TARGET,
            note=f"first queries failed: {s.first_query.failures}",
            extra_failures=s.first_query.failures,
        )
    )
    bench.figures.append(
        Figure(
            f"stop, {label}: gt-dolt stop vs bare SIGTERM→port closed",
            s.ours_stop,
            s.bare_closed,
            STOP_TARGET if rigs == 1 else None,
        )
    )
    bench.figures.append(Figure(f"stop, {label}: gt-dolt stop vs bare SIGTERM→process exit", s.ours_stop, s.bare_exit))
    bench.extras.setdefault("first_query", {})[rigs] = s.first_query.to_dict()


# --- scale: list and status with many rigs ---------------------------------------------------


def has_command(bench: Bench, name: str) -> bool:
    _, done = bench.gt_run(bench.town(1), name, "--help")
    return done.returncode == 0


def expected_code(command: str, running: bool) -> int:
    return 3 if command == "status" and not running else 0


def scale_phase(bench: Bench, commands: list[str], running: bool) -> None:
    towns = [bench.town(rigs) for rigs in SCALE_RIGS]
    state = "running" if running else "stopped"
    series = {
        (cmd, town.rigs): Series(f"gt-dolt {cmd}, {rigs_label(town.rigs)}, server {state}")
        for cmd in commands
        for town in towns
    }
    with serving(bench, *towns) if running else nullcontext():
        for rep in range(bench.reps):
            shift = rep % len(towns)
            for town in towns[shift:] + towns[:shift]:
                for cmd in commands if rep % 2 == 0 else commands[::-1]:
                    bench.timed(town, (cmd,), series[cmd, town.rigs], expected_code(cmd, running))
    for cmd in commands:
        for rigs in SCALE_RIGS[1:]:
            bench.figures.append(
                Figure(
                    f"{cmd}, {rigs_label(rigs)} vs 1 rig (server {state})",
                    series[cmd, rigs],
                    series[cmd, 1],
                    SCALE_TARGET if rigs == SCALE_RIGS[-1] else None,
                )
            )


def scale_phases(bench: Bench, commands: list[str]) -> None:
    for running in (True, False):
        state = "running" if running else "stopped"
        log(f"scale: {', '.join(commands)} with {SCALE_RIGS} rigs, server {state}")
        scale_phase(bench, commands, running)


# --- driver ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=21, help=f"repetitions of each side (min {MIN_REPS})")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument("--gt-dolt", type=Path, default=Path(sys.executable).parent / "gt-dolt")
    args = parser.parse_args(argv)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    if args.reps < MIN_REPS or not set(args.only) <= set(PHASES):
        parser.error(f"--reps must be ≥ {MIN_REPS}; --only takes {', '.join(PHASES)}")
    return args


def warm_up(bench: Bench) -> None:
    """Fill the bytecode cache and the page cache so no figure's first sample pays for them."""
    for _ in range(2):
        bench.gt_run(bench.town(1), "--version")
        importtime(bench, "gastown_tasks.cli")


def run_phases(bench: Bench, phases: list[str]) -> dict[str, Any]:
    imports: dict[str, Any] = {}
    warm_up(bench)
    if "import" in phases:
        log("import time")
        imports = import_phase(bench)
    if "status" in phases:
        log("status vs --version")
        status_phase(bench)
    if "start" in phases:
        for rigs in START_RIGS:
            log(f"start/stop vs bare, {rigs_label(rigs)}")
            start_phase(bench, rigs)
    if "scale" in phases:
        listed = has_command(bench, "list")
        if not listed:
            bench.note("gt-dolt list does not exist yet: its scale figures are skipped (re-checked at the end)")
        scale_phases(bench, ["status", "list"] if listed else ["status"])
        if not listed and has_command(bench, "list"):
            bench.note("gt-dolt list appeared during the run: measured it at the end")
            scale_phases(bench, ["list"])
    return imports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    with lab_session(find_dolt()) as lab:
        bench = Bench(lab, args.gt_dolt.resolve(), args.reps)
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
        print("\n" + report.import_summary(imports))
    for text in bench.notes:
        print(f"note: {text}")
    data = report.payload(bench.figures, meta, imports, bench.notes)
    data["first_query"] = bench.extras.get("first_query", {})
    path = report.write_json(data)
    print(f"\n{meta['dolt_version']}, {args.reps} reps, {meta['seconds']:.0f} s; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
