"""The managed server config, project trust, Invoke configuration sources, error classes."""

from __future__ import annotations

import os
from pathlib import Path

import pymysql
import pytest
from invoke.util import yaml

from gastown_tasks.cli.trust import find_project, invoke_sources
from gastown_tasks.ops.errors import ConfigError
from gastown_tasks.ops.server import serverconfig
from gastown_tasks.ops.server.drain import QUIET_SECONDS, Client
from gastown_tasks.ops.settings import resolve_settings, settings_from_mapping
from gastown_tasks.ops.sql import sqlclient
from gastown_tasks.ops.town import Town

TOWN = Town(Path("/towns/t"))


def _config(**settings: object) -> dict[str, object]:
    return serverconfig.build(resolve_settings(settings, environ={}), TOWN)


def test_the_defaults_are_a_towns_and_read_back_from_yaml_as_written() -> None:
    tree = _config()
    assert tree["listener"] == {
        "host": "127.0.0.1",
        "port": 3307,
        "max_connections": 1000,
        "read_timeout_millis": 30_000,
        "write_timeout_millis": 300_000,
    }
    assert tree["behavior"]["dolt_transaction_commit"] is False and tree["data_dir"] == "/towns/t/.dolt-data"
    assert tree["system_variables"] == {"secure_file_priv": "/towns/t/daemon/sql-files"}
    assert yaml.safe_load(serverconfig.to_yaml(tree)) == tree


def test_wait_timeout_is_the_listeners_read_timeout_the_only_idle_reclaim_the_pinned_dolt_honours() -> None:
    assert _config(wait_timeout=2)["listener"]["read_timeout_millis"] == 2000
    zero = _config(wait_timeout=0)
    assert zero["listener"]["read_timeout_millis"] == 300_000  # gt's
    assert "wait_timeout" not in zero["system_variables"] and "wait_timeout" not in _config()["system_variables"]


def test_overrides_are_deep_merged_and_win_over_the_idle_reclaim() -> None:
    server = {"listener": {"max_connections": 50, "read_timeout_millis": 60_000}, "behavior": {"read_only": True}}
    tree = _config(server=server, wait_timeout=0)
    assert tree["listener"]["max_connections"] == 50 and tree["listener"]["port"] == 3307
    assert tree["listener"]["read_timeout_millis"] == 60_000 and tree["behavior"]["read_only"] is True


@pytest.mark.parametrize(
    ("server", "said"),
    [
        ({"listener": {"port": 1}}, "dolt.server.listener.port cannot be overridden"),
        ({"data_dir": "/elsewhere"}, "dolt.server.data_dir cannot be overridden"),
        ({"listener": {"bogus": 1}}, "dolt.server.listener.bogus is not a key the pinned Dolt knows"),
        ({"behavior": {"auto_gc_behavior": {"enabled": True}}}, "auto_gc_behavior.enabled is not a key"),
        ({"listener": {"read_timeout_millis": 23456}}, "whole seconds"),
        ({"listener": {"max_connections": "many"}}, "must be int"),
        ({"listener": 5}, "must be a mapping"),
    ],
)
def test_an_override_dolt_would_refuse_is_refused_first_naming_the_key(server: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said.replace(".", r"\.")):
        _config(server=server)


def test_metrics_listen_on_loopback_unless_binding_beyond_it_is_allowed() -> None:
    assert _config(metrics_port=9100)["metrics"] == {"host": "127.0.0.1", "port": 9100}
    assert _config(metrics_port=9100, host="0.0.0.0", password="x")["metrics"]["host"] == "127.0.0.1"
    open_bind = _config(metrics_port=9100, host="0.0.0.0", allow_passwordless_bind=True)
    assert open_bind["metrics"]["host"] == "0.0.0.0"


def test_the_yaml_writer_quotes_what_yaml_would_misread() -> None:
    tree = {"a": "yes", "b": "1.0", "c": ["x: y", {"name": "n", "url": "http://h/{database}"}], "d": {}, "e": None}
    assert yaml.safe_load(serverconfig.to_yaml(tree)) == tree


def test_a_tasks_py_is_trusted_only_when_ours_and_not_writable_by_others(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project(deep).root == tmp_path
    for mode in (0o646, 0o664):
        os.chmod(tmp_path / "tasks.py", mode)
        refused = find_project(deep)
        assert refused.root is None and "others can write it" in refused.warnings[0]
    os.chmod(tmp_path / "tasks.py", 0o644)
    (tmp_path / "helpers.py").write_text("")
    os.chmod(tmp_path / "helpers.py", 0o666)
    assert "helpers.py: others can write it" in find_project(deep).warnings[0]
    os.chmod(tmp_path / "helpers.py", 0o644)
    os.chmod(tmp_path, 0o757)
    assert "others can write in" in find_project(deep).warnings[0]
    os.chmod(tmp_path, 0o755)


@pytest.mark.needs_root("gives the tasks.py to another user (chown)")
def test_a_tasks_py_another_user_owns_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("")
    os.chown(tmp_path / "tasks.py", 4242, 4242)
    refused = find_project(tmp_path)
    assert refused.root is None and "belongs to uid 4242" in refused.warnings[0]


def test_the_nearest_tasks_py_of_any_kind_ends_the_search_as_in_invoke(tmp_path: Path) -> None:
    """A FIFO named tasks.py is what Invoke would try to load: refused, and no project above it."""
    (tmp_path / "tasks.py").write_text("")
    inner = tmp_path / "inner"
    inner.mkdir()
    os.mkfifo(inner / "tasks.py")
    found = find_project(inner)
    assert found.root is None and "not a regular file" in found.warnings[0]
    (inner / "tasks.py").unlink()
    (inner / "tasks.py").symlink_to(tmp_path / "tasks.py")
    assert "symlink" in find_project(inner).warnings[0]


def test_invoke_configuration_sources_are_found_without_invoke(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    nothing = find_project(tmp_path)
    assert invoke_sources(nothing, environ={"GT_DOLT_PORT": "1"}, home=home) == []
    assert invoke_sources(nothing, environ={"INVOKE_DOLT_PORT": "1"}, home=home) == ["$INVOKE_DOLT_PORT"]
    (home / ".invoke.yaml").write_text("")
    assert invoke_sources(nothing, environ={}, home=home) == [str(home / ".invoke.yaml")]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (pymysql.err.OperationalError(1045, "Access denied for user 'root'"), "denied"),
        (pymysql.err.OperationalError(2003, "Can't connect to MySQL server (Connection refused)"), "refused"),
        (pymysql.err.OperationalError(2003, "Can't connect to MySQL server (timed out)"), "unreachable"),
        (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), "timeout"),
        (pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"), "error"),
    ],
)
def test_sql_errors_are_classified_once(exc: Exception, kind: str) -> None:
    assert sqlclient.classify(exc) == kind


@pytest.mark.parametrize("said", sqlclient.CUT_BY_RECLAIM)
def test_a_statement_cut_by_the_idle_reclaim_says_which_setting_lets_it_run_longer(said: str) -> None:
    cut = sqlclient.failure(settings_from_mapping({}), pymysql.err.OperationalError(1105, said), "back up rig hq")
    assert str(cut).startswith(f"cannot back up rig hq: the server cut the statement ({said})")
    assert "raise dolt.wait_timeout, restart the server" in str(cut)
    other = sqlclient.failure(
        settings_from_mapping({}), pymysql.err.OperationalError(1105, "table not found: x"), "read"
    )
    assert str(other) == "cannot read: the server said: table not found: x"


def test_a_client_is_busy_while_it_runs_a_query_or_was_active_lately() -> None:
    def client(command: str, seconds: int) -> Client:
        return Client(1, "root", "localhost:1", None, command, seconds, None)

    assert client("Query", 100).busy and client("Sleep", QUIET_SECONDS - 1).busy
    assert not client("Sleep", QUIET_SECONDS).busy
