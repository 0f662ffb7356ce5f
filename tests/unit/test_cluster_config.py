"""dolt.cluster: parsing, the configurations that can never work, and the fence written before a
start (pure Python on a temporary folder; no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gastown_tasks.ops.cluster.cluster import cluster_of
from gastown_tasks.ops.cluster.fencing import (
    EPOCH_KEY,
    FENCE_KEY,
    ROLE_KEY,
    fence_before_start,
    fenced_epoch,
    is_fenced,
)
from gastown_tasks.ops.errors import ClusterError, ConfigError
from gastown_tasks.ops.host.addresses import is_local_host
from gastown_tasks.ops.settings import resolve_settings
from gastown_tasks.ops.town import Town

SQL, API = 3307, 50051
# Documentation addresses (RFC 5737) that are not this machine's (one CI machine had 192.0.2.2 on eth0)
ELSEWHERE = [ip for ip in (f"198.51.100.{i}" for i in range(1, 255)) if not is_local_host(ip)][:2]


def peer(name: str = "b", host: str = ELSEWHERE[0], api: int = API, sql: int | None = SQL) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "host": host, "remotesapi_port": api}
    if sql is not None:
        entry["sql_port"] = sql
    return entry


def cluster(*peers: dict[str, Any], api: int = API, **more: Any) -> Any:
    tree = {"role": "primary", "epoch": 1, "remotesapi_port": api, "standbys": list(peers), **more}
    return cluster_of(resolve_settings({"port": SQL, "cluster": tree}, environ={}))


def test_a_two_host_cluster_parses_with_safe_fencing_defaults() -> None:
    config = cluster(peer())
    assert config.peers[0].where == f"{ELSEWHERE[0]}:3307"
    assert config.fence_timeout == 60 and config.take_writes_alone is False


@pytest.mark.parametrize(
    ("host", "api", "sql"),
    [
        ("127.0.0.1", 4000, SQL),  # our SQL port on loopback
        ("localhost", API, 4001),  # our remotesapi port under a name
        ("127.0.0.2", 4000, SQL),  # any loopback address
        ("::1", API, 4001),
        ("::ffff:127.0.0.1", 4000, SQL),  # IPv4 loopback written as IPv6
        ("0.0.0.0", 4000, SQL),  # the wildcard is every local address
        ("[::1]", 4000, SQL),
        ("localhost.", 4000, SQL),  # the root label
    ],
)
def test_a_standby_that_is_this_server_under_any_local_spelling_is_refused(host: str, api: int, sql: int) -> None:
    with pytest.raises(ConfigError, match=r"standbys\[0\].*is this server itself.*list only the other servers"):
        cluster(peer(host=host, api=api, sql=sql))


def test_a_standby_on_this_machine_with_ports_of_its_own_is_another_server() -> None:
    assert cluster(peer(host="127.0.0.1", api=4000, sql=4001)).peers[0].host == "127.0.0.1"


def test_duplicate_standby_names_in_any_case_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"standbys\[1\].name 'B'.*standbys\[0\] has that name already"):
        cluster(peer(), peer(name="B", host=ELSEWHERE[1]))


@pytest.mark.parametrize(("first", "second"), [("127.0.0.1", "localhost"), (ELSEWHERE[0], ELSEWHERE[0])])
def test_two_standby_entries_for_one_server_are_refused(first: str, second: str) -> None:
    with pytest.raises(ConfigError, match=r"standbys\[1\].*standbys\[0\].*is the same server"):
        cluster(peer(host=first, api=4000, sql=4001), peer(name="c", host=second, api=4002, sql=4001))


def test_the_remotesapi_port_may_not_be_the_sql_port() -> None:
    with pytest.raises(ConfigError, match="remotesapi_port 3307.*also this server's SQL port"):
        cluster(peer(), api=SQL)
    with pytest.raises(ConfigError, match=r"standbys\[0\].*remotesapi_port and sql_port are both 4000"):
        cluster(peer(api=4000, sql=4000))


@pytest.mark.parametrize(
    ("more", "rule"),
    [
        ({"fence_timeout": -1}, "seconds from 0 to 3600"),
        ({"fence_timeout": "nan"}, "seconds from 0 to 3600"),
        ({"fence_timeout": True}, "seconds from 0 to 3600"),
        ({"take_writes_alone": "maybe"}, "true or false"),
        ({"epoch": "³"}, "whole number from 1 to"),
        ({"epoch": "9" * 5000}, "whole number from 1 to"),
        ({"ack_writes_timeout": 1.5}, "whole number from 0 to 60"),
    ],
)
def test_bad_fencing_settings_are_refused(more: dict[str, Any], rule: str) -> None:
    with pytest.raises(ConfigError, match=rule):
        cluster(peer(), **more)


def test_a_standby_without_its_sql_port_is_refused_naming_why_fencing_needs_it() -> None:
    with pytest.raises(ConfigError, match=r"standbys\[0\].sql_port.*takes writes only once every peer"):
        cluster(peer(sql=None))


# --- the fence written before a start ---------------------------------------------------------------


def root_config(town: Town) -> Path:
    path = town.dolt_root / ".dolt" / "config_global.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def fenced_after(tmp_path: Path, persisted: dict[str, str] | None, role: str = "primary") -> dict[str, str]:
    town = Town(tmp_path)
    path = root_config(town)
    if persisted is not None:
        path.write_text(json.dumps({"user.name": "me", **persisted}))
    config = cluster(peer())._replace(role=role)
    fence_before_start(town, config)
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_first_start_as_primary_is_a_fenced_standby_at_the_bootstrap_epoch(tmp_path: Path) -> None:
    written = fenced_after(tmp_path, {})
    assert (written[ROLE_KEY], written[EPOCH_KEY], written[FENCE_KEY]) == ("standby", "1", "1")


def test_a_persisted_primary_is_fenced_at_its_own_epoch_and_other_keys_are_kept(tmp_path: Path) -> None:
    written = fenced_after(tmp_path, {ROLE_KEY: "primary", EPOCH_KEY: "7"}, role="standby")
    assert written == {"user.name": "me", ROLE_KEY: "standby", EPOCH_KEY: "7", FENCE_KEY: "7"}


def test_a_persisted_standby_is_left_alone_and_a_stale_fence_is_dropped(tmp_path: Path) -> None:
    standby = {ROLE_KEY: "standby", EPOCH_KEY: "4"}
    assert fenced_after(tmp_path, standby, role="primary") == {"user.name": "me", **standby}
    assert FENCE_KEY not in fenced_after(tmp_path, {**standby, FENCE_KEY: "3"})  # taken over at epoch 4
    assert fenced_after(tmp_path, {**standby, FENCE_KEY: "4"})[FENCE_KEY] == "4"  # still waiting for its proof


def test_a_persisted_broken_state_is_left_for_the_repair(tmp_path: Path) -> None:
    broken = {ROLE_KEY: "detected_broken_config", EPOCH_KEY: "2"}
    assert fenced_after(tmp_path, {**broken, FENCE_KEY: "2"}) == {"user.name": "me", **broken}


def test_a_configured_standby_on_its_first_start_writes_nothing(tmp_path: Path) -> None:
    assert fenced_after(tmp_path, None, role="standby") == {}


def test_the_fence_counts_only_for_a_standby_at_its_own_epoch(tmp_path: Path) -> None:
    town = Town(tmp_path)
    root_config(town).write_text(json.dumps({ROLE_KEY: "standby", EPOCH_KEY: "3", FENCE_KEY: "3"}))
    assert fenced_epoch(town) == 3
    assert is_fenced(town, {"role": "standby", "epoch": 3})
    assert not is_fenced(town, {"role": "standby", "epoch": 4}) and not is_fenced(town, {"role": "primary", "epoch": 3})


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"sqlserver.cluster.dolt_cluster_role_epoch": "x"}'])
def test_an_unreadable_role_file_is_refused_not_guessed(tmp_path: Path, text: str) -> None:
    town = Town(tmp_path)
    root_config(town).write_text(text)
    with pytest.raises(ClusterError, match="config_global.json"):
        fence_before_start(town, cluster(peer()))
