"""Helpers for the fault suite: real faults, waited for by event, checked from the outside.

Imported by the tests in this folder (`import faultkit`); the shared fixtures stay in
tests/conftest.py.  Nothing here sleeps for a fixed time: every wait polls a condition.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from conftest import GT_DOLT, TownFixture, end, first_line  # noqa: F401 - end is re-exported to the fault tests
from gastown_tasks.ops.polling import poll_until
from gastown_tasks.ops.sql import sqlclient

HERE = Path(__file__).parent / "faults"
AUDITED = HERE / "audited_gt_dolt.py"
IN_MOUNTS = HERE / "in_mounts.py"  # run gt-dolt with folders on full, tiny or read-only mounts

SLEEPER = "import sys, time; print('up', flush=True); time.sleep(600)"


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll `condition` until it is true; fail naming `what` (the event) after `timeout`."""
    assert poll_until(condition, timeout) is not None, f"waited {timeout:g}s for: {what}"


@contextlib.contextmanager
def frozen(pid: int, *, end_it: bool = False) -> Iterator[psutil.Process]:
    """SIGSTOP a server this test started (alive, its port still taking connections, nothing
    answering); afterwards, if that very process still lives (psutil checks its create time), it is
    continued, and with `end_it` killed."""
    proc = psutil.Process(pid)
    proc.send_signal(signal.SIGSTOP)
    wait_until(lambda: proc.status() == psutil.STATUS_STOPPED, f"pid {pid} to be stopped (SIGSTOP)")
    try:
        yield proc
    finally:
        if proc.is_running():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGCONT)
                if end_it:
                    proc.kill()


def sleeper() -> subprocess.Popen[str]:
    """A live process that is not Dolt and serves nothing: a pid to plant in our files."""
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert first_line(proc).strip() == "up"
    return proc


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_clean(done: subprocess.CompletedProcess[str], code: int) -> None:
    """The exit code we expect, and a message rather than a traceback."""
    output = done.stdout + done.stderr
    assert done.returncode == code, f"exit {done.returncode}, wanted {code}:\n{output}"
    assert "Traceback" not in output, output


def kill_9(pid: int) -> None:
    """SIGKILL this town's server (the test's own) and wait until it has exited."""
    proc = psutil.Process(pid)
    proc.send_signal(signal.SIGKILL)
    wait_until(lambda: not alive(pid), f"pid {pid} to die after SIGKILL", timeout=30)


def wait_for_sql(t: TownFixture, timeout: float = 60) -> None:
    wait_until(lambda: sqlclient.served_databases(t.settings, timeout=1) is not None, "the server to answer SQL")


def gt_dolt_popen(t: TownFixture, *args: str, audit: Path | None = None, **env: str) -> subprocess.Popen[str]:
    """gt-dolt in its own process group, as a shell runs a foreground job (Ctrl-C goes to the group).

    With `audit`, it runs under the audit hook (see audited_gt_dolt.py) logging into that file.
    """
    command = [*GT_DOLT, *args] if audit is None else [sys.executable, str(AUDITED), *args]
    if audit is not None:
        env = {**env, "GT_AUDIT_LOG": str(audit)}
    return subprocess.Popen(
        command,
        cwd=t.root,
        env=t.env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


# --- .dolt/ trees ---------------------------------------------------------------------------


def dolt_folders(root: Path) -> list[Path]:
    """Every folder named .dolt under root (rig databases, Dolt's own .dolt-data/.dolt, old layouts)."""
    found = []
    for folder, dirs, _ in os.walk(root):
        if ".dolt" in dirs:
            found.append(Path(folder) / ".dolt")
    return sorted(found)


def tree_snapshot(folder: Path) -> dict[str, tuple]:
    """Relative path -> (kind, mode, size, mtime_ns, sha256 or link target) for everything below."""
    snap: dict[str, tuple] = {}
    for current, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(current) / name
            info = path.lstat()
            rel = str(path.relative_to(folder))
            if stat.S_ISLNK(info.st_mode):
                snap[rel] = ("link", info.st_mode, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                snap[rel] = ("dir", info.st_mode)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                snap[rel] = ("file", info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return snap


def dolt_trees(root: Path) -> dict[str, dict[str, tuple]]:
    """Every .dolt/ tree under root, keyed by the .dolt folder's path relative to root."""
    return {str(folder.relative_to(root)): tree_snapshot(folder) for folder in dolt_folders(root)}


# --- audited runs of the package ------------------------------------------------------------


def audited_gt_dolt(
    t: TownFixture, log: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """gt-dolt under a Python audit hook that records every file change and process it makes."""
    return subprocess.run(
        [sys.executable, str(AUDITED), *args],
        cwd=t.root,
        env=t.env(GT_AUDIT_LOG=str(log), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def audit_events(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
