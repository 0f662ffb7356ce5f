"""The doctor task: one line per check, the fixing command beside each problem."""

from __future__ import annotations

from invoke import Context, task
from invoke.exceptions import Exit

from ..ops import doctor as checkup
from .config import reports_errors, town_and_settings


@task(
    help={
        "fix": "Apply the safe fixes first (stale pid file, state file); nothing else is changed",
        "port": "TCP port (default: dolt.port, GT_DOLT_PORT, 3307)",
    }
)
@reports_errors
def doctor(c: Context, fix: bool = False, port: str | None = None) -> None:
    """Check the Dolt binary, port, pid/state files, orphan servers and rigs (exit 1 on a failure)."""
    town, settings = town_and_settings(c, port=port)
    report = checkup.doctor(town, settings, fix=fix)
    for line in report.fixed:
        print(line if line.startswith("could not") else f"fixed: {line}")
    if fix and not report.fixed:
        print("fixed: nothing needed a safe fix")
    for check in report.checks:
        print(check.line())
    if report.exit_code:
        raise Exit(code=report.exit_code)
