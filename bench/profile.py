"""Where gt-dolt spends its time: cProfile of each command in a temporary town (run before optimising).

    .venv/bin/python bench/profile.py [--rigs N] [--top K] [command ...]

Each command runs as `python -m cProfile -m gastown_tasks …` from inside the town, so interpreter
start-up and imports are included, exactly as a user pays them.  Profiles are saved in
bench/results/profiles/ (git-ignored) for snakeviz or pstats; the top entries are printed.
"""

from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
from pathlib import Path

from lab import BenchTown, Lab, lab_session, make_town, town_env
from report import RESULTS

from gastown_tasks.ops.binary import find_dolt

DEFAULT_COMMANDS = ("start", "status", "list", "stop", "status")
# Our code, and the libraries it calls whose cost we can change; hides runpy/importlib frames.
DEFAULT_FILTER = r"gastown_tasks|psutil/|pymysql/|filelock/|ssl\.py|invoke/__init__|time\.sleep|poll"


def profile_command(lab: Lab, town: BenchTown, command: str, out: Path) -> str:
    """Run one gt-dolt command under cProfile; return the first line it printed.

    cProfile swallows SystemExit, so the exit code is not the command's own.
    """
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "gastown_tasks", command],
        cwd=town.root,
        env=town_env(lab, town),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0][:120] if lines else "(no output)"


def top(path: Path, count: int, pattern: str) -> str:
    """The `count` heaviest functions by cumulative time whose location matches `pattern`."""
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.sort_stats("cumulative").print_stats(pattern, count)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commands", nargs="*", default=list(DEFAULT_COMMANDS))
    parser.add_argument("--rigs", type=int, default=1)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--filter", default=DEFAULT_FILTER, help="regex on file:line(function)")
    args = parser.parse_args(argv)
    folder = RESULTS / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    with lab_session(find_dolt()) as lab:
        town = make_town(lab, f"town-{args.rigs}", args.rigs)
        try:
            for i, command in enumerate(args.commands):
                out = folder / f"{i:02d}-{command}-{args.rigs}rigs.prof"
                first = profile_command(lab, town, command, out)
                print(f"=== gt-dolt {command} ({args.rigs} rigs): {first}")
                print(top(out, args.top, args.filter))
        finally:
            subprocess.run(
                [sys.executable, "-m", "gastown_tasks", "stop"],
                cwd=town.root,
                env=town_env(lab, town),
                capture_output=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
