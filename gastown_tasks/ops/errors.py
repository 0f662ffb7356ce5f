"""The package's one exception family.

Every error carries a message that says what happened and what to do next, and the exit code a
command-line user should see.  Task wrappers print the message and exit with the code; nothing
else in the package decides exit codes.
"""

from __future__ import annotations


class GastownError(Exception):
    """Base of every error the package raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(GastownError):
    """A setting or argument is invalid; nothing was started or changed."""

    exit_code = 2


class NotInTown(GastownError):
    """No Gas Town workspace was found (LSB 'unknown': exit 4)."""

    exit_code = 4


class DoltNotFound(GastownError):
    """The dolt binary is missing or does not run."""


class BuildError(GastownError):
    """Building the pinned Dolt failed."""


class NoRigs(GastownError):
    """There is no rig database to serve."""


class PortInUse(GastownError):
    """Something that is not this town's Dolt holds the port."""


class StartFailed(GastownError):
    """The server did not become ready; what was started has been cleaned up."""


class StopFailed(GastownError):
    """The server could not be stopped."""


class LockTimeout(GastownError):
    """Another gt-dolt/gt held the town's lock for too long."""


class RigError(GastownError):
    """A rig name is invalid, or the rig exists / does not exist."""


class MigrationError(GastownError):
    """A migration step failed; sources are left untouched."""


class ServerNotRunning(GastownError):
    """The operation needs a running server."""

    exit_code = 3
