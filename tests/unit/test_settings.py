"""Settings: defaults, precedence and validation (pure Python; no server needed)."""

from __future__ import annotations

import pytest

from gastown_tasks.ops.errors import ConfigError
from gastown_tasks.ops.settings import DEFAULTS, resolve_settings


def test_defaults_are_gas_towns_loopback_3307_root() -> None:
    s = resolve_settings(environ={})
    assert (s.host, s.port, s.user, s.password) == ("127.0.0.1", 3307, "root", "")
    assert s.stop_timeout == 30 and s.start_timeout == DEFAULTS["start_timeout"]


def test_config_beats_defaults_gt_env_beats_config_flags_beat_env() -> None:
    config = {"port": 4001, "user": "cfg"}
    assert resolve_settings(config, environ={}).port == 4001
    env = {"GT_DOLT_PORT": "4002", "GT_DOLT_USER": "env"}
    assert resolve_settings(config, environ=env).port == 4002
    assert resolve_settings(config, environ=env).user == "env"
    assert resolve_settings(config, environ=env, port="4003").port == 4003


def test_empty_gt_env_values_count_as_unset() -> None:
    assert resolve_settings(environ={"GT_DOLT_HOST": "", "GT_DOLT_PORT": " "}).host == "127.0.0.1"


def test_flags_that_are_none_do_not_override() -> None:
    assert resolve_settings({"port": 4001}, environ={}, port=None).port == 4001


@pytest.mark.parametrize("port", ["abc", 0, "0", 70000, -5, "-5", "", "3307.5", True])
def test_invalid_ports_are_refused_with_the_setting_to_fix(port: object) -> None:
    with pytest.raises(ConfigError, match="invalid port .*1 to 65535.*GT_DOLT_PORT"):
        resolve_settings(environ={}, port=port)


@pytest.mark.parametrize("key", ["start_timeout", "stop_timeout"])
@pytest.mark.parametrize("value", [-1, "-0.5", "soon", float("nan")])
def test_negative_or_non_numeric_timeouts_are_refused(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"invalid {key}"):
        resolve_settings(environ={}, **{key: value})


def test_log_level_accepts_warn_as_warning_and_refuses_nonsense() -> None:
    assert resolve_settings(environ={"GT_DOLT_LOGLEVEL": "WARN"}).log_level == "warning"
    with pytest.raises(ConfigError, match="log_level"):
        resolve_settings(environ={}, log_level="loud")


def test_connection_string_hides_the_password() -> None:
    s = resolve_settings(environ={}, password="secret", port=4000)
    assert s.connection_string == "mysql://root:***@127.0.0.1:4000/"
