"""kill-imposters: stop a Dolt server of no town that holds this town's port (only with proof)."""

from __future__ import annotations

import json

from .runner import Env
from .surface import LOCAL, PORT, Option, command


@command(
    "kill-imposters",
    options=(
        Option("dry_run", "Name the imposters; stop nothing", flag=True),
        Option("json_", "Print one JSON object", flag=True),
        Option("port", PORT),
    ),
    reach=LOCAL,
)
def kill_imposters(env: Env, dry_run: bool = False, json_: bool = False, port: str | None = None) -> int:
    """Stop a Dolt server of yours that holds this town's port but serves a folder of no town.

    Never another town's server (nested, sibling or parent), never one of another user, never
    anything but a dolt sql-server: those are named and left alone.  Examples:
      gt-dolt kill-imposters --dry-run
      gt-dolt kill-imposters
    """
    from ..ops.server.imposters import kill_imposters as kill

    town, settings = env.town_and_settings(port=port)
    found = kill(town, settings, dry_run=dry_run)
    if json_:
        print(
            json.dumps(
                {
                    "port": found.port,
                    "dry_run": dry_run,
                    "imposters": [v.to_json() for v in found.imposters],
                    "stopped": [v.to_json() for v in found.stopped],
                    "left_alone": [v.to_json() for v in found.left],
                },
                indent=2,
            )
        )
        return 0
    for verdict in found.imposters:
        done = "would stop" if dry_run else ("stopped" if verdict in found.stopped else "did not stop (it changed)")
        print(f"{done} imposter pid {verdict.pid}: {verdict.why}")
    for verdict in found.left:
        print(f"left alone: pid {verdict.pid} ({verdict.what}): {verdict.why}")
    if not found.imposters:
        print(f"no imposter on port {found.port}")
    return 0
