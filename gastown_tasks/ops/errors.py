"""The package's one exception family, and the one wording of each remedy.

Every error says what happened and what to do next, and declares the exit code a command-line user
sees (an ExitCode, gastown_tasks/exits.py).  The command boundary there prints the message and exits
with the code; nothing else decides exit codes.  A remedy that several errors share is worded once,
here (`Remedy`).
"""

from __future__ import annotations

from ..exits import ExitCode as ExitCode  # re-exported: the operations name their codes through errors


class Remedy:
    """What to run or change; each worded once so every message says it the same way."""

    INIT_RIG = "create one: gt-dolt init-rig <name> (or invoke dolt.init-rig <name>)"
    OTHER_PORT = (
        "move the whole town to another port: gt-dolt start --port 3308 (kept in .dolt-data/config.yaml, where gt "
        "reads it too; where mayor/daemon.json sets the port: gt config set dolt.port 3308)"
    )
    INSTALL = "run: gt-dolt install (or invoke dolt.install) to build the pinned Dolt"
    STATUS = "check with: gt-dolt status"
    DOCTOR = "see: gt-dolt doctor"
    START = "start it: gt-dolt start (or invoke dolt.start)"
    STOP_FIRST = "stop it first: gt-dolt stop (or invoke dolt.stop)"
    PASSWORD = "the password comes from dolt.password (invoke.yaml), INVOKE_DOLT_PASSWORD or GT_DOLT_PASSWORD"

    @staticmethod
    def remove(path: object) -> str:
        return f"remove it (gt-dolt never follows or replaces such a file in a town), then retry: rm {path}"

    @staticmethod
    def init_rig(name: str) -> str:
        return f"create it: gt-dolt init-rig {name}"


class GastownError(Exception):
    """Base of every error the package raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = ExitCode(exit_code)


class ConfigError(GastownError):
    """A setting or argument is invalid; nothing was started or changed."""

    exit_code = ExitCode.CONFIG


class NotInTown(GastownError):
    """No Gas Town workspace was found (LSB 'unknown': exit 4)."""

    exit_code = ExitCode.NOT_IN_TOWN


class DoltNotFound(GastownError):
    """The dolt binary is missing or does not run."""


class BuildError(GastownError):
    """Building a pinned Go tool (Dolt, bd) failed."""


class NoRigs(GastownError):
    """There is no rig database to serve."""

    @classmethod
    def in_town(cls, data_dir: object) -> NoRigs:
        return cls(f"no rig databases in {data_dir}; {Remedy.INIT_RIG}")


class PortInUse(GastownError):
    """Something that is not this town's Dolt holds the port."""

    @classmethod
    def held(cls, port: int, holders: str) -> PortInUse:
        return cls(
            f"port {port} is in use by {holders}; it is not this town's Dolt server, so it was left "
            f"alone. Stop it, or {Remedy.OTHER_PORT}"
        )


class StartFailed(GastownError):
    """The server did not become ready; what was started has been cleaned up."""


class AccessDenied(GastownError):
    """The server refused our credentials (exit 6: it runs, but not for us)."""

    exit_code = ExitCode.ACCESS_DENIED

    @classmethod
    def for_user(cls, user: str, where: str, detail: str = "") -> AccessDenied:
        said = f" ({detail})" if detail else ""
        return cls(f"the server at {where} refused user {user!r}: access denied{said}; {Remedy.PASSWORD}")


class StopFailed(GastownError):
    """The server could not be stopped."""


class LockTimeout(GastownError):
    """Another gt-dolt/gt held the town's lock for too long."""


class RigError(GastownError):
    """A rig name is invalid, or the rig exists / does not exist."""


class MigrationError(GastownError):
    """A migration step failed; sources are left untouched."""


class NotOurs(GastownError):
    """A process or file is not provably this town's, so it is left alone."""


class UnsafeFile(GastownError):
    """A file in the town is a link, a FIFO, a device, a folder, or someone else's."""


class UnsafeFolder(UnsafeFile):
    """A folder on the way to a file is a link or not a folder at all."""


class FileFailure(GastownError):
    """The file system refused an operation: full, read-only, not a folder, permissions, ..."""


class SqlFailure(GastownError):
    """The server answered with an error, timed out, or does not answer (`kind` says which)."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def silent(self) -> bool:
        """Nothing answered at all: the server (or its host) may be gone, not merely busy."""
        return self.kind in ("refused", "unreachable")


class RemoteServer(GastownError):
    """The town uses a server on another host; it is managed there, not here."""

    exit_code = ExitCode.REMOTE

    @classmethod
    def refuses(cls, what: str, where: str, usable: list[str]) -> RemoteServer:
        """`usable`: the commands that do work against a remote server (the command table says which)."""
        listed = ", ".join(usable[:-1]) + f" and {usable[-1]}" if len(usable) > 1 else "".join(usable)
        return cls(
            f"the server at {where} is remote: {what} manages only a server on this machine; "
            f"manage it on its host ({listed} work from here)"
        )


class ServerNotRunning(GastownError):
    """The operation needs a running server."""

    exit_code = ExitCode.NOT_RUNNING

    @classmethod
    def needed_for(cls, what: str) -> ServerNotRunning:
        return cls(f"{what} needs the server, and it is not running; {Remedy.START}")


class ClusterError(GastownError):
    """A cluster role change was refused or failed."""
