"""Samples, medians and ratios: the machine is shared and noisy, so only same-run ratios count."""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Series:
    """Timings of one thing, in seconds, with the runs that did not do what they should."""

    label: str
    samples: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.median, self.median
        q = statistics.quantiles(self.samples, n=4)
        return q[0], q[2]

    def to_dict(self) -> dict[str, Any]:
        p25, p75 = self.quartiles()
        return {
            "label": self.label,
            "median_ms": ms(self.median),
            "p25_ms": ms(p25),
            "p75_ms": ms(p75),
            "samples_ms": [ms(s) for s in self.samples],
            "failures": self.failures,
        }


@dataclass
class Figure:
    """Ours against a baseline measured in the same run; `target` caps the ratio.

    With `less`, the figure is an overhead: (ours - less) / base, e.g. (gt-dolt stop - bare
    SIGTERM until exit) against `python -c pass`.
    """

    name: str
    ours: Series
    base: Series
    target: float | None = None
    note: str = ""
    extra_failures: int = 0  # e.g. first queries that did not answer after gt-dolt start
    less: Series | None = None

    @property
    def measured(self) -> float:
        return self.ours.median - (self.less.median if self.less is not None else 0.0)

    @property
    def ratio(self) -> float:
        return self.measured / self.base.median if self.base.median else float("nan")

    @property
    def failures(self) -> int:
        less = self.less.failures if self.less is not None else 0
        return self.ours.failures + self.base.failures + less + self.extra_failures

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info" if not self.failures else "FAIL (failures)"
        ok = self.ratio <= self.target and not self.failures
        return "pass" if ok else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": self.ours.to_dict(),
            "baseline": self.base.to_dict(),
            "less": self.less.to_dict() if self.less is not None else None,
            "measured_ms": ms(self.measured),
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "failures": self.failures,
            "verdict": self.verdict,
            "note": self.note,
        }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run_timed(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float = 180
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one command from spawn to exit, as a user at a shell would see it."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return time.perf_counter() - start, done
