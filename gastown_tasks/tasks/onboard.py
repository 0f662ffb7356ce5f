"""Onboarding a developer in a town, Makefile-style: each step its own idempotent task.

    onboard <- dolt-installed <- legacy-migrated <- rigs-exist <- server-verified

The rigs a town needs are `onboard.rigs` (default "hq"; text "hq,gastown" or a list in
invoke.yaml; INVOKE_ONBOARD_RIGS=hq,gastown).  A second run changes nothing and says so.
"""

from __future__ import annotations

from invoke import Context, task

from ..ops.build import gobuild
from ..ops.rigs import onboarding
from .config import env_of, reports_errors, town_and_settings


@task(name="dolt-installed")
@reports_errors
def dolt_installed(c: Context) -> None:
    """Step 1: the pinned Dolt is built (the same build step as the README setup)."""
    result = gobuild.ensure_dolt()
    print(f"ok: {result.version} ({'built now' if result.built else 'already built'})")


@task(name="legacy-migrated", pre=[dolt_installed])
@reports_errors
def legacy_migrated(c: Context) -> None:
    """Step 2: every rig's beads data (bd's embedded databases too) is moved into .dolt-data."""
    town, settings = town_and_settings(c)
    print(onboarding.migrate_legacy(town, settings, print))


@task(name="rigs-exist", pre=[legacy_migrated])
@reports_errors
def rigs_exist(c: Context) -> None:
    """Step 3: every rig in onboard.rigs exists (init-rig for each missing one)."""
    town, settings = town_and_settings(c)
    wanted = onboarding.configured_rigs(env_of(c).tree("onboard").get("rigs"))
    print(onboarding.ensure_rigs(town, settings, wanted, print))


@task(name="server-verified", pre=[rigs_exist])
@reports_errors
def server_verified(c: Context) -> None:
    """Step 4: the server runs and serves every rig on disk."""
    town, settings = town_and_settings(c)
    print(onboarding.verify_server(town, settings, print))


@task(pre=[server_verified])
@reports_errors
def onboard(c: Context) -> None:
    """Set up this town for development: Dolt, migration, rigs, a verified server."""
    town, _ = town_and_settings(c)
    print(onboarding.all_in_place(town))


STEPS = (onboard, dolt_installed, legacy_migrated, rigs_exist, server_verified)
