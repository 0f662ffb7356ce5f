"""Parsing a plain gt-dolt command line without Invoke, exactly as Invoke would parse it.

Only the forms whose meaning is certain are accepted: one command, then its options as
`--name value`, `--name=value`, `-n value`, `-n=value`, `-nVALUE`, `--switch`, `-s`, and its
positional argument.  Anything else (help, core flags, several commands, `--`, a repeated or
unknown option, a missing value) returns None, and the caller hands the whole line to Invoke,
which then answers it (and words any error) itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..commands import BY_NAME, DEFAULT
from ..commands.surface import Command, Option


class Parsed(NamedTuple):
    command: Command
    options: dict[str, Any]


def flag_table(command: Command) -> dict[str, Option]:
    shorts = command.short_flags()
    table: dict[str, Option] = {}
    for option in command.options:
        table[option.long] = option
        if option.name in shorts:
            table["-" + shorts[option.name]] = option
    return table


SUBCOMMANDS = {"remote": ("add", "list", "remove")}  # `gt-dolt remote add` is the command remote-add


def joined(args: list[str]) -> list[str]:
    """`remote add ...` as `remote-add ...` (Invoke knows one name per task: invoke dolt.remote-add)."""
    if len(args) >= 2 and args[1] in SUBCOMMANDS.get(args[0], ()):
        return [f"{args[0]}-{args[1]}", *args[2:]]
    return args


def help_first(args: list[str]) -> list[str]:
    """`gt-dolt COMMAND ... --help` as `--help COMMAND`: Invoke would take a `--help` after
    init-rig as the rig's name, and show no help."""
    command = BY_NAME.get(args[0]) if args else None
    if command is None:
        return args
    asks = {"--help"} if "-h" in flag_table(command) else {"--help", "-h"}
    return ["--help", command.name] if asks.intersection(args[1:]) else args


def parse(args: list[str]) -> Parsed | None:
    if not args:
        return Parsed(DEFAULT, {})
    command = BY_NAME.get(args[0])
    if command is None:
        return None
    flags = flag_table(command)
    values: dict[str, Any] = {}
    rest = args[1:]
    i = 0
    while i < len(rest):
        token = rest[i]
        if token == "--":
            return None
        if token.startswith("-") and token != "-":
            name, eq, value = token.partition("=")
            if not eq and not token.startswith("--") and len(token) > 2:
                name, value, eq = token[:2], token[2:], "="
            option = flags.get(name)
            if option is None or option.name in values:
                return None
            if option.flag:
                if eq:
                    return None
                values[option.name] = True
            elif eq:
                values[option.name] = value
            else:
                if i + 1 >= len(rest) or rest[i + 1] in flags or rest[i + 1].startswith("--"):
                    return None
                values[option.name] = rest[i + 1]
                i += 1
        else:
            pending = [o for o in command.options if o.positional and o.name not in values]
            if not pending:
                return None
            values[pending[0].name] = token
        i += 1
    if any(o.positional and o.name not in values for o in command.options):
        return None
    return Parsed(command, values)
