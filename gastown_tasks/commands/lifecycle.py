"""Server lifecycle commands: install, start, stop, restart, status."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from .runner import Env
from .surface import ANYWHERE, LOCAL, PORT, Option, command

if TYPE_CHECKING:  # status must not pay for importing the launcher
    from ..ops.server.launch import StartResult


def _timeout(what: str) -> Option:
    return Option("timeout", what)


_PORT = Option("port", PORT)
_FORCE = Option("force", "Skip waiting for busy clients to finish", flag=True)


def notes(lines: list[str]) -> None:
    for note in lines:
        print(f"note: {note}")


def describe_start(result: StartResult) -> str:
    what = "started" if result.started else "already running"
    from ..ops.files.datadir import some_of

    rigs = some_of(result.databases) or "no rig databases"
    address = f"[{result.host}]" if ":" in result.host else result.host
    return (
        f"dolt sql-server {what}: pid {result.pid} on {address}:{result.port}, serving {rigs} (log: {result.log_file})"
    )


@command(
    "install",
    options=(
        Option("bd", "Also build beads' bd (v1.0.0) into the cache", flag=True),
        Option("gt", "Also build Gas Town's gt (v1.0.0) into the cache", flag=True),
    ),
    reach=ANYWHERE,  # builds Dolt on this machine; no server involved
)
def install(env: Env, bd: bool = False, gt: bool = False) -> int:
    """Build the pinned Dolt into the cache (skipped when already built).

    Says which dolt `start` will run when it is not this build (dolt.binary, or a dolt on PATH).
    Examples:
      gt-dolt install
      gt-dolt install --bd --gt # also build beads' bd and Gas Town's gt, which the tests drive
    """
    from ..ops.build import gobuild
    from ..ops.build.binary import find_dolt, identify

    result = gobuild.ensure_dolt()
    how = f"built in {result.seconds:.0f}s" if result.built else "already built"
    print(f"{result.version} at {result.binary} ({how})")
    settings = env.settings()
    used = identify(find_dolt(settings.binary))
    if used.note():
        print(
            f"note: start will run {used.path} ({used.version}), not this build: set dolt.binary to "
            f"{result.binary}, or take the other dolt off PATH"
        )
    for wanted, tool in ((bd, gobuild.BD), (gt, gobuild.GT)):
        if wanted:
            built = gobuild.ensure_tool(tool)
            how = f"built in {built.seconds:.0f}s" if built.built else "already built"
            print(f"{tool.name}: {built.version} at {built.binary} ({how})")
    return 0


def cluster_outcome(result: StartResult) -> int:
    """A clustered server's role after start, said; exit 7 when it runs fenced (read-only), 8 when
    Dolt put it in detected_broken_config: it runs, but cannot take the writes its role needs."""
    standing = result.cluster
    if standing is None:
        return 0
    if standing.exit_code:
        print(f"warning: the server runs but takes no writes: {standing.said}", file=sys.stderr)
    else:
        print(f"cluster: {standing.said}")
    return standing.exit_code


@command(
    "start",
    options=(
        _timeout("Seconds to wait for the server to answer (default: dolt.start_timeout, 60)"),
        _PORT,
    ),
    reach=LOCAL,
)
def start(env: Env, timeout: str | None = None, port: str | None = None) -> int:
    """Start the server and return once it answers SQL and serves every rig (no-op when running).

    Examples:
      gt-dolt start
      gt-dolt start --port 3308 --timeout 120
    """
    from ..ops.server import server

    town, settings = env.town_and_settings(port=port, start_timeout=timeout)
    result = server.start(town, settings, echo=print)
    notes(env.start_notes(result.started) + result.notes)
    print(describe_start(result))
    return cluster_outcome(result)


@command(
    "stop",
    options=(
        _timeout("Seconds to wait after SIGTERM before SIGKILL (default: dolt.stop_timeout, 30)"),
        _PORT,
        _FORCE,
    ),
    reach=LOCAL,
)
def stop(env: Env, timeout: str | None = None, port: str | None = None, force: bool = False) -> int:
    """Stop this town's server, ours or started by hand (no-op when stopped).

    Waits for busy clients first (up to dolt.drain_timeout), then SIGTERM; SIGKILL only after
    --timeout.  Examples:
      gt-dolt stop
      gt-dolt stop --force      # do not wait for clients
    """
    from ..ops.server import server

    town, settings = env.town_and_settings(port=port, stop_timeout=timeout)
    result = server.stop(town, settings, force=force, echo=print)
    notes(result.notes)
    print(f"dolt sql-server stopped (pid {result.pid})" if result.was_running else "dolt sql-server is not running")
    return 0


@command(
    "restart",
    options=(
        _timeout("Seconds to wait for the server to answer after the restart"),
        _PORT,
        _FORCE,
    ),
    reach=LOCAL,
)
def restart(env: Env, timeout: str | None = None, port: str | None = None, force: bool = False) -> int:
    """Stop the server if it runs, then start it; refuses before stopping if the start would fail.

    Examples:
      gt-dolt restart
      gt-dolt restart --port 3308   # move the town to another port (gt follows: config.yaml)
    """
    from ..ops.server import server

    town, settings = env.town_and_settings(port=port, start_timeout=timeout)
    stopped, started = server.restart(town, settings, force=force, echo=print)
    notes(env.start_notes(True) + started.notes)
    if stopped.was_running:
        print(f"dolt sql-server stopped (pid {stopped.pid})")
    print(describe_start(started))
    return cluster_outcome(started)


def status_text(st: object) -> str:
    from ..ops.files.datadir import some_of
    from ..ops.server.serverstatus import Status

    assert isinstance(st, Status)
    lines = []
    if st.remote:
        state = {"answering": "answers", "refused credentials": "refuses our credentials"}.get(st.sql or "", "")
        lines.append(f"remote dolt sql-server at {st.host}:{st.port} " + (state or "is not reachable"))
    elif st.running:
        wedged = f" but WEDGED ({st.wedge['kind']})" if st.wedge and st.wedge["kind"] != "ok" else ""
        lines.append(f"dolt sql-server is running: pid {st.pid}{wedged}")
        lines.append(f"  started:    {st.started_at} (up {st.uptime_seconds or 0:.0f}s)")
    else:
        left = " (a stale pid file was left)" if st.pid_file_left else ""
        lines.append(f"dolt sql-server is not running{left}")
    if st.running or st.remote:
        lines.append(f"  connection: {st.connection}")
    lines.append(f"  port:       {st.port}")
    if not st.remote:
        lines.append(f"  data dir:   {st.data_dir}")
    lines.append(f"  databases ({st.databases_source}): {some_of(list(st.databases)) or 'none'}")
    if st.health:
        from ..ops.server.health import health_lines

        lines.extend(health_lines(st.health))
    if st.cluster:
        from ..ops.cluster.cluster import cluster_line

        lines.append(cluster_line(st.cluster))
    lines.extend(f"note: {note}" for note in st.notes)
    return "\n".join(lines)


@command(
    "status",
    options=(
        Option("json_", 'Print one JSON object (errors too: {"error": ..., "exit_code": ...})', flag=True),
        _PORT,
    ),
    default=True,
    reach=ANYWHERE,  # asks the remote server
)
def status(env: Env, json_: bool = False, port: str | None = None) -> int:
    """Show whether the server runs: exit 0 running, 1 stale pid file, 3 stopped, 4 no town, 6 refused.

    Also what `gt-dolt` alone runs.  Examples:
      gt-dolt status
      gt-dolt status --json
    """
    from ..ops.access.remote import remote_status

    settings = env.settings(port=port)
    if env.remote:
        st = remote_status(settings)
    else:
        from ..ops.server import serverstatus

        town, settings = env.located(settings, port=port)
        st = serverstatus.status(town, settings)
        if env.port_notes:
            st = st._replace(notes=[*env.port_notes, *st.notes])
    print(json.dumps(st.to_dict(), indent=2) if json_ else status_text(st))
    return st.exit_code
