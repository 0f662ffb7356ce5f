"""Run gt-dolt with some town folders on special mounts, in a private mount namespace.

Usage: unshare --mount --propagation private python in_mounts.py SPEC... -- <gt-dolt args> [-- <gt-dolt args> ...]
  tmpfs:PATH:SIZE   a fresh tmpfs of SIZE (e.g. 64k) over PATH
  file:PATH:SIZE    a file of SIZE random bytes at PATH (mode 0600), made after the mounts
  fill:PATH         fill PATH's file system (a file of zeros until ENOSPC)
  fill:PATH:KEEP    fill it, then leave KEEP bytes free (a nearly full disk)
  ro:PATH           PATH bind-mounted read-only onto itself
  list:PATH         after the commands, print "listing PATH: NAME SIZE, ..." on stderr

Each group of gt-dolt arguments after a `--` runs in turn, in the same namespace; the exit code is
the first command's.  Root ignores permissions but not a full or read-only file system.  The mounts
exist only in the namespace `unshare` made for this process and its children and vanish when they
exit; nothing outside the test ever sees them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

chunks: list[list[str]] = [[]]
for arg in sys.argv[1:]:
    if arg == "--":
        chunks.append([])
    else:
        chunks[-1].append(arg)
specs, commands = chunks[0], chunks[1:]
mount = shutil.which("mount") or "/bin/mount"
listings = []


def run(*argv: str) -> None:
    subprocess.run([mount, *argv], check=True, stdin=subprocess.DEVNULL)


def fill(path: str, keep: int) -> None:
    filler = os.path.join(path, ".filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    if keep:
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - keep))
    os.close(fd)


for spec in specs:
    kind, _, rest = spec.partition(":")
    if kind == "tmpfs":
        path, size = rest.rsplit(":", 1)
        os.makedirs(path, exist_ok=True)
        run("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path)
    elif kind == "file":
        path, size = rest.rsplit(":", 1)
        with open(path, "wb") as out:
            out.write(os.urandom(int(size)))
        os.chmod(path, 0o600)
    elif kind == "fill":
        path, _, keep = rest.partition(":")
        if keep and not keep.isdigit():
            path, keep = rest, ""
        fill(path, int(keep or 0))
    elif kind == "ro":
        run("--bind", rest, rest)
        run("-o", "remount,bind,ro", rest)
    elif kind == "list":
        listings.append(rest)
    else:
        sys.exit(f"unknown spec {spec}")
print("mounts in place", file=sys.stderr, flush=True)
codes = [subprocess.run([sys.executable, "-m", "gastown_tasks", *args]).returncode for args in commands]
for path in listings:
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    shown = ", ".join(f"{e.name} {e.stat(follow_symlinks=False).st_size}" for e in entries)
    print(f"listing {path}: {shown}", file=sys.stderr, flush=True)
sys.exit(codes[0] if codes else 0)
