"""One command surface, two entry points: the Invoke tasks and the fast parser agree with it exactly."""

from __future__ import annotations

import inspect

import pytest
from invoke import Argument

from gastown_tasks.cli.argv import flag_table, parse
from gastown_tasks.commands import BY_NAME, COMMANDS, DEFAULT, Command
from gastown_tasks.tasks import dolt


def _arguments(command: Command) -> dict[str, Argument]:
    return {arg.names[0]: arg for arg in dolt.TASKS[command.name].get_arguments()}


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_each_invoke_task_has_exactly_the_surfaces_name_help_options_and_short_flags(command: Command) -> None:
    task = dolt.TASKS[command.name]
    assert dolt.ns[command.name] is task and task.name == command.name
    assert inspect.cleandoc(command.doc).splitlines()[0] == (task.__doc__ or "").splitlines()[0]
    arguments = _arguments(command)
    assert set(arguments) == {option.dashed for option in command.options}
    shorts = command.short_flags()
    for option in command.options:
        arg = arguments[option.dashed]
        assert arg.help == option.help
        assert arg.positional == option.positional
        assert (arg.kind is bool) == option.flag and (option.flag or arg.kind is str)
        expected = {option.dashed} | ({shorts[option.name]} if option.name in shorts else set())
        assert set(arg.names) == expected, f"{command.name}: {arg.names} vs {expected}"
    assert task.is_default == command.default


def test_the_default_command_is_status_and_bare_gt_dolt_runs_it() -> None:
    assert DEFAULT.name == "status" and parse([]) is not None and parse([]).command is DEFAULT


PARSED = [
    (["status"], "status", {}),
    (["status", "--json"], "status", {"json_": True}),
    (["status", "-j", "-p", "4000"], "status", {"json_": True, "port": "4000"}),
    (["status", "--port=4000"], "status", {"port": "4000"}),
    (["status", "-p=4000"], "status", {"port": "4000"}),
    (["status", "-p4000"], "status", {"port": "4000"}),
    (["status", "--port", "-5"], "status", {"port": "-5"}),
    (["logs", "-n", "5", "-f"], "logs", {"n": "5", "follow": True}),
    (["init-rig", "gastown"], "init-rig", {"name": "gastown"}),
    (["init-rig", "--name", "gastown"], "init-rig", {"name": "gastown"}),
    (["init-rig", "status"], "init-rig", {"name": "status"}),
    (["migrate", "--dry-run"], "migrate", {"dry_run": True}),
    (["sql", "-q", "SELECT 1", "--rig", "hq"], "sql", {"query": "SELECT 1", "rig": "hq"}),
]


@pytest.mark.parametrize(("argv", "name", "options"), PARSED, ids=[" ".join(a) for a, _, _ in PARSED])
def test_plain_command_lines_parse_without_invoke(argv: list[str], name: str, options: dict[str, object]) -> None:
    parsed = parse(argv)
    assert parsed is not None and parsed.command.name == name and parsed.options == options


HANDED_OVER = [
    ["--help"],
    ["status", "--help"],
    ["-l"],
    ["--list"],
    ["status", "list"],
    ["nosuch"],
    ["status", "--bogus"],
    ["status", "--json", "--json"],
    ["status", "--json=yes"],
    ["status", "--port"],
    ["status", "--port", "--json"],
    ["init-rig"],
    ["init-rig", "a", "b"],
    ["status", "--", "x"],
    ["-d", "status"],
    ["status", "-jp", "4000"],
]


@pytest.mark.parametrize("argv", HANDED_OVER, ids=[" ".join(a) for a in HANDED_OVER])
def test_anything_else_is_handed_to_invoke(argv: list[str]) -> None:
    assert parse(argv) is None


def test_every_flag_of_every_command_is_known_to_the_fast_parser() -> None:
    for command in COMMANDS:
        table = flag_table(command)
        for arg in _arguments(command).values():
            for name in arg.names:
                flag = f"-{name}" if len(name) == 1 else f"--{name}"
                assert table[flag].dashed == arg.names[0], (command.name, flag)


def test_the_module_attributes_for_pre_tasks_are_the_collections_tasks() -> None:
    for attribute, name in (("start", "start"), ("stop", "stop"), ("status", "status"), ("init_rig", "init-rig")):
        assert getattr(dolt, attribute) is dolt.ns[name] is dolt.TASKS[name]
    assert set(BY_NAME) == set(dolt.ns.task_names)
