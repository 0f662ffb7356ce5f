"""The no-follow file layer: what it refuses (links, FIFOs, hard links, folders, others' files, huge
files), what it writes (atomically, with the mode asked for), and the one line each failure gives."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gastown_tasks.ops.errors import FileFailure, UnsafeFile, UnsafeFolder
from gastown_tasks.ops.files import safefs


@pytest.fixture
def town(tmp_path: Path) -> Path:
    root = tmp_path / "town"
    (root / "daemon").mkdir(parents=True)
    return root


@pytest.fixture(autouse=True)
def no_descriptor_leaks() -> Iterator[None]:
    """Every test here also proves that the layer closes what it opened, on success and refusal."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) <= before


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)


def test_read_bytes_gives_the_whole_file_or_none_when_it_or_its_folder_is_missing(town: Path) -> None:
    (town / "daemon" / "dolt.pid").write_bytes(b"4242\n")
    assert safefs.read_bytes(town / "daemon" / "dolt.pid", 100, root=town) == b"4242\n"
    assert safefs.read_bytes(town / "daemon" / "absent", 100, root=town) is None
    assert safefs.read_bytes(town / "no-folder" / "dolt.pid", 100, root=town) is None


def test_a_file_larger_than_the_limit_is_refused_and_one_at_the_limit_is_read_whole(town: Path) -> None:
    path = town / "daemon" / "big"
    data = bytes(range(256)) * 1024  # 256 KiB: several 64 KiB reads
    path.write_bytes(data)
    assert safefs.read_bytes(path, len(data), root=town) == data
    with pytest.raises(UnsafeFile) as caught:
        safefs.read_bytes(path, len(data) - 1, root=town)
    assert str(caught.value).startswith(f"{path} is larger than 262,143 bytes, more than gt-dolt ever writes there")
    assert str(caught.value).endswith(f"rm {path}")


def test_a_symlinked_file_is_refused_naming_its_target_and_never_read(town: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not yours")
    (town / "daemon" / "dolt.pid").symlink_to(secret)
    path = town / "daemon" / "dolt.pid"
    with pytest.raises(UnsafeFile) as caught:
        safefs.read_bytes(path, 100, root=town)
    assert str(caught.value) == (
        f"{path} is a symlink to {secret}; remove it (gt-dolt never follows or replaces such a file in a town), "
        f"then retry: rm {path}"
    )
    assert not isinstance(caught.value, UnsafeFolder)  # the file is planted, not its folder


def test_a_fifo_in_a_files_place_is_refused_at_once_instead_of_blocking(town: Path) -> None:
    os.mkfifo(town / "daemon" / "dolt.pid")
    with pytest.raises(UnsafeFile, match=r"is a FIFO \(named pipe\)"):
        safefs.read_bytes(town / "daemon" / "dolt.pid", 100, root=town)


def test_a_hard_linked_file_is_refused_with_its_count_of_names(town: Path) -> None:
    (town / "daemon" / "elsewhere").write_text("4242\n")
    os.link(town / "daemon" / "elsewhere", town / "daemon" / "dolt.pid")
    with pytest.raises(UnsafeFile, match=r"is a hard link \(2 names\)"):
        safefs.read_bytes(town / "daemon" / "dolt.pid", 100, root=town)


def test_a_folder_in_a_files_place_is_refused_as_a_folder(town: Path) -> None:
    (town / "daemon" / "dolt.pid").mkdir()
    with pytest.raises(UnsafeFile, match="dolt.pid is a folder; remove it"):
        safefs.read_bytes(town / "daemon" / "dolt.pid", 100, root=town)


def test_a_socket_in_a_files_place_is_refused_as_a_socket(town: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(town / "daemon" / "dolt.pid"))
        with pytest.raises(UnsafeFile, match="dolt.pid is a socket"):
            safefs.read_bytes(town / "daemon" / "dolt.pid", 100, root=town)


def test_a_device_is_refused_as_a_device() -> None:
    with pytest.raises(UnsafeFile, match="/dev/null is a device"):
        safefs.read_bytes(Path("/dev/null"), 100, root=Path("/dev"))


@pytest.mark.needs_root("chowns a file to another uid")
def test_another_users_file_is_refused_naming_both_uids(town: Path) -> None:
    path = town / "daemon" / "dolt.pid"
    path.write_text("4242\n")
    os.chown(path, 4242, 4242)
    with pytest.raises(UnsafeFile, match=rf"owned by uid 4242, not by you \(uid {os.geteuid()}\)"):
        safefs.read_bytes(path, 100, root=town)


def test_a_symlinked_folder_on_the_way_is_refused_and_nothing_is_written_through_it(town: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (town / "daemon").rmdir()
    (town / "daemon").symlink_to(elsewhere)
    with pytest.raises(UnsafeFolder, match=rf"daemon is a symlink to {elsewhere}, not a folder.*mv .*daemon.bak"):
        safefs.write_atomic(town / "daemon" / "dolt.pid", b"1\n", root=town)
    with pytest.raises(UnsafeFolder, match="not a folder"):
        safefs.read_bytes(town / "daemon" / "dolt.pid", 100, root=town)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("operation", ["read", "write", "remove", "require", "private"])
def test_a_symlinked_folder_deeper_below_the_town_is_refused_too(town: Path, tmp_path: Path, operation: str) -> None:
    """Every folder below the town is opened without following links, not only the file's own."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "sub" / "f").write_text("theirs")
    (town / "daemon").rmdir()
    (town / "daemon").symlink_to(elsewhere)
    target = town / "daemon" / "sub" / "f"
    with pytest.raises(UnsafeFolder, match=f"^{town / 'daemon'} is a symlink to {elsewhere}, not a folder"):
        if operation == "read":
            safefs.read_bytes(target, 100, root=town)
        elif operation == "write":
            safefs.write_atomic(target, b"ours", root=town)
        elif operation == "remove":
            safefs.remove(target, root=town)
        elif operation == "require":
            safefs.require_dir(target.parent, root=town)
        else:
            safefs.ensure_private_dir(target.parent / "run", root=town)
    assert (elsewhere / "sub" / "f").read_text() == "theirs" and sorted(os.listdir(elsewhere / "sub")) == ["f"]


def test_a_hard_linked_or_plain_file_in_a_folders_place_is_named_a_file(town: Path) -> None:
    (town / "other").write_text("")
    os.link(town / "other", town / "run")
    with pytest.raises(UnsafeFolder, match=f"^{town / 'run'} is a file, not a folder; .*mv {town / 'run'} "):
        safefs.require_dir(town / "run", root=town)


def test_a_folder_name_too_long_for_the_system_is_one_line_saying_so(town: Path) -> None:
    folder = town / ("x" * 300)
    with pytest.raises(FileFailure) as caught:
        safefs.require_dir(folder, root=town)
    assert (
        str(caught.value) == f"cannot open the folder {folder}: the path is too long; use a shorter folder, then retry"
    )


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(town: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = town / "daemon" / "dolt-state.json"
    path.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FileFailure) as caught:
        safefs.write_atomic(path, b"new", root=town)
    assert str(caught.value) == f"cannot write {path}: no space left on the device; free some space, then retry"
    assert path.read_text() == "old" and sorted(os.listdir(path.parent)) == ["dolt-state.json"]


def test_a_failed_remove_is_one_line_naming_the_file(town: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = town / "daemon" / "dolt.pid"
    path.write_text("1\n")

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "unlink", read_only)
    with pytest.raises(FileFailure) as caught:
        safefs.remove(path, root=town)
    assert str(caught.value) == f"cannot remove {path}: the file system is read-only; make it writable, then retry"


def test_a_file_in_a_folders_place_is_named_as_a_file(town: Path) -> None:
    (town / "daemon").rmdir()
    (town / "daemon").write_text("")
    with pytest.raises(UnsafeFolder, match="daemon is a file, not a folder"):
        safefs.require_dir(town / "daemon", root=town)
    with pytest.raises(UnsafeFolder, match="daemon is a file, not a folder"):
        safefs.ensure_dir(town / "daemon", root=town)


def test_a_missing_folder_is_file_not_found_unless_asked_to_create_it(town: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safefs.require_dir(town / "a" / "b", root=town)
    safefs.ensure_dir(town / "a" / "b", root=town, mode=0o750)
    assert (town / "a" / "b").is_dir() and not (town / "a" / "b").is_symlink()
    os.umask(old := os.umask(0))
    assert _mode(town / "a" / "b") == 0o750 & ~old


def test_a_missing_root_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safefs.require_dir(tmp_path / "none" / "daemon", root=tmp_path / "none")


def test_descriptors_are_close_on_exec_so_no_child_inherits_them(town: Path) -> None:
    (town / "daemon" / "dolt.pid").write_text("1\n")
    with safefs.open_dir(town / "daemon", root=town) as dfd:
        assert fcntl.fcntl(dfd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    with safefs.open_file(town / "daemon" / "dolt.pid", root=town) as fd:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.read(fd, 10) == b"1\n"


def test_write_atomic_replaces_the_file_with_the_exact_mode_asked_whatever_the_umask(town: Path) -> None:
    path = town / "daemon" / "dolt-state.json"
    path.write_text("old")
    os.chmod(path, 0o666)
    old = os.umask(0o077)
    try:
        safefs.write_atomic(path, b"new\n", mode=0o644, root=town)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"new\n" and _mode(path) == 0o644
    safefs.write_atomic(path, b"newer\n", root=town)
    assert path.read_bytes() == b"newer\n" and _mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["dolt-state.json"]  # no temp file left


def test_write_atomic_creates_the_missing_folder_and_writes_large_data_whole(tmp_path: Path) -> None:
    path = tmp_path / "town" / "daemon" / "state"
    data = os.urandom(300_000)
    safefs.write_atomic(path, data, root=tmp_path)
    assert path.read_bytes() == data


def test_write_atomic_keeps_a_planted_symlink_and_its_target_untouched(town: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("precious")
    link = town / "daemon" / "dolt.pid"
    link.symlink_to(target)
    with pytest.raises(UnsafeFile, match=f"^{link} is a symlink to {target}; .*rm {link}$"):
        safefs.write_atomic(link, b"1\n", root=town)
    assert link.is_symlink() and target.read_text() == "precious"
    assert sorted(p.name for p in link.parent.iterdir()) == ["dolt.pid"]


def test_remove_removes_a_plain_file_and_says_false_when_there_is_none(town: Path) -> None:
    path = town / "daemon" / "dolt.pid"
    path.write_text("1\n")
    assert safefs.remove(path, root=town) is True and not path.exists()
    assert safefs.remove(path, root=town) is False
    assert safefs.remove(town / "gone" / "dolt.pid", root=town) is False


def test_remove_refuses_a_symlink_and_keeps_it_and_its_target(town: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("precious")
    link = town / "daemon" / "dolt.pid"
    link.symlink_to(target)
    with pytest.raises(UnsafeFile, match=f"^{link} is a symlink to {target}; remove it.*rm {link}$"):
        safefs.remove(link, root=town)
    assert link.is_symlink() and target.read_text() == "precious"


def test_remove_refuses_a_hard_link_and_keeps_both_names(town: Path) -> None:
    (town / "daemon" / "other").write_text("x")
    os.link(town / "daemon" / "other", town / "daemon" / "dolt.pid")
    with pytest.raises(UnsafeFile, match="a hard link"):
        safefs.remove(town / "daemon" / "dolt.pid", root=town)
    assert (town / "daemon" / "dolt.pid").exists() and (town / "daemon" / "other").exists()


def test_open_append_creates_private_narrows_a_wider_mode_and_appends(town: Path) -> None:
    path = town / "daemon" / "dolt.log"
    with safefs.open_append(path, root=town) as fd:
        os.write(fd, b"one\n")
    assert _mode(path) == 0o600
    os.chmod(path, 0o644)
    with safefs.open_append(path, root=town) as fd:
        os.write(fd, b"two\n")
    assert path.read_bytes() == b"one\ntwo\n" and _mode(path) == 0o600


def test_writing_in_a_town_that_is_gone_is_one_line_naming_the_town(tmp_path: Path) -> None:
    """The town itself is never created: a missing root is a failure, not a new empty town."""
    root = tmp_path / "no-town"
    said = f"cannot open the folder {root}: No such file or directory, then retry"
    with pytest.raises(FileFailure, match=said), safefs.open_append(root / "daemon" / "dolt.log", root=root):
        pass
    with pytest.raises(FileFailure, match=said):
        safefs.write_atomic(root / "daemon" / "dolt.pid", b"1\n", root=root)
    assert not root.exists()


def test_ensure_private_dir_makes_it_owner_only_and_refuses_one_others_can_write(town: Path) -> None:
    safefs.ensure_private_dir(town / "daemon" / "run", root=town)
    assert _mode(town / "daemon" / "run") == 0o700
    os.chmod(town / "daemon" / "run", 0o770)
    with pytest.raises(UnsafeFolder, match=r"writable by other users.*chmod go-w .*run, then retry"):
        safefs.ensure_private_dir(town / "daemon" / "run", root=town)
    os.chmod(town / "daemon" / "run", 0o707)
    with pytest.raises(UnsafeFolder, match="writable by other users"):
        safefs.ensure_private_dir(town / "daemon" / "run", root=town)
    os.chmod(town / "daemon" / "run", 0o755)
    safefs.ensure_private_dir(town / "daemon" / "run", root=town)  # readable by others is fine


@pytest.mark.needs_root("chowns a folder to another uid")
def test_ensure_private_dir_refuses_another_users_folder(town: Path) -> None:
    (town / "daemon" / "run").mkdir(mode=0o700)
    os.chown(town / "daemon" / "run", 4242, 4242)
    with pytest.raises(UnsafeFolder, match=r"run belongs to uid 4242, not to you.*mv "):
        safefs.ensure_private_dir(town / "daemon" / "run", root=town)


def test_describe_names_what_is_wrong_and_nothing_for_a_usable_file_or_none(town: Path, tmp_path: Path) -> None:
    good = town / "daemon" / "good"
    good.write_text("x")
    (town / "daemon" / "link").symlink_to(tmp_path / "t")
    (town / "daemon" / "dir").mkdir()
    assert safefs.describe(good) is None
    assert safefs.describe(town / "daemon" / "absent") is None
    assert safefs.describe(town / "absent" / "x") is None
    assert safefs.describe(town / "daemon" / "link") == f"a symlink to {tmp_path / 't'}"
    assert safefs.describe(town / "daemon" / "dir") == "a folder"


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (errno.ENOSPC, "no space left on the device; free some space"),
        (errno.EROFS, "the file system is read-only; make it writable"),
        (errno.EACCES, "permission denied; fix the permissions"),
        (errno.ENAMETOOLONG, "the path is too long; use a shorter folder"),
    ],
)
def test_a_file_system_failure_is_one_line_saying_what_where_and_what_to_do(code: int, said: str) -> None:
    failure = safefs.failure(OSError(code, os.strerror(code)), "/t/daemon/x", "write")
    assert str(failure) == f"cannot write /t/daemon/x: {said}, then retry"


def test_a_failure_without_an_errno_gives_its_own_words() -> None:
    assert str(safefs.failure(OSError("odd"), "/t/x", "read")) == "cannot read /t/x: odd, then retry"


def test_an_unlisted_failure_gives_the_systems_own_words() -> None:
    failure = safefs.failure(OSError(errno.ETXTBSY, os.strerror(errno.ETXTBSY)), "/t/x", "open")
    assert str(failure) == f"cannot open /t/x: {os.strerror(errno.ETXTBSY)}, then retry"
