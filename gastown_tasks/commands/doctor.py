"""The doctor command: one line per check, the fixing command beside each problem."""

from __future__ import annotations

from .runner import Env
from .surface import ANYWHERE, PORT, Option, command


@command(
    "doctor",
    options=(
        Option("fix", "Apply the safe fixes first (run files); nothing else changes", flag=True),
        Option("port", PORT),
    ),
    reach=ANYWHERE,  # checks reachability, credentials and latency
)
def doctor(env: Env, fix: bool = False, port: str | None = None) -> int:
    """Check the binary, port, run files, servers, rigs, beads, health and backups (exit 1 on a failure).

    Examples:
      gt-dolt doctor
      gt-dolt doctor --fix      # only the safe fixes: the run files and beads metadata
    """
    from ..ops.access import remote
    from ..ops.doctor.doctor import examine

    settings = env.settings(port=port)
    if env.remote:
        checks = remote.checks(settings)
        for check in checks:
            print(check.line())
        return 1 if any(check.level == "fail" for check in checks) else 0
    town, settings = env.located(settings, port=port)
    report = examine(town, settings, fix=fix)
    for note in env.port_notes:
        print(f"note: {note}")
    for done in report.fixes:
        print(f"fixed: {done.what}" if done.done else done.what)
    if fix and not report.fixes:
        print("fixed: nothing needed a safe fix")
    for check in report.checks:
        print(check.line())
    return report.exit_code
