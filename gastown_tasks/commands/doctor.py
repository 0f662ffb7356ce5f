"""The doctor command: one line per check, the fixing command beside each problem."""

from __future__ import annotations

from .runner import Env


def doctor(env: Env, fix: bool = False, port: str | None = None) -> int:
    from ..ops import doctor as checkup

    town, settings = env.town_and_settings(port=port)
    report = checkup.examine(town, settings, fix=fix)
    for done in report.fixes:
        print(f"fixed: {done.what}" if done.done else done.what)
    if fix and not report.fixes:
        print("fixed: nothing needed a safe fix")
    for check in report.checks:
        print(check.line())
    return report.exit_code
