"""Finding the town: mayor/town.json walking up, worktrees, the mayor/ fallback, GT_TOWN_ROOT."""

from __future__ import annotations

from pathlib import Path

import pytest

from gastown_tasks.ops.errors import NotInTown
from gastown_tasks.ops.town import find_town_root


def _town(root: Path) -> Path:
    (root / "mayor").mkdir(parents=True)
    (root / "mayor" / "town.json").write_text("{}")
    return root.resolve()


def test_walks_up_from_a_subfolder_to_mayor_town_json(tmp_path: Path) -> None:
    root = _town(tmp_path / "gt")
    deep = root / "gastown" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_town_root(deep, environ={}) == root


def test_inside_polecats_or_crew_worktrees_the_outermost_town_wins(tmp_path: Path) -> None:
    root = _town(tmp_path / "gt")
    for kind in ("polecats", "crew"):
        nested = _town(root / "gastown" / kind / "nux")
        (nested / "src").mkdir()
        assert find_town_root(nested / "src", environ={}) == root


def test_outside_worktrees_the_nearest_town_wins(tmp_path: Path) -> None:
    _town(tmp_path / "outer")
    inner = _town(tmp_path / "outer" / "inner")
    assert find_town_root(inner, environ={}) == inner


def test_a_bare_mayor_folder_counts_when_no_town_json_exists(tmp_path: Path) -> None:
    (tmp_path / "gt" / "mayor").mkdir(parents=True)
    (tmp_path / "gt" / "rig").mkdir()
    assert find_town_root(tmp_path / "gt" / "rig", environ={}) == (tmp_path / "gt").resolve()


def test_gt_town_root_is_the_fallback(tmp_path: Path) -> None:
    root = _town(tmp_path / "gt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_town_root(elsewhere, environ={"GT_TOWN_ROOT": str(root)}) == root


def test_a_walked_up_town_beats_gt_town_root(tmp_path: Path) -> None:
    root = _town(tmp_path / "gt")
    other = _town(tmp_path / "other")
    assert find_town_root(root, environ={"GT_TOWN_ROOT": str(other)}) == root


def test_configured_town_root_beats_discovery(tmp_path: Path) -> None:
    root = _town(tmp_path / "gt")
    other = _town(tmp_path / "other")
    assert find_town_root(root, configured=str(other), environ={}) == other


def test_not_in_a_town_says_so_with_exit_code_4(tmp_path: Path) -> None:
    with pytest.raises(NotInTown, match="not in a Gas Town workspace.*GT_TOWN_ROOT") as err:
        find_town_root(tmp_path, environ={})
    assert err.value.exit_code == 4


def test_gt_town_root_that_is_not_a_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(NotInTown, match="GT_TOWN_ROOT"):
        find_town_root(tmp_path, environ={"GT_TOWN_ROOT": str(tmp_path / "missing")})
