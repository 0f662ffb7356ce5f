"""Run gt-dolt with some town folders on special mounts, in a private mount namespace.

Usage: unshare --mount --propagation private python in_mounts.py SPEC... -- <gt-dolt args>
  tmpfs:PATH:SIZE   a fresh tmpfs of SIZE (e.g. 64k) over PATH
  fill:PATH         fill PATH's file system (a file of zeros until ENOSPC)
  ro:PATH           PATH bind-mounted read-only onto itself

Root ignores permissions but not a full or read-only file system.  The mounts exist only in the
namespace `unshare` made for this process and its children and vanish when they exit; nothing
outside the test ever sees them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

split = sys.argv.index("--")
specs, args = sys.argv[1:split], sys.argv[split + 1 :]
mount = shutil.which("mount") or "/bin/mount"


def run(*argv: str) -> None:
    subprocess.run([mount, *argv], check=True, stdin=subprocess.DEVNULL)


for spec in specs:
    kind, _, rest = spec.partition(":")
    if kind == "tmpfs":
        path, size = rest.rsplit(":", 1)
        os.makedirs(path, exist_ok=True)
        run("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path)
    elif kind == "fill":
        fd = os.open(os.path.join(rest, ".filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        os.close(fd)
    elif kind == "ro":
        run("--bind", rest, rest)
        run("-o", "remount,bind,ro", rest)
    else:
        sys.exit(f"unknown spec {spec}")
print("mounts in place", file=sys.stderr, flush=True)
os.execv(sys.executable, [sys.executable, "-m", "gastown_tasks", *args])
