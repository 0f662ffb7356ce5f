"""Manage the town's Dolt SQL server (one dolt sql-server for every rig database).

The `dolt` collection: `invoke dolt.<task>` and `gt-dolt <task>` run these same tasks, built
from the one command table (gastown_tasks.commands), and a town's tasks.py can chain
them (`@task(pre=[dolt.start])`).
"""

from __future__ import annotations

import inspect
from typing import Any

from invoke import Collection, Context, Task
from invoke.exceptions import Exit

from ..commands import BY_NAME, COMMANDS, Command, runner
from .config import env_of, root_defaults


def task_for(command: Command) -> Task[Any]:
    """An Invoke task whose arguments, help and defaults are the surface's, calling its handler."""

    def body(c: Context, **options: Any) -> None:
        code = runner.run(command, env_of(c), options)
        if code:
            raise Exit(code=code)

    params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for option in command.options:
        default = inspect.Parameter.empty if option.positional else (False if option.flag else None)
        params.append(inspect.Parameter(option.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    body.__name__ = body.__qualname__ = command.function
    body.__doc__ = inspect.cleandoc(command.doc)
    body.__module__ = __name__
    return Task(body, name=command.name, help={o.name: o.help for o in command.options}, default=command.default)


TASKS = {command.name: task_for(command) for command in COMMANDS}

# Module attributes, for `pre=[dolt.start]` and `from gastown_tasks.dolt import status`.
install = TASKS["install"]
start = TASKS["start"]
stop = TASKS["stop"]
restart = TASKS["restart"]
status = TASKS["status"]
logs = TASKS["logs"]
sql = TASKS["sql"]
list_ = TASKS["list"]
init_rig = TASKS["init-rig"]
migrate = TASKS["migrate"]
doctor = TASKS["doctor"]

ns = Collection(*TASKS.values())
ns.configure(root_defaults())

__all__ = ["BY_NAME", "TASKS", "ns", *(name for name in dir() if isinstance(globals()[name], Task))]
