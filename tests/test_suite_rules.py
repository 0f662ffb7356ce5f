"""The suite's own rules, run on a tiny suite under this conftest: a skip fails the run unless the
allowlist names it, and a test that needs root is deselected (never skipped) for anyone else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def run_suite(folder: Path, source: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on one test file, with tests/conftest.py loaded as the plugin `conftest`."""
    (folder / "test_tiny.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-rA", "test_tiny.py"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(TESTS), **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def summary(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


def test_a_skipped_test_fails_the_run_naming_the_remedy(tmp_path: Path) -> None:
    done = run_suite(
        tmp_path,
        "import pytest\n"
        "def test_skips_in_its_body():\n    pytest.skip('no frobnicator here')\n"
        "@pytest.mark.skipif(True, reason='a marker says so')\ndef test_skips_by_marker():\n    pass\n"
        "def test_runs():\n    pass\n",
    )
    assert done.returncode == 1, done.stdout
    assert summary(done).startswith("1 failed, 1 passed, 1 error"), done.stdout
    assert "skipped (no frobnicator here), and a skip fails the run" in done.stdout
    assert "skipped (a marker says so), and a skip fails the run" in done.stdout
    assert "ALLOWED_SKIPS in tests/conftest.py" in done.stdout


def test_a_module_that_skips_at_import_fails_the_run(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "import pytest\npytest.skip('not here', allow_module_level=True)\n")
    assert done.returncode == 2, done.stdout  # a collection error
    assert "skipped (not here), and a skip fails the run" in done.stdout


def test_a_skip_on_the_allowlist_stays_a_skip(tmp_path: Path) -> None:
    done = run_suite(
        tmp_path,
        "import conftest, pytest\n"
        "conftest.ALLOWED_SKIPS['test_tiny.py::test_allowed'] = 'cannot run here, for a reason'\n"
        "def test_allowed():\n    pytest.skip('allowed')\n",
    )
    assert done.returncode == 0, done.stdout
    assert summary(done).startswith("1 skipped"), done.stdout


def test_a_test_that_needs_root_runs_as_root_and_is_deselected_for_anyone_else(tmp_path: Path) -> None:
    done = run_suite(
        tmp_path,
        "import os, pytest\n"
        "@pytest.mark.needs_root('plants another user\\'s files')\n"
        "def test_as_root():\n    assert os.geteuid() == 0\n"
        "def test_anyone():\n    pass\n",
    )
    assert done.returncode == 0, done.stdout
    expected = "2 passed" if os.geteuid() == 0 else "1 passed, 1 deselected"
    assert summary(done).startswith(expected), done.stdout
    assert "skipped" not in summary(done)


def test_needs_root_without_a_reason_stops_the_run(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "import pytest\n@pytest.mark.needs_root\ndef test_x():\n    pass\n")
    assert done.returncode == 4, done.stdout + done.stderr  # a usage error
    assert 'needs_root takes one reason, as needs_root("why")' in done.stdout + done.stderr


def test_the_dolt_under_test_is_the_pinned_build_and_the_callers_settings_stay_out(tmp_path: Path) -> None:
    """Another `dolt` first on PATH, the caller's GT_DOLT_*/INVOKE_* variables: no test sees them."""
    other = tmp_path / "bin" / "dolt"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\nexit 3\n")
    other.chmod(0o755)
    done = run_suite(
        tmp_path,
        "import os\n"
        "from gastown_tasks.ops.build.binary import cached_binary, find_dolt\n"
        "def test_pinned(dolt_binary):\n"
        "    assert dolt_binary == cached_binary() == find_dolt()\n"
        "    assert not {'GT_DOLT_PORT', 'INVOKE_DOLT_PORT', 'PYTHONUNBUFFERED'} & set(os.environ)\n",
        PATH=f"{other.parent}{os.pathsep}{os.environ['PATH']}",
        GT_DOLT_PORT="1",
        INVOKE_DOLT_PORT="1",
        PYTHONUNBUFFERED="1",
    )
    assert done.returncode == 0, done.stdout
    assert summary(done).startswith("1 passed"), done.stdout
