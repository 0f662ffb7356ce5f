"""The settings table is the one declaration: DoltSettings, the derived maps, the errors and the
README's table all follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gastown_tasks.ops import settings
from gastown_tasks.ops.errors import ConfigError
from gastown_tasks.ops.settings import DEFAULTS, FLAGS, GT_ENV, SETTINGS, DoltSettings, Setting, resolve_settings

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| key | default | variables | flag | |"


def readme_rows() -> dict[str, list[str]]:
    """The README's settings table: each dolt setting's cells, by key (onboard.* is not ours)."""
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2
    rows: dict[str, list[str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        key = cells[0].strip("`")
        if "." not in key:
            rows[key] = cells
    return rows


def shown_default(setting: Setting) -> str:
    value = setting.default
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, int | float):
        text = f"{value:g}"
    else:
        text = "{}" if isinstance(value, dict) else str(value)
    return setting.shown.format(f"`{text}`")


def expected_row(setting: Setting) -> list[str]:
    variables = ", ".join(f"`{var}`" for var in (setting.invoke_env, setting.env) if var)
    flag = f"`{setting.flag}`" if setting.flag else ""
    return [f"`{setting.name}`", shown_default(setting), variables, flag, setting.doc]


def test_readme_lists_exactly_the_settings_of_the_table_in_its_order() -> None:
    assert list(readme_rows()) == [setting.name for setting in SETTINGS]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_readme_row_matches_the_table(setting: Setting) -> None:
    row = readme_rows().get(setting.name)
    expected = "| " + " | ".join(expected_row(setting)) + " |"
    assert row == expected_row(setting), f"README.md's row for {setting.name} should read:\n{expected}"


def test_dolt_settings_fields_are_the_table_in_its_order() -> None:
    assert DoltSettings._fields == tuple(setting.name for setting in SETTINGS)


def test_derived_maps_follow_the_table() -> None:
    assert DEFAULTS["log_max_mb"] == 100.0 and list(DEFAULTS) == list(DoltSettings._fields)
    assert GT_ENV["GT_DOLT_LOGLEVEL"] == "log_level" and "GT_DOLT_LOG_MAX_MB" in GT_ENV
    assert FLAGS == {
        "port": "--port",
        "start_timeout": "--timeout",
        "stop_timeout": "--timeout",
        "watch_interval": "--interval",
    }


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_default_parses_to_itself(setting: Setting) -> None:
    assert setting.parse(setting.default) == setting.default


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.rule], ids=lambda s: s.name)
def test_every_refusal_names_the_settings_rule_and_where_to_set_it(setting: Setting) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings({setting.name: ["not", "a", "value"]}, environ={})
    message = str(caught.value)
    assert message.startswith(
        f"invalid {setting.name} ['not', 'a', 'value'] (from dolt.{setting.name} in the Invoke config)"
    )
    assert f": {setting.rule}; set dolt.{setting.name} (invoke.yaml)" in message
    assert all(place in message for place in (setting.invoke_env, setting.env, setting.flag))


@pytest.mark.parametrize(
    ("key", "unit"),
    [
        ("start_timeout", "seconds"),
        ("stop_timeout", "seconds"),
        ("drain_timeout", "seconds"),
        ("watch_interval", "seconds"),
        ("log_max_mb", "megabytes"),
        ("backup_max_age_hours", "hours"),
    ],
)
@pytest.mark.parametrize("value", ["-1", "1e10", "nan", "soon"])
def test_a_bad_number_is_refused_in_its_own_unit(key: str, unit: str, value: Any) -> None:
    with pytest.raises(
        ConfigError, match=rf"invalid {key} .*: it must be a number of {unit}, [0-9.]+ or more \(at most"
    ):
        resolve_settings({key: value}, environ={})


def test_a_watch_interval_under_a_tenth_of_a_second_is_refused() -> None:
    with pytest.raises(ConfigError, match="0.1 or more"):
        resolve_settings(environ={}, watch_interval="0.05")
    assert resolve_settings(environ={}, watch_interval="0.1").watch_interval == 0.1


def test_where_to_set_names_only_places_that_exist() -> None:
    assert settings.where_to_set("server") == "dolt.server (invoke.yaml)"
    assert settings.where_to_set("drain_timeout") == "dolt.drain_timeout (invoke.yaml) or INVOKE_DOLT_DRAIN_TIMEOUT"
    assert settings.where_to_set("port") == "dolt.port (invoke.yaml), INVOKE_DOLT_PORT, GT_DOLT_PORT or --port"
