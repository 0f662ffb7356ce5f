"""Each setting's rule, as a user meets it: what a value parses to, and the one line a bad value gives
(what was wrong, where it came from, every place to set it).  Only `resolve_settings`, the parse
helpers and the settings' own properties are used, so these hold whatever shape the parser takes."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from gastown_tasks.ops.errors import ConfigError
from gastown_tasks.ops.settings import gt_env_overrides, normalize_host, parse_port, resolve_settings


def _refused(**flags: object) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(environ={}, **flags)
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_a_bad_port_from_gas_towns_variable_names_it_and_every_place_to_set_the_port() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(environ={"GT_DOLT_PORT": "abc"})
    assert str(caught.value) == (
        "invalid port 'abc' (from GT_DOLT_PORT): it must be a whole number from 1 to 65535, such as 3307; "
        "set dolt.port (invoke.yaml), INVOKE_DOLT_PORT, GT_DOLT_PORT or --port"
    )


def test_a_bad_value_names_the_config_the_invoke_variable_or_the_flag_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"\(from dolt.log_keep in the Invoke config\)"):
        resolve_settings({"log_keep": 0}, environ={})
    with pytest.raises(ConfigError, match=r"\(from INVOKE_DOLT_LOG_KEEP\)"):
        resolve_settings({"log_keep": "0"}, environ={"INVOKE_DOLT_LOG_KEEP": "0"})
    assert "(from --log-keep)" in _refused(log_keep="0")
    assert "(from --timeout)" in _refused(start_timeout="x")
    assert "(from --drain-timeout)" in _refused(drain_timeout="x")


def test_a_setting_without_a_variable_or_flag_of_gas_towns_lists_only_ours() -> None:
    assert _refused(log_keep="0").endswith("; set dolt.log_keep (invoke.yaml) or INVOKE_DOLT_LOG_KEEP")
    assert _refused(watch_interval="x").endswith(
        "; set dolt.watch_interval (invoke.yaml), INVOKE_DOLT_WATCH_INTERVAL or watch --interval"
    )


def test_a_long_bad_value_is_shown_cut_to_sixty_characters() -> None:
    said = _refused(log_level="x" * 100)
    assert f"invalid log_level {'x' * 100!r}"[:75] + "..." in said and "x" * 61 not in said
    assert f"invalid log_level {'y' * 58!r} (from" in _refused(log_level="y" * 58)  # 60 characters: whole
    assert f"invalid log_level {'y' * 59!r}"[:75] + "... (from" in _refused(log_level="y" * 59)


@pytest.mark.parametrize(("value", "port"), [(0, 0), ("0", 0), ("", 0), (" 9100 ", 9100), (65535, 65535)])
def test_the_metrics_port_is_zero_for_off_or_a_port(value: object, port: int) -> None:
    assert resolve_settings(environ={}, metrics_port=value).metrics_port == port


@pytest.mark.parametrize("value", [True, False, 65536, "-1", "x"])
def test_a_bad_metrics_port_is_refused_saying_zero_or_a_port(value: object) -> None:
    assert (
        f"invalid metrics_port {value!r} (from --metrics-port): it must be 0 (off) or a port from 1 to 65535;"
        in _refused(metrics_port=value)
    )


@pytest.mark.parametrize(
    ("value", "host"),
    [("localhost", "127.0.0.1"), ("LOCALHOST.", "127.0.0.1"), ("[::1]", "::1"), ("ip6-localhost", "::1"),
     (" 10.0.0.5 ", "10.0.0.5"), ("db_1.internal", "db_1.internal")],
)  # fmt: skip
def test_hosts_are_addresses_or_names_with_loopback_names_made_addresses(value: str, host: str) -> None:
    assert resolve_settings(environ={}, host=value).host == host


@pytest.mark.parametrize(
    "value", ["bad host", "[::1", "::1]", "-lead.example", "a..b", "x" * 64, ".".join(["a" * 50] * 6), ""]
)
def test_a_host_the_resolver_cannot_take_is_refused_with_an_example(value: str) -> None:
    assert f"invalid host {value!r}"[:70] in _refused(host=value)  # cut to 57 characters and "..."
    assert "(from --host): give an address such as 127.0.0.1;" in _refused(host=value)


@pytest.mark.parametrize("value", [True, 1.5])
def test_a_host_that_is_not_text_is_refused_as_yaml_would_give_it(value: object) -> None:
    """`host: yes` in YAML is True, `host: 1.5` a float: neither is the name "True" or "1.5"."""
    with pytest.raises(ConfigError, match=rf"invalid host {value!r} \(from dolt.host in the Invoke config\)"):
        resolve_settings({"host": value}, environ={})
    assert normalize_host(None) is None


def test_host_name_labels_may_be_63_characters_and_names_253() -> None:
    assert normalize_host("x" * 63) == "x" * 63
    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert normalize_host(name) == name and normalize_host(name + "b") is None


SWITCHES = [
    ("true", True),
    ("False", False),
    ("yes", True),
    ("ON", True),
    ("1", True),
    (True, True),
    ("no", False),
    ("off", False),
    ("0", False),
]


@pytest.mark.parametrize(("value", "flag"), [*SWITCHES, ("", False), (False, False)])
def test_switches_take_the_usual_spellings_of_true_and_false(value: object, flag: bool) -> None:
    settings = resolve_settings(environ={}, allow_passwordless_bind=value, allow_outside_paths=value)
    assert settings.allow_passwordless_bind is flag and settings.allow_outside_paths is flag


def test_a_switch_that_is_neither_true_nor_false_is_refused() -> None:
    assert "invalid allow_outside_paths 'maybe' (from --allow-outside-paths): it must be true or false;" in _refused(
        allow_outside_paths="maybe"
    )


def test_a_negative_gt_wait_timeout_means_leave_dolts_as_gt_reads_it() -> None:
    assert resolve_settings(environ={"GT_DOLT_WAIT_TIMEOUT": "-1"}).wait_timeout == 0
    assert resolve_settings(environ={"GT_DOLT_WAIT_TIMEOUT": " 28800 "}).wait_timeout == 28800
    assert resolve_settings(environ={}, wait_timeout=999_999_999).wait_timeout == 999_999_999
    assert "invalid wait_timeout '-x' (from --wait-timeout)" in _refused(wait_timeout="-x")
    assert ": it must be a whole number of seconds from 0 to 999999999;" in _refused(wait_timeout="1.5")
    assert "invalid wait_timeout 1000000000" in _refused(wait_timeout=1_000_000_000)


@pytest.mark.parametrize(("value", "ok"), [(1, True), ("1000", True), (0, False), (1001, False), (True, False)])
def test_log_keep_is_a_whole_number_from_1_to_1000(value: object, ok: bool) -> None:
    if ok:
        assert resolve_settings(environ={}, log_keep=value).log_keep == int(value)  # type: ignore[call-overload]
    else:
        assert ": it must be a whole number from 1 to 1000;" in _refused(log_keep=value)


def test_timeouts_run_from_zero_to_thirty_days_and_a_bool_is_no_number() -> None:
    assert resolve_settings(environ={}, stop_timeout=0).stop_timeout == 0.0
    assert resolve_settings(environ={}, start_timeout="2592000").start_timeout == 2592000.0
    assert ": it must be a number of seconds, 0 or more (at most 2592000);" in _refused(start_timeout=2592000.5)
    assert "invalid drain_timeout True" in _refused(drain_timeout=True)
    assert "invalid stop_timeout '1e400'" in _refused(stop_timeout="1e400")


def test_sizes_and_ages_are_plain_numbers_with_their_own_bounds() -> None:
    assert resolve_settings(environ={}, log_max_mb=1024 * 1024).log_max_mb == 1048576.0
    assert ": it must be a number of megabytes, 0 or more (at most 1048576);" in _refused(log_max_mb=1024 * 1024 + 1)
    assert resolve_settings(environ={}, backup_max_age_hours=0).backup_max_age_hours == 0.0
    assert resolve_settings(environ={}, backup_max_age_hours=87600).backup_max_age_hours == 87600.0
    assert "(at most 87600)" in _refused(backup_max_age_hours=87601)


def test_the_watch_interval_is_at_least_a_tenth_of_a_second() -> None:
    assert resolve_settings(environ={}, watch_interval="0.1").watch_interval == 0.1
    assert "invalid watch_interval 'x' (from --interval): it must be a number of seconds" in _refused(
        watch_interval="x"
    )
    assert (
        "invalid watch_interval 0.09 (from --interval): it must be a number of seconds, 0.1 or more (at most 2592000);"
        in _refused(watch_interval=0.09)
    )


def test_server_and_cluster_trees_are_mappings_copied_plain_or_refused() -> None:
    nested = {"listener": MappingProxyType({"max_connections": 10}), 7: "x"}
    settings = resolve_settings({"server": nested, "cluster": ""}, environ={})
    assert settings.server == {"listener": {"max_connections": 10}, "7": "x"} and settings.cluster == {}
    assert type(settings.server["listener"]) is dict
    with pytest.raises(
        ConfigError,
        match=r"invalid server \['a'\] \(from dolt.server in the Invoke config\): dolt.server must be a mapping",
    ):
        resolve_settings({"server": ["a"]}, environ={})


def test_a_bad_log_level_lists_the_levels_and_where_it_came_from() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(environ={"GT_DOLT_LOGLEVEL": "loud"})
    assert str(caught.value).startswith(
        "invalid log_level 'loud' (from GT_DOLT_LOGLEVEL): use one of trace, debug, info, warning, error, fatal; "
    )


def test_text_settings_are_kept_as_text() -> None:
    settings = resolve_settings({"user": "dolt", "binary": "/opt/dolt"}, environ={"GT_DOLT_PASSWORD": "p w"})
    assert (settings.user, settings.binary, settings.password) == ("dolt", "/opt/dolt", "p w")


def test_unknown_config_keys_and_none_values_are_ignored() -> None:
    settings = resolve_settings({"colour": "red", "port": None, "user": "u"}, environ={})
    assert settings.port == 3307 and settings.user == "u" and not hasattr(settings, "colour")


def test_gt_env_overrides_reads_gas_towns_variables_and_skips_blank_ones() -> None:
    env = {"GT_DOLT_PORT": "4000", "GT_DOLT_HOST": "  ", "GT_DOLT_LOG_MAX_MB": "5", "INVOKE_DOLT_PORT": "1"}
    assert gt_env_overrides(env) == {"port": "4000", "log_max_mb": "5"}


def test_gt_env_overrides_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_DOLT_USER", "from-env")
    assert gt_env_overrides()["user"] == "from-env"


@pytest.mark.parametrize(("value", "port"), [(" 3307 ", 3307), (1, 1), ("000001", None), ("\u00b3", None), (1.0, None)])
def test_parse_port_takes_up_to_five_ascii_digits(value: object, port: int | None) -> None:
    assert parse_port(value) == port


def test_an_ipv6_host_is_bracketed_in_addresses_and_urls() -> None:
    settings = resolve_settings(environ={}, host="::1", port=4000)
    assert settings.url_host == "[::1]" and settings.address == "[::1]:4000"
    assert settings.connection_string == "mysql://root@[::1]:4000/"
    assert resolve_settings(environ={}).address == "127.0.0.1:3307"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.2", True), ("::1", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False),
     ("::ffff:10.0.0.1", False), ("10.0.0.1", False), ("db.internal", False)],
)  # fmt: skip
def test_loopback_is_decided_by_address_including_ipv4_mapped(host: str, loopback: bool) -> None:
    assert resolve_settings(environ={}, host=host).is_loopback is loopback


def test_the_lock_wait_covers_another_commands_start_stop_and_drain_and_some_slack() -> None:
    settings = resolve_settings(environ={}, start_timeout=1, stop_timeout=2, drain_timeout=3)
    assert settings.lock_wait == 21.0


def test_overrides_are_validated_and_none_leaves_a_value() -> None:
    settings = resolve_settings(environ={}, port=4000)
    assert settings.with_overrides(port=None, user="x") == settings._replace(user="x")
    assert settings.with_overrides(port="4001").port == 4001
    with pytest.raises(ConfigError, match=r"invalid port 0 \(from dolt.port\)"):
        settings.with_overrides(port=0)
