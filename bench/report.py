"""The table a person reads and the JSON a later run is compared with (bench/results/, git-ignored)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from timing import Figure

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def git_commit() -> str:
    """The commit the package was measured at (read-only; the tree may hold uncommitted edits)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=RESULTS.parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(value: float) -> str:
    return f"{value * 1000:.1f}" if value == value else "-"


def table(figures: list[Figure]) -> str:
    """A Markdown table: readable in a terminal and pasteable into docs/benchmarks.md."""
    lines = [
        "| figure | measured ms | baseline ms | ratio | target | result | n | failures |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for fig in figures:
        target = f"≤ {fig.target:g}×" if fig.target is not None else ""
        n = f"{len(fig.ours.samples)}/{len(fig.base.samples)}"
        lines.append(
            f"| {fig.name} | {_fmt(fig.measured)} | {_fmt(fig.base.median)} | {fig.ratio:.2f}× | {target} | "
            f"{fig.verdict} | {n} | {fig.failures} |"
        )
    return "\n".join(lines)


def import_table(imports: dict[str, Any]) -> str:
    """What each command path imports (python -X importtime, beyond what `python -c pass` loads)."""
    if not imports:
        return ""
    lines = [
        "| command | import ms | modules | Invoke | PyMySQL | psutil | dataclasses | heaviest (cumulative ms) |",
        "| --- | ---: | ---: | --- | --- | --- | --- | --- |",
    ]
    for command, row in imports.items():
        flags = [("yes" if package in row["packages"] else "no") for package in NOTABLE]
        heavy = ", ".join(f"{name} {cost:.1f}" for name, cost in row["heaviest"][:4])
        lines.append(f"| {command} | {row['ms']:.1f} | {row['modules']} | {' | '.join(flags)} | {heavy} |")
    return "\n".join(lines)


NOTABLE = ("invoke", "pymysql", "psutil", "dataclasses")


def write_json(payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    return path


def payload(figures: list[Figure], meta: dict[str, Any], imports: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    return {
        **meta,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
        "figures": [fig.to_dict() for fig in figures],
        "imports_by_command": imports,
        "notes": notes,
        "unit_note": "medians of wall times in ms; ratio = measured / baseline, both from this run",
    }
