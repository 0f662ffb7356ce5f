"""kill-imposters: stop a Dolt server of no town that holds this town's port (only with proof)."""

from __future__ import annotations

import json

from .runner import Env


def kill_imposters(env: Env, dry_run: bool = False, json_: bool = False, port: str | None = None) -> int:
    from ..ops.imposters import kill_imposters as kill
    from ..ops.remote import refuse_if_remote

    town, settings = env.town_and_settings(port=port)
    refuse_if_remote(settings, "kill-imposters")
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
