"""The one way the package waits: poll a condition with a short, growing delay and a deadline.

Every wait is on an event (a port answers, a process has exited, a database is listed); the delay
starts at a millisecond because most of these events cost well under one to check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T],
    timeout: float,
    *,
    first_delay: float = 0.001,
    max_delay: float = 0.05,
) -> T | None:
    """Call `check` until it returns something truthy and return that; None once `timeout` passes.

    `check` runs at least once, even with a timeout of 0; it may raise to end the wait early.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)
