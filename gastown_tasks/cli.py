"""`gt-dolt`: the dolt collection as a console script, from any folder inside a town.

`gt-dolt start` is `invoke dolt.start`.  Invoke does not load a project invoke.yaml for a bundled
namespace, so this program loads the one beside the nearest tasks.py above the current folder,
the file `invoke` itself would use.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Program

from . import __version__
from .tasks import dolt


def _project_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "tasks.py").is_file():
            return folder
    return None


class GtDoltProgram(Program):
    def parse_collection(self) -> None:
        super().parse_collection()
        project = _project_dir(Path.cwd().resolve())
        if project is not None:
            self.config.set_project_location(str(project))
            self.config.load_project()


program = GtDoltProgram(
    name="gt-dolt",
    binary="gt-dolt",
    binary_names=["gt-dolt"],
    version=__version__,
    namespace=dolt.ns,
)


def main() -> None:
    program.run()
