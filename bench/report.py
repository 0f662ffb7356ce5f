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
        "| figure | ours ms | baseline ms | overhead ms | ratio | target | result | n | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for fig in figures:
        target = f"≤ {fig.target:g}×" if fig.target is not None else ""
        n = f"{len(fig.ours.samples)}/{len(fig.base.samples)}"
        lines.append(
            f"| {fig.name} | {_fmt(fig.ours.median)} | {_fmt(fig.base.median)} | "
            f"{_fmt(fig.ours.median - fig.base.median)} | {fig.ratio:.2f}× | {target} | {fig.verdict} | "
            f"{n} | {fig.failures} |"
        )
    return "\n".join(lines)


def import_summary(imports: dict[str, Any]) -> str:
    if not imports:
        return ""
    heavy = ", ".join(f"{name} {cost:.1f}" for name, cost in imports["by_package_ms"][:8])
    return (
        f"import gastown_tasks.cli: {imports['cli_ms']:.1f} ms median "
        f"(gastown_tasks.ops alone: {imports['ops_ms']:.1f} ms); "
        f"self time by top-level package, ms: {heavy}"
    )


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
        "import_time": imports,
        "notes": notes,
        "unit_note": "medians of wall times in ms; ratio = ours / baseline, both from this run",
    }
