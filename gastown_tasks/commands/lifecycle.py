"""Server lifecycle commands: install, start, stop, restart, status."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from .runner import Env

if TYPE_CHECKING:  # status must not pay for importing the launcher
    from ..ops.launch import StartResult


def notes(lines: list[str]) -> None:
    for note in lines:
        print(f"note: {note}")


def describe_start(result: StartResult) -> str:
    what = "started" if result.started else "already running"
    from ..ops.rigs import some_of

    rigs = some_of(result.databases) or "no rig databases"
    address = f"[{result.host}]" if ":" in result.host else result.host
    return (
        f"dolt sql-server {what}: pid {result.pid} on {address}:{result.port}, serving {rigs} (log: {result.log_file})"
    )


def install(env: Env, bd: bool = False, gt: bool = False) -> int:
    from ..ops import gobuild
    from ..ops.binary import find_dolt, identify

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


def _remote_guard(settings: object, what: str) -> None:
    from ..ops.remote import refuse_if_remote

    refuse_if_remote(settings, what)


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


def start(env: Env, timeout: str | None = None, port: str | None = None) -> int:
    from ..ops import server

    town, settings = env.town_and_settings(port=port, start_timeout=timeout)
    _remote_guard(settings, "start")
    result = server.start(town, settings, echo=print)
    notes(env.start_notes(result.started) + result.notes)
    print(describe_start(result))
    return cluster_outcome(result)


def stop(env: Env, timeout: str | None = None, port: str | None = None, force: bool = False) -> int:
    from ..ops import server

    town, settings = env.town_and_settings(port=port, stop_timeout=timeout)
    _remote_guard(settings, "stop")
    result = server.stop(town, settings, force=force, echo=print)
    notes(result.notes)
    print(f"dolt sql-server stopped (pid {result.pid})" if result.was_running else "dolt sql-server is not running")
    return 0


def restart(env: Env, timeout: str | None = None, port: str | None = None, force: bool = False) -> int:
    from ..ops import server

    town, settings = env.town_and_settings(port=port, start_timeout=timeout)
    _remote_guard(settings, "restart")
    stopped, started = server.restart(town, settings, force=force, echo=print)
    notes(env.start_notes(True) + started.notes)
    if stopped.was_running:
        print(f"dolt sql-server stopped (pid {stopped.pid})")
    print(describe_start(started))
    return cluster_outcome(started)


def status_text(st: object) -> str:
    from ..ops.rigs import some_of
    from ..ops.serverstatus import Status

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
        from ..ops.health import health_lines

        lines.extend(health_lines(st.health))
    if st.cluster:
        from ..ops.cluster import cluster_line

        lines.append(cluster_line(st.cluster))
    lines.extend(f"note: {note}" for note in st.notes)
    return "\n".join(lines)


def status(env: Env, json_: bool = False, port: str | None = None) -> int:
    from ..ops.remote import is_remote, remote_status

    settings = env.settings(port=port)
    if is_remote(settings):
        st = remote_status(settings)
    else:
        from ..ops import serverstatus

        town, settings = env.located(settings, port=port)
        st = serverstatus.status(town, settings)
        if env.port_notes:
            st = st._replace(notes=[*env.port_notes, *st.notes])
    print(json.dumps(st.to_dict(), indent=2) if json_ else status_text(st))
    return st.exit_code
