"""The command handlers, and the one command table they declare (see surface.py).

Each module holds handlers only, each declared next to its function; the table is their
declarations in this order.  Handlers import what they need when they run, so the table costs
next to nothing to load.
"""

from __future__ import annotations

from . import beads, cluster, console, doctor, imposters, lifecycle, operations, recovery, repair, rigs, sharing
from .surface import ANYWHERE, Command, declared

COMMANDS: tuple[Command, ...] = declared(
    lifecycle, console, rigs, doctor, beads, operations, recovery, repair, sharing, imposters, cluster
)
BY_NAME = {command.name: command for command in COMMANDS}
DEFAULT = next(command for command in COMMANDS if command.default)
WORK_REMOTELY = [command.name for command in COMMANDS if command.reach == ANYWHERE]

__all__ = ["BY_NAME", "COMMANDS", "DEFAULT", "WORK_REMOTELY", "Command"]
