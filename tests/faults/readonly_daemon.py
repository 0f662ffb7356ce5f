"""Run gt-dolt with <town>/daemon bind-mounted read-only onto itself, in a private mount namespace.

Usage: unshare --mount --propagation private python readonly_daemon.py <daemon dir> <gt-dolt args>

Root ignores file permissions, but not a read-only mount (EROFS).  The mount exists only in the
namespace `unshare` made for this process and its children, so it vanishes when they exit and
nothing outside the test ever sees it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

daemon, args = sys.argv[1], sys.argv[2:]
mount = shutil.which("mount") or "/bin/mount"
for step in (["--bind", daemon, daemon], ["-o", "remount,bind,ro", daemon]):
    subprocess.run([mount, *step], check=True, stdin=subprocess.DEVNULL)
print("daemon is read-only", file=sys.stderr, flush=True)
os.execv(sys.executable, [sys.executable, "-m", "gastown_tasks", *args])
