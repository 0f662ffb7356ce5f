"""Server lifecycle tasks: install, start, stop, restart, status."""

from __future__ import annotations

import json

from invoke import Context, task
from invoke.exceptions import Exit

from ..ops import dolt_build, server
from .config import reports_errors, town_and_settings

PORT_HELP = "TCP port (default: dolt.port, GT_DOLT_PORT, 3307)"


def _notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}")


def _describe_start(result: server.StartResult) -> str:
    what = "started" if result.started else "already running"
    rigs = ", ".join(result.databases) or "no rig databases"
    return (
        f"dolt sql-server {what}: pid {result.pid} on {result.host}:{result.port}, "
        f"serving {rigs} (log: {result.log_file})"
    )


@task
@reports_errors
def install(c: Context) -> None:
    """Build the pinned Dolt into the cache (skipped when already built)."""
    result = dolt_build.ensure_dolt()
    how = f"built in {result.seconds:.0f}s" if result.built else "already built"
    print(f"{result.version} at {result.binary} ({how})")


@task(
    help={
        "timeout": "Seconds to wait for the server to answer (default: dolt.start_timeout)",
        "port": PORT_HELP,
    }
)
@reports_errors
def start(c: Context, timeout: str | None = None, port: str | None = None) -> None:
    """Start the server and return once it answers SQL (no-op when running)."""
    town, settings = town_and_settings(c, port=port, start_timeout=timeout)
    result = server.start(town, settings)
    _notes(result.notes)
    print(_describe_start(result))


@task(
    help={
        "timeout": "Seconds to wait after SIGTERM before SIGKILL (default: dolt.stop_timeout)",
        "port": PORT_HELP,
    }
)
@reports_errors
def stop(c: Context, timeout: str | None = None, port: str | None = None) -> None:
    """Stop this town's server, ours or started by hand (no-op when stopped)."""
    town, settings = town_and_settings(c, port=port, stop_timeout=timeout)
    result = server.stop(town, settings)
    _notes(result.notes)
    if result.was_running:
        print(f"dolt sql-server stopped (pid {result.pid})")
    else:
        print("dolt sql-server is not running")


@task(help={"timeout": "Seconds to wait for the server to answer after the restart", "port": PORT_HELP})
@reports_errors
def restart(c: Context, timeout: str | None = None, port: str | None = None) -> None:
    """Stop the server if it runs, then start it."""
    town, settings = town_and_settings(c, port=port, start_timeout=timeout)
    stopped, started = server.restart(town, settings)
    _notes(stopped.notes + started.notes)
    if stopped.was_running:
        print(f"dolt sql-server stopped (pid {stopped.pid})")
    print(_describe_start(started))


def _status_text(st: server.Status) -> str:
    lines = []
    if st.running:
        lines.append(f"dolt sql-server is running: pid {st.pid}")
        lines.append(f"  started:    {st.started_at} (up {st.uptime_seconds:.0f}s)")
        lines.append(f"  connection: {st.connection}")
    else:
        left = " (a stale pid file was left)" if st.pid_file_left else ""
        lines.append(f"dolt sql-server is not running{left}")
    lines.append(f"  port:       {st.port}")
    lines.append(f"  data dir:   {st.data_dir}")
    lines.append(f"  databases ({st.databases_source}): {', '.join(st.databases) or 'none'}")
    lines.extend(f"note: {note}" for note in st.notes)
    return "\n".join(lines)


@task(default=True, help={"json": "Print one JSON object", "port": PORT_HELP})
@reports_errors
def status(c: Context, json_: bool = False, port: str | None = None) -> None:
    """Show whether the server runs (exit 0 running, 1 stale pid file, 3 stopped, 4 no town)."""
    town, settings = town_and_settings(c, port=port)
    st = server.status(town, settings)
    print(json.dumps(st.to_dict(), indent=2) if json_ else _status_text(st))
    if st.exit_code:
        raise Exit(code=st.exit_code)
