"""Running one command of the surface: where its settings come from, and its one error boundary.

Both entry points end here.  `Env` is the configuration a command sees (Invoke's merged config, or
none on the fast path); `run` calls the handler inside the package's one boundary
(gastown_tasks/exits.py), which turns every failure into one line on stderr and an exit code, never
a traceback.  With --json an error is also one JSON object on stdout.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ..exits import guarded
from .surface import LOCAL, Command


class Env:
    """The configuration a command runs with: the `dolt` tree and any other tree it asks for."""

    def __init__(self, trees: Mapping[str, Any] | None = None) -> None:
        self.trees: Mapping[str, Any] = trees or {}
        self.port: Any = None  # the town's port and where it came from (ops.gtconfig.TownPort)
        self._remote: bool | None = None

    @property
    def remote(self) -> bool:
        """The town's server is on another host (dolt.host, names resolved): decided once a command."""
        if self._remote is None:
            from ..ops.host.addresses import is_remote

            self._remote = is_remote(self.settings())
        return self._remote

    def tree(self, name: str) -> dict[str, Any]:
        value = self.trees.get(name)
        return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}

    def settings(self, **flags: Any) -> Any:
        from ..ops.settings import resolve_settings

        return resolve_settings(self.tree("dolt"), **flags)

    def town(self, settings: Any) -> Any:
        from ..ops.errors import NotInTown
        from ..ops.town import find_town

        try:
            return find_town(configured=settings.town_root or None)
        except NotInTown:
            from .owner import become_town_owner

            if not become_town_owner(settings.town_root or None):  # root in an ordinary user's town
                raise
            return find_town(configured=settings.town_root or None)  # now as that user

    def located(self, settings: Any, **flags: Any) -> tuple[Any, Any]:
        """The town, and the settings with the town's port as gt reads it (ops/beads/gtconfig.py), unless
        the command or the Invoke config names one; a remote server's port is left as configured."""
        from ..ops.beads import gtconfig

        town = self.town(settings)
        settings, self.port = gtconfig.for_town(town, settings, self.tree("dolt"), flags)
        return town, settings

    @property
    def port_notes(self) -> list[str]:
        """What a user should know about where the town's port came from."""
        if self.port is None:
            return []
        return [*self.port.notes, *([self.port.differs] if self.port.differs else [])]

    def start_notes(self, started: bool) -> list[str]:
        """The port notes after a start: a start on our port records it where gt reads it."""
        if self.port is None or not started:
            return self.port_notes
        return [*self.port.notes, *([self.port.recorded()] if self.port.recorded() else [])]

    def town_and_settings(self, **flags: Any) -> tuple[Any, Any]:
        return self.located(self.settings(**flags), **flags)


class Visible(io.TextIOBase):
    """A terminal stream that shows control characters instead of obeying them: a database name, a
    process's arguments or a log line must not drive the user's terminal."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        from ..ops.files.logfile import visible

        self.stream.write(visible(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self.stream.fileno())


def run_guarded(call: Callable[[], Any], as_json: bool = False) -> int:
    """The boundary: `call()`'s exit code, or the exit code of what went wrong, said in one line."""
    saved = sys.stdout, sys.stderr
    if isinstance(sys.stdout, io.TextIOWrapper) and not sys.stdout.line_buffering:
        # Each line a command says (`waiting for 2 client(s)`) reaches a pipe or a log as it is said.
        sys.stdout.reconfigure(line_buffering=True)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")  # a folder name that is not UTF-8 prints as \udcNN
        if stream is not None and not isinstance(stream, Visible) and _isatty(stream):
            setattr(sys, name, Visible(stream))
    from . import owner

    try:
        code = guarded(call, as_json=as_json)
    except BaseException:
        if owner.in_child():  # the child that ran the command as the town's owner ends here
            import traceback

            traceback.print_exc()
            owner.finish(1)
        raise
    finally:
        sys.stdout, sys.stderr = saved
    if owner.in_child():  # whatever the caller would do next (Invoke's other tasks) is the parent's
        owner.finish(code)
    return code


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def within_reach(command: Command, env: Env) -> None:
    """A command of this machine's server (the table's LOCAL) is refused, exit 5, when the town's
    server is remote: the local files are not what that server serves."""
    if command.reach == LOCAL and env.remote:
        from ..ops.errors import RemoteServer
        from . import WORK_REMOTELY

        raise RemoteServer.refuses(command.name, env.settings().address, WORK_REMOTELY)


def run(command: Command, env: Env, options: Mapping[str, Any]) -> int:
    """Call the command's handler, within its reach; every outcome is an exit code."""

    def call() -> Any:
        within_reach(command, env)
        return command.handler(env, **options)

    return run_guarded(call, bool(options.get("json_")))
