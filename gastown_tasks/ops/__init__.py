"""Operations on a town's Dolt server: plain Python, no Invoke.

Tasks, other Python code and tests all call these functions.
"""

from .binary import DOLT_VERSION, find_dolt
from .errors import GastownError
from .rigs import Rig, rigs_on_disk
from .server import (
    StartResult,
    Status,
    StopResult,
    find_running,
    restart,
    server_running,
    start,
    status,
    stop,
)
from .settings import DEFAULTS, DoltSettings, resolve_settings
from .town import Town, find_town

__all__ = [
    "DEFAULTS",
    "DOLT_VERSION",
    "DoltSettings",
    "GastownError",
    "Rig",
    "StartResult",
    "Status",
    "StopResult",
    "Town",
    "find_dolt",
    "find_running",
    "find_town",
    "resolve_settings",
    "restart",
    "rigs_on_disk",
    "server_running",
    "start",
    "status",
    "stop",
]
