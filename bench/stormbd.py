"""A few real `bd` processes in the storm: each worker creates an issue, then lists them, in a loop.

`bd` is beads v1.0.0 as the setup builds it (gt-dolt install --bd); every call is a new process
with its own connections, as an agent's is.  The workspace is the town's root, initialised once
per server (`bd init --server … --force` on the rig database).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BD_TIMEOUT = 60.0
BREAKERS = Path("/tmp/beads-circuit")  # bd 1.0 keeps a circuit breaker per server here


def forget_breaker(port: int) -> None:
    """bd's record of an earlier server on this port must not trip it (ours only, by port)."""
    for suffix in (".json", ".json.tmp"):
        with contextlib.suppress(OSError):
            (BREAKERS / f"beads-dolt-circuit-127-0-0-1-{port}{suffix}").unlink()


def bd_env(base: dict[str, str], home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in base.items() if not k.startswith(("BEADS_", "GT_DOLT_"))}
    env.update(
        HOME=str(home),
        GIT_AUTHOR_NAME="storm",
        GIT_AUTHOR_EMAIL="storm@gastown.invalid",
        GIT_COMMITTER_NAME="storm",
        GIT_COMMITTER_EMAIL="storm@gastown.invalid",
    )
    return env


def init_workspace(bd: Path, env: dict[str, str], root: Path, port: int, database: str) -> None:
    """A git repository with beads pointed at the town's server and its rig database."""
    forget_breaker(port)
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", str(root)], check=True, env=env, timeout=60)
        subprocess.run(["git", "-C", str(root), "config", "beads.role", "maintainer"], check=True, timeout=60)
    argv = [str(bd), "init", "--server", "--server-host", "127.0.0.1", "--server-port", str(port)]
    argv += ["--database", database, "--prefix", "storm", "--non-interactive", "--skip-agents", "--skip-hooks"]
    done = subprocess.run(
        [*argv, "--force"], cwd=root, env=env, capture_output=True, text=True, timeout=BD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bd init failed: {done.stdout}{done.stderr}")


@dataclass
class BdLoad:
    bd: Path
    env: dict[str, str]
    root: Path
    workers: int = 2
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(self.workers)]

    def _call(self, *args: str) -> None:
        began = time.monotonic()
        try:
            done = subprocess.run(
                [str(self.bd), *args],
                cwd=self.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=BD_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            error = None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1][:80]
        except subprocess.TimeoutExpired:
            error = f"no answer within {BD_TIMEOUT:g}s"
        with self._lock:
            self.calls[args[0]] += 1
            if error is None:
                self.latencies.append(time.monotonic() - began)
            else:
                self.errors[f"bd {args[0]}: {error}"] += 1

    def _loop(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            self._call("create", f"storm issue {worker}-{n}")
            if not self._stop.is_set():
                self._call("list", "--json")

    def start(self) -> BdLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=BD_TIMEOUT + 10)
