"""The three server configurations the storm compares, each started on the same Dolt binary.

- managed: ours, started by `gt-dolt start` (the config file it writes, dolt.wait_timeout included).
- gt v1.0: the config file Gas Town's `gt dolt start` writes (`writeServerConfig` in
  internal/doltserver/doltserver.go, v1.0.0), byte for byte but for one line: `listener.host:
  127.0.0.1`, which gt writes only when GT_DOLT_HOST is set (the storm stays on loopback). Then, as
  gt's `applyWaitTimeout` does once the server answers, `SET GLOBAL wait_timeout = 30`.
- dolt defaults: `dolt sql-server --host 127.0.0.1 --port P`, no config file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pymysql
from lab import BenchTown, Lab, town_env, wait_answering

from gastown_tasks.ops.files.runfiles import read_pid_file
from gastown_tasks.ops.town import Town

CONFIGS = ("managed", "gt v1.0", "dolt defaults")

GT_CONFIG = """\
# Dolt SQL server configuration — managed by Gas Town (gt dolt start)
# Do not edit manually; changes are overwritten on each server start.
# To customize, set Gas Town environment variables:
#   GT_DOLT_PORT, GT_DOLT_HOST, GT_DOLT_USER, GT_DOLT_PASSWORD, GT_DOLT_LOGLEVEL

log_level: warning

listener:
  port: {port}
  host: 127.0.0.1
  max_connections: 1000
  read_timeout_millis: 300000
  write_timeout_millis: 300000

data_dir: "{data_dir}"

behavior:
  dolt_transaction_commit: false
  auto_gc_behavior:
    enable: true
    archive_level: 1
"""
GT_WAIT_TIMEOUT = 30  # gt's applyWaitTimeout


@dataclass
class Running:
    """A server of one configuration; `reclaim` is the idle reclaim it reads back (net_read_timeout)."""

    config: str
    town: BenchTown
    pid: int
    reclaim: int
    child: subprocess.Popen[bytes] | None  # None when gt-dolt started it


def _gt_dolt() -> str:
    return str(Path(sys.executable).parent / "gt-dolt")


def _variable(port: int, name: str) -> int:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=10, ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT @@GLOBAL.{name}")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def _spawn(lab: Lab, town: BenchTown, args: list[str]) -> subprocess.Popen[bytes]:
    log = open(town.root / f"dolt-{town.port}.log", "ab")  # noqa: SIM115 - the child keeps it
    try:
        return subprocess.Popen(
            [str(lab.dolt), "sql-server", *args],
            cwd=town.data_dir,
            env=lab.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        log.close()


def start(lab: Lab, town: BenchTown, config: str, wait_timeout: int | None = None) -> Running:
    """Start `town`'s server with `config`; returns once it answers SQL."""
    child = None
    if config == "managed":
        env = town_env(lab, town)
        if wait_timeout is not None:
            env["INVOKE_DOLT_WAIT_TIMEOUT"] = str(wait_timeout)
        done = subprocess.run(
            [_gt_dolt(), "start", "--timeout", "120"], cwd=town.root, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"gt-dolt start failed: {done.stdout}{done.stderr}")
        pid = read_pid_file(Town(town.root)).pid or 0
    elif config == "gt v1.0":
        path = town.data_dir / "config.yaml"
        path.write_text(GT_CONFIG.format(port=town.port, data_dir=town.data_dir.as_posix()))
        os.chmod(path, 0o600)
        child = _spawn(lab, town, ["--config", str(path)])
        wait_answering(child, town.port)
        conn = pymysql.connect(host="127.0.0.1", port=town.port, user="root", ssl_disabled=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET GLOBAL wait_timeout = {GT_WAIT_TIMEOUT}")
        finally:
            conn.close()
        pid = child.pid
    elif config == "dolt defaults":
        (town.data_dir / "config.yaml").unlink(missing_ok=True)
        child = _spawn(lab, town, ["--host", "127.0.0.1", "--port", str(town.port)])
        wait_answering(child, town.port)
        pid = child.pid
    else:
        raise ValueError(f"unknown config {config!r}; one of {CONFIGS}")
    return Running(config, town, pid, _variable(town.port, "net_read_timeout"), child)


def stop(lab: Lab, server: Running) -> None:
    """Stop it the way it was started, and wait until the process has gone."""
    if server.child is None:
        subprocess.run(
            [_gt_dolt(), "stop", "--force", "--timeout", "30"],
            cwd=server.town.root,
            env=town_env(lab, server.town),
            capture_output=True,
        )
    else:
        server.child.terminate()
        try:
            server.child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.child.kill()
            server.child.wait(timeout=10)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(server.pid).wait(timeout=30)
