"""How a command is declared: its name, options, help, reach and handler, next to the handler.

Each handler module declares its commands with `@command(...)` on the function (its docstring is
the help); gastown_tasks.commands collects them into the one table.  Both entry points are derived
from that table: the Invoke collection (`invoke dolt.<name>`, `pre=[dolt.start]`) builds its tasks
from it, and `gt-dolt` parses plain command lines with it without importing Invoke.  Plain data
only (NamedTuples: see gastown_tasks.ops on why).

Every option that takes a value is text on both paths (validated by the settings, never cast by
Invoke), so a bad value is the same one-line error, exit 2, whichever way it came in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

LOCAL = "local"  # this machine's server and town files only: refused (exit 5) when the server is remote
ANYWHERE = "anywhere"  # works when the town's server is on another host (dolt.host)
REACHES = (LOCAL, ANYWHERE)

PORT = "TCP port (default: dolt.port, else the town's, as gt reads it: docs/gastown.md)"


class Option(NamedTuple):
    name: str  # the Python parameter name, e.g. "json_", "dry_run"
    help: str
    flag: bool = False  # a switch (default False); otherwise it takes a value (default None)
    positional: bool = False  # required, given without a flag

    @property
    def dashed(self) -> str:
        """The name on the command line, as Invoke derives it: underscores to dashes, edges stripped."""
        return self.name.strip("_").replace("_", "-")

    @property
    def long(self) -> str:
        return f"-{self.dashed}" if len(self.dashed) == 1 else f"--{self.dashed}"


class Command(NamedTuple):
    name: str
    handler: Callable[..., int]  # called as handler(env, **options)
    doc: str  # the handler's docstring: first line the summary `--list` shows; then details, examples
    options: tuple[Option, ...]
    reach: str  # LOCAL or ANYWHERE (the runner refuses a LOCAL command when the server is remote)
    default: bool = False

    @property
    def function(self) -> str:
        return self.handler.__name__

    def short_flags(self) -> dict[str, str]:
        """Option name -> its short flag, chosen exactly as Invoke chooses them (first free letter)."""
        taken = {option.name for option in self.options}
        shorts: dict[str, str] = {}
        for option in self.options:
            names = {option.dashed}
            for char in option.dashed:
                if not (char == option.dashed or char in taken):
                    shorts[option.name] = char
                    names.add(char)
                    break
            taken |= names
        return shorts


def command(name: str, *, reach: str, options: tuple[Option, ...] = (), default: bool = False) -> Callable[[F], F]:
    """Declare the decorated handler as command `name`; its docstring is the command's help."""
    if reach not in REACHES:
        raise ValueError(f"command {name}: reach must be one of {REACHES}, not {reach!r}")

    def declare(handler: F) -> F:
        doc = handler.__doc__ or ""  # as written: the Invoke task cleans it (inspect is slow to import)
        handler.command = Command(name, handler, doc, options, reach, default)  # type: ignore[attr-defined]
        return handler

    return declare


def declared(*modules: Any) -> tuple[Command, ...]:
    """The commands the modules declare, in the order they are written."""
    return tuple(
        found.command
        for module in modules
        for found in vars(module).values()
        if isinstance(getattr(found, "command", None), Command) and found.command.handler is found
    )
