"""Command-line timings by hyperfine, run in rounds so that no command always goes first.

hyperfine runs each command's repetitions back to back; on a shared, noisy machine that lets a
slow minute land on one command only.  So each round is one short hyperfine run over every command
(a warm-up each, then a few timed runs), and the order rotates from round to round; the samples of
all rounds are pooled.  Exit codes come from hyperfine's JSON, so a run that did not do what it
should is counted as a failure, not as a time.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple, TypeVar

from timing import Series

PER_ROUND = 3  # timed runs of each command in one round
T = TypeVar("T")


def hyperfine() -> str:
    found = shutil.which("hyperfine")
    if found is None:
        raise SystemExit("bench needs hyperfine: apt-get install hyperfine (or cargo install hyperfine)")
    return found


def rotation(items: list[T], round_no: int) -> list[T]:
    shift = round_no % len(items)
    order = items[shift:] + items[:shift]
    return order[::-1] if round_no % 2 else order


class Group(NamedTuple):
    """Commands run from one folder with one environment (e.g. one town)."""

    cwd: Path
    env: dict[str, str]
    commands: dict[str, list[str]]  # label -> argv
    expect: dict[str, int] = {}  # noqa: RUF012 - read only; label -> exit code (default 0)


def measure(groups: list[Group], reps: int) -> dict[str, Series]:
    """`reps` timed runs of every command of every group, in rotating rounds; a run whose exit code
    is not the expected one is a failure, not a time."""
    series = {label: Series(label) for group in groups for label in group.commands}
    rounds = -(-reps // PER_ROUND)
    with tempfile.TemporaryDirectory(prefix="gt-bench-hyperfine-") as scratch:
        out = Path(scratch) / "round.json"
        for round_no in range(rounds):
            for group in rotation(groups, round_no):
                argv = [hyperfine(), "-N", "--warmup", "1", "--runs", str(PER_ROUND), "-i", "--style", "none"]
                argv += ["--export-json", str(out)]
                for label in rotation(list(group.commands), round_no):
                    argv += ["-n", label, shlex.join(group.commands[label])]
                subprocess.run(argv, cwd=group.cwd, env=group.env, check=True, capture_output=True, timeout=1800)
                for result in json.loads(out.read_text())["results"]:
                    s = series[result["command"]]
                    wanted = group.expect.get(result["command"], 0)
                    for seconds, code in zip(result["times"], result["exit_codes"], strict=True):
                        if code == wanted:
                            s.samples.append(seconds)
                        else:
                            s.failures += 1
    return series
