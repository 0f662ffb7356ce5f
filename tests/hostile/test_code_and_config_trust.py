"""gt-dolt never runs code or reads configuration another user could have changed.

Each planted project writes a marker file when its code runs; the marker must never appear, the
command must warn (or refuse) naming what was wrong, and nothing may hang.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture
from faultkit import assert_clean

pytestmark = pytest.mark.hostile
NOBODY = 65534
root_only = pytest.mark.needs_root("plants another user's files (chown)")


def evil_code(marker: Path) -> str:
    return (
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
    )


def run(t: TownFixture, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GT_DOLT, *args],
        cwd=cwd,
        env=t.env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def project(t: TownFixture, owner: int | None = None) -> Path:
    folder = t.root / "project"
    folder.mkdir()
    if owner is not None:
        os.chown(folder, owner, owner)
    return folder


@pytest.mark.parametrize(
    "kind", ["group-writable", "world-writable-neighbour", "symlink", pytest.param("in-others-folder", marks=root_only)]
)
def test_a_tasks_py_others_could_change_is_not_run(rigged_town: TownFixture, tmp_path: Path, kind: str) -> None:
    t = rigged_town
    marker = tmp_path / "ran"
    folder = project(t)
    tasks = folder / "tasks.py"
    if kind == "symlink":
        real = tmp_path / "real_tasks.py"
        real.write_text(evil_code(marker))
        tasks.symlink_to(real)
    else:
        tasks.write_text(evil_code(marker))
    if kind == "group-writable":
        tasks.chmod(0o664)
    elif kind == "world-writable-neighbour":
        (folder / "helpers.py").write_text("")
        (folder / "helpers.py").chmod(0o666)
    elif kind == "in-others-folder":
        os.chown(folder, NOBODY, NOBODY)
    done = run(t, folder, "status")
    assert_clean(done, 3)
    assert "not loading the project in" in done.stderr
    assert not marker.exists()


@root_only
@pytest.mark.parametrize("planted", ["psutil/__init__.py", "decimal.py"])
def test_a_module_another_user_owns_beside_a_trusted_tasks_py_is_never_imported(
    rigged_town: TownFixture, tmp_path: Path, planted: str
) -> None:
    """Invoke puts the project folder first on Python's path: a folder or module there named like
    one gt-dolt imports later would run in its place, as the caller (root here)."""
    t = rigged_town
    marker = tmp_path / "ran"
    (t.root / "tasks.py").write_text(
        "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
    )
    path = t.root / planted
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    for owned in {path, path.parent} - {t.root}:
        os.chown(owned, NOBODY, NOBODY)
    gt_dolt = Path(sys.executable).parent / "gt-dolt"  # the console script: no current folder on the path
    t.gt_dolt("start").check_returncode()
    for command in ("status", "list", "stop"):
        done = subprocess.run(
            [str(gt_dolt), command], cwd=t.root, env=t.env(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "not loading the project in" in done.stderr
        assert f"{t.root / planted.split('/')[0]}: it belongs to uid {NOBODY}" in done.stderr
    assert not marker.exists()


def test_a_fifo_named_tasks_py_is_not_read_and_nothing_hangs(rigged_town: TownFixture, tmp_path: Path) -> None:
    """Invoke's loader takes any entry named tasks.py; a FIFO would hang it or feed it code."""
    t = rigged_town
    (t.root / "tasks.py").write_text(evil_code(tmp_path / "outer-ran"))
    inner = t.root / "inner"
    inner.mkdir()
    os.mkfifo(inner / "tasks.py")
    done = run(t, inner, "status")
    assert_clean(done, 3)
    assert "not a regular file" in done.stderr and not (tmp_path / "outer-ran").exists()


@pytest.mark.parametrize("planted", ["invoke.py", "invoke.yaml", "__pycache__"])
def test_invoke_files_and_caches_beside_a_trusted_tasks_py_must_be_trusted_too(
    rigged_town: TownFixture, tmp_path: Path, planted: str
) -> None:
    t = rigged_town
    marker = tmp_path / "ran"
    folder = project(t)
    (folder / "tasks.py").write_text(
        "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
    )
    if planted == "invoke.py":
        (folder / "invoke.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
        (folder / "invoke.py").chmod(0o666)
    elif planted == "invoke.yaml":
        (folder / "invoke.yaml").write_text("dolt:\n  port: 1\n")
        (folder / "invoke.yaml").chmod(0o646)
    else:
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__").chmod(0o777)
    done = run(t, folder, "status", "--json")
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "not loading the project in" in done.stderr and not marker.exists()


def test_an_invoke_file_in_home_that_others_can_write_stops_gt_dolt(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    home = tmp_path / "home"
    home.mkdir()
    (home / ".invoke.yaml").write_text("dolt:\n  binary: /tmp/evil\n")
    (home / ".invoke.yaml").chmod(0o666)
    done = run(t, t.root, "status", HOME=str(home))
    assert_clean(done, 2)
    assert ".invoke.yaml: others can write it" in done.stderr


@root_only
def test_a_dolt_binary_another_user_owns_is_never_run(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    marker = tmp_path / "ran"
    evil = tmp_path / "bin" / "dolt"
    evil.parent.mkdir()
    evil.write_text(f"#!/bin/sh\necho ran > {marker}\n")
    evil.chmod(0o755)
    os.chown(evil, NOBODY, NOBODY)
    for command in ("doctor", "start", "install"):
        done = run(t, t.root, command, INVOKE_DOLT_BINARY=str(evil))
        assert_clean(done, 1)
        assert f"{evil} belongs to uid 65534, not to you or root" in done.stdout + done.stderr
    assert not marker.exists()
    shutil.rmtree(evil.parent)


def test_a_world_writable_dolt_on_path_is_never_run(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    marker = tmp_path / "ran"
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "dolt").write_text(f"#!/bin/sh\necho ran > {marker}\n")
    (folder / "dolt").chmod(0o757 | stat.S_IWOTH)
    done = run(t, t.root, "start", PATH=f"{folder}:{os.environ['PATH']}")
    assert_clean(done, 1)
    assert "others can write" in done.stderr and not marker.exists()
