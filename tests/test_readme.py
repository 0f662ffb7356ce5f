"""The README's runnable blocks, run as written in a temporary town against a real Dolt.

A block marked `<!-- readme-test: file NAME -->` is written to NAME in the town; `shell` blocks run
line by line (each must exit 0); `python` blocks run with the package's Python.  The one change:
the README's port 3307 becomes a free port, so the test never touches a real town's server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import TownFixture

README = Path(__file__).resolve().parent.parent / "README.md"
MARKED = re.compile(r"<!-- readme-test: (\w+)(?: (\S+))? -->\n```\w*\n(.*?)```", re.DOTALL)
BIN = Path(sys.executable).parent


def blocks() -> list[tuple[str, str | None, str]]:
    return [(kind, name, body) for kind, name, body in MARKED.findall(README.read_text())]


def test_the_readme_marks_its_runnable_blocks() -> None:
    kinds = [(kind, name) for kind, name, _ in blocks()]
    assert ("file", "tasks.py") in kinds and ("file", "invoke.yaml") in kinds
    assert ("shell", None) in [(k, n or None) for k, n in kinds] and any(k == "python" for k, _ in kinds)


def test_your_own_town_in_five_minutes_works_as_written(town: TownFixture, tmp_path: Path) -> None:
    t = town
    port = str(t.port)
    env = t.env()
    env.pop("GT_DOLT_PORT")  # the README's invoke.yaml names the port
    env["PATH"] = f"{BIN}:{env['PATH']}"
    outputs: list[str] = []
    for kind, name, body in blocks():
        body = body.replace("3307", port)
        if kind == "file":
            (t.root / name).write_text(body)
            continue
        if kind == "python":
            script = tmp_path / "readme_block.py"
            script.write_text(body)
            commands = [[sys.executable, str(script)]]
        else:
            lines = [line.split("#")[0].strip() for line in body.splitlines()]
            commands = [["bash", "-c", line] for line in lines if line]
        for command in commands:
            done = subprocess.run(
                command, cwd=t.root, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
            )
            outputs.append(f"$ {command[-1]}\n{done.stdout}{done.stderr}")
            assert done.returncode == 0, "\n".join(outputs)
            assert "Traceback" not in done.stderr, "\n".join(outputs)
    said = "\n".join(outputs)
    assert "created rig gastown" in said and "onboard: everything is in place" in said
    assert said.count("onboard: everything is in place") == 2
    assert "hq: 0 tables" in said and "gastown: 0 tables" in said  # invoke check ran after dolt.start
    assert f"port:       {port}" in said  # gt-dolt status read the same invoke.yaml
    assert "dolt sql-server stopped" in said
    assert "['gastown', 'hq'] started now" in said  # the context manager started and stopped it
    assert not t.servers()
