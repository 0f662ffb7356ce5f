"""Inside a user namespace, a folder of a user the namespace does not map (shown as the overflow
uid) is named as such, with a remedy that can work: not "run gt-dolt as that user"."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gastown_tasks.ops.files import privilege

FOLDER = stat.S_IFDIR | 0o755


def folder_of(uid: int) -> os.stat_result:
    return os.stat_result((FOLDER, 1, 1, 2, uid, uid, 4096, 0, 0, 0))


def test_a_folder_of_an_unmapped_user_is_named_so_and_told_to_run_outside_the_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(privilege, "unmapped_uid", lambda: 65534)
    said = privilege.exposed("/", folder_of(65534), 1000, sticky_ok=True)
    assert said is not None
    assert said.startswith("/ belongs to a user this user namespace does not map (shown as uid 65534)")
    assert "run gt-dolt outside the user namespace" in said and "run gt-dolt as that user" not in said


def test_where_every_uid_is_mapped_uid_65534_is_an_ordinary_other_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privilege, "unmapped_uid", lambda: None)
    said = privilege.exposed("/srv", folder_of(65534), 1000, sticky_ok=True)
    assert said is not None and said.startswith("/srv belongs to uid 65534 (")
    assert "run gt-dolt as that user" in said


def test_folders_of_root_and_of_the_user_pass_in_a_namespace_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privilege, "unmapped_uid", lambda: 65534)
    assert privilege.exposed("/", folder_of(0), 1000, sticky_ok=True) is None
    assert privilege.exposed("/home/u", folder_of(1000), 1000, sticky_ok=True) is None


def test_unmapped_uid_is_the_kernels_overflow_uid_in_a_namespace_that_maps_one_user() -> None:
    overflow = int(Path("/proc/sys/kernel/overflowuid").read_text())
    probe = "from gastown_tasks.ops.files.privilege import unmapped_uid; print(unmapped_uid())"
    done = subprocess.run(
        ["unshare", "-r", sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(overflow)


def test_unmapped_uid_is_none_where_the_map_covers_every_uid() -> None:
    whole = Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]
    privilege.unmapped_uid.cache_clear()
    assert (privilege.unmapped_uid() is None) == whole
