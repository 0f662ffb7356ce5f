"""Exits: one ExitCode table, one exception -> exit-code ladder, one boundary (no server needed)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from gastown_tasks import exits
from gastown_tasks.exits import Ended, ExitCode, guarded
from gastown_tasks.ops import errors
from gastown_tasks.ops.errors import ConfigError, GastownError, SqlFailure
from gastown_tasks.ops.server import server


def test_every_exit_code_the_project_uses_is_named_once() -> None:
    assert sorted({int(code) for code in ExitCode}) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 130, 141]
    assert ExitCode.STALE_PID_FILE is ExitCode.FAILED


def test_every_error_class_declares_an_exit_code() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, GastownError)]
    assert len(classes) > 10
    for cls in classes:
        assert isinstance(cls.exit_code, ExitCode), cls


def said(capsys: pytest.CaptureFixture[str], call: Any, **options: Any) -> tuple[int, str, str]:
    code = guarded(call, **options)
    out, err = capsys.readouterr()
    return code, out, err


def fail(exc: BaseException) -> Any:
    def call() -> None:
        raise exc

    return call


def test_a_package_error_is_its_message_and_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert said(capsys, fail(ConfigError("invalid port 'x'"))) == (2, "", "error: invalid port 'x'\n")
    code, out, err = said(capsys, fail(errors.RemoteServer("far away")), as_json=True)
    assert (code, out, err) == (5, '{"error": "far away", "exit_code": 5}\n', "error: far away\n")


def test_the_notes_an_error_gathered_on_its_way_up_are_said_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    exc = SqlFailure("the server did not answer", kind="refused")
    exc.add_note("the server is down: start it")
    assert said(capsys, fail(exc)) == (1, "", "error: the server did not answer\nthe server is down: start it\n")


def test_ctrl_c_even_wrapped_by_python_is_interrupted_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert said(capsys, fail(KeyboardInterrupt())) == (130, "", "interrupted\n")
    wrapped = RuntimeError("__set_name__ failed")
    wrapped.__cause__ = KeyboardInterrupt()
    assert said(capsys, fail(wrapped)) == (130, "", "interrupted\n")


def test_an_os_error_names_its_file_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    exc = PermissionError(13, "Permission denied", "/town/daemon")
    assert said(capsys, fail(exc)) == (1, "", "error: Permission denied (/town/daemon); fix that, then retry\n")


def test_a_command_that_ended_elsewhere_passes_its_code_on_silently(capsys: pytest.CaptureFixture[str]) -> None:
    assert said(capsys, fail(Ended(6))) == (6, "", "")
    assert said(capsys, lambda: ExitCode.NOT_RUNNING) == (3, "", "")
    assert said(capsys, lambda: None) == (0, "", "")


def test_what_the_ladder_does_not_know_is_raised_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError):
        guarded(lambda: 1 / 0)
    with pytest.raises(SystemExit):
        guarded(fail(SystemExit(4)))
    with pytest.raises(ConfigError):
        guarded(fail(ConfigError("said by the caller")), passes=(ConfigError,))


def test_an_explained_library_error_is_a_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    code = guarded(fail(ValueError("odd")), explain=lambda exc: f"the library said: {exc}")
    assert (code, capsys.readouterr().err) == (2, "error: the library said: odd\n")


def test_a_failed_restart_adds_that_the_server_is_down_to_the_original_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """SqlFailure takes no exit_code: re-raising `type(exc)(..., exit_code=...)` was a TypeError."""
    failure = SqlFailure("the new server did not answer", kind="refused")

    def launch(*_: object) -> None:
        raise failure

    stopped = server.StopResult(was_running=True, notes=[], pid=4242)
    monkeypatch.setattr(server, "preflight", lambda town, settings: None)
    monkeypatch.setattr(server.gtconfig, "check_start", lambda town, port: None)
    monkeypatch.setattr(server, "town_lock", lambda town, wait: __import__("contextlib").nullcontext())
    monkeypatch.setattr(server, "observe", lambda town, settings: SimpleNamespace(running=None, suspects=[]))
    monkeypatch.setattr(server, "_check_port", lambda *_: None)
    monkeypatch.setattr(server, "_stop_locked", lambda *_: stopped)
    monkeypatch.setattr(server, "launch", launch)
    settings = SimpleNamespace(start_timeout=5, stop_timeout=5, lock_wait=5, port=3307)
    with pytest.raises(SqlFailure) as raised:
        server.restart(SimpleNamespace(), settings)  # type: ignore[arg-type]
    assert raised.value is failure and failure.kind == "refused"
    assert exits.said(failure).splitlines() == [
        "the new server did not answer",
        "the server is down: it was stopped for the restart (pid 4242) and the new one did not start. "
        "Fix the cause above, then bring it back with: gt-dolt start",
    ]


def test_add_dolt_installs_no_process_wide_hook() -> None:
    from invoke import Collection

    import gastown_tasks

    before = sys.excepthook
    ns = Collection()
    gastown_tasks.add_dolt(ns)
    assert sys.excepthook is before
    assert "dolt" in ns.collections


def test_gt_dolt_ends_as_python_does_so_exit_handlers_run() -> None:
    """main() ends with sys.exit, not os._exit: what a process registered at exit still runs."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handlers ran'))\n"
        "sys.argv = ['gt-dolt', '--version']\n"
        "from gastown_tasks.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "exit handlers ran", done


def test_every_exit_code_has_a_meaning_and_the_readme_names_each() -> None:
    from pathlib import Path

    assert set(exits.MEANING) == set(ExitCode)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    said = readme[readme.index("Exit codes: 0 ok") :].split("\n\n")[0]
    for code in ExitCode:
        assert f" {int(code)} " in " ".join(said.split()), code
