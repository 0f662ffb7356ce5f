"""gt-dolt's hand-over to Invoke: when a command line needs Invoke's parsing or configuration.

Inside a project with a tasks.py that adds our collection, `gt-dolt <command>` runs exactly as
`invoke <collection>.<command>` does there (the same collection, invoke.yaml and code-set
configuration).  Otherwise gt-dolt is Invoke's bundled-namespace program for the dolt collection,
reading the invoke.yaml beside the nearest tasks.py, as `invoke` would.  Each of Invoke's phases
runs inside the package's one boundary (gastown_tasks/exits.py): Ctrl-C anywhere is "interrupted"
(130) and Invoke's own configuration errors are one line (exit 2).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Program
from invoke.exceptions import Exit

from .._version import __version__
from ..commands import BY_NAME, DEFAULT
from ..exits import exit_codes_said, interrupted
from ..ops.errors import ConfigError
from ..tasks import dolt
from ..tasks.config import config_error_message, guard_phase, json_asked


class Unloadable(Exception):
    """The project's tasks.py failed for a reason of its own (not its configuration, not Ctrl-C)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class GtDoltProgram(Program):
    gastown_guarded = True  # add_dolt() leaves this program's phases alone: they are guarded here

    def __init__(self, project: Path | None, run_command: bool) -> None:
        # A project is loaded as Invoke loads it only to run a command; help and lists are ours.
        self.project = project
        self.in_project = project is not None and run_command
        super().__init__(
            name="gt-dolt",
            binary="gt-dolt",
            binary_names=["gt-dolt"],
            version=__version__,
            namespace=None if self.in_project else dolt.ns,
        )
        self.prefix = ""

    def _guard(self, step: Callable[[], None]) -> None:
        guard_phase(step, json_asked())

    def _load_collection(self) -> None:
        try:
            super().parse_collection()
        except Exception as exc:
            if isinstance(exc, ConfigError | Exit) or interrupted(exc) or config_error_message(exc) is not None:
                raise
            raise Unloadable(exc) from exc

    def create_config(self) -> None:
        self._guard(super().create_config)

    def parse_core(self, argv: Any) -> None:
        self._guard(lambda: super(GtDoltProgram, self).parse_core(argv))

    def parse_collection(self) -> None:
        try:
            self._guard(self._load_collection)
        except Unloadable as failed:  # a tasks.py that does not import: say so, run ours without it
            exc = failed.error
            print(
                f"gt-dolt: cannot load the tasks.py in {self.project}: {type(exc).__name__}: {exc}; "
                "running gt-dolt's own commands without its configuration",
                file=sys.stderr,
            )
            self.in_project, self.collection = False, dolt.ns
            return
        if self.in_project:
            # Invoke deep-copies collections and tasks as it loads them, but not their functions.
            mine = dolt.TASKS[DEFAULT.name].body
            ours = [
                name
                for name, coll in self.collection.collections.items()
                if getattr(coll.tasks.get(DEFAULT.name), "body", None) is mine
            ]
            if ours:
                self.prefix = f"{ours[0]}."
            else:  # this project does not use our collection: run ours with its config
                self.collection = dolt.ns
        elif self.project is not None:
            self.config.set_project_location(str(self.project))
            self._guard(self.config.load_project)

    def parse_tasks(self) -> None:
        if self.prefix:
            unparsed = list(self.core.unparsed)
            if not unparsed:
                unparsed = [DEFAULT.name]
            if unparsed[0] in BY_NAME:
                unparsed[0] = self.prefix + unparsed[0]
            self.core.unparsed = unparsed
        self._guard(super().parse_tasks)

    def parse_cleanup(self) -> None:
        self._guard(super().parse_cleanup)

    def update_config(self, merge: bool = True) -> None:
        self._guard(lambda: super(GtDoltProgram, self).update_config(merge))

    def execute(self) -> None:
        self._guard(super().execute)

    def print_help(self) -> None:
        super().print_help()
        print(HELP_EPILOGUE.strip("\n"))
        print()
        print(
            textwrap.fill(f"Exit codes: {exit_codes_said()}", width=80, subsequent_indent="  ", break_on_hyphens=False)
        )
        print()


HELP_EPILOGUE = """
What gt-dolt reads (exactly what `invoke dolt.<subcommand>` sees there):
  defaults < Invoke config (/etc/invoke.yaml, ~/.invoke.yaml, the invoke.yaml
  beside the nearest tasks.py, what that tasks.py configures in code,
  INVOKE_DOLT_*) < GT_DOLT_* < flags.  Inside a project whose tasks.py adds the
  dolt collection, `gt-dolt X` runs as `invoke dolt.X` there.  A tasks.py that
  is not yours (or root's), or that others can write, is ignored with a
  warning; an invoke.yaml without a tasks.py beside it is ignored, as by invoke.
"""


def run_invoke(args: list[str], project: Path | None, run_command: bool) -> int:
    program = GtDoltProgram(project, run_command)
    try:
        program.run(["gt-dolt", *args])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
