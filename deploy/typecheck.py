"""Run mypy over the `finsentry.*` namespace as it is installed (`make test` calls this).

The packages live in top-level folders that setup.py's ROOTS maps to import names
(streams/ is finsentry.streams), which mypy cannot follow from the folders alone. This
script lays out that mapping as a tree of symbolic links under build/typecheck/ and checks
it; the settings (which modules are strict) are pyproject.toml's [tool.mypy].
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"


def roots() -> dict[str, str]:
    """setup.py's ROOTS: import name -> folder."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ROOTS" for t in node.targets):
            value: dict[str, str] = ast.literal_eval(node.value)
            return value
    raise SystemExit("setup.py has no ROOTS")


def lay_out() -> Path:
    """build/typecheck/finsentry: finsentry/'s files, with each other root linked in by name."""
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "finsentry"
    package.mkdir(parents=True)
    for entry in (ROOT / "finsentry").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in roots().items():
        if name != "finsentry":
            (package / name.split(".", 1)[1]).symlink_to(ROOT / folder)
    return package


def main() -> int:
    lay_out()
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(ROOT / "build" / "mypy-cache"),
        "-p",
        "finsentry",
        *sys.argv[1:],
    ]
    return subprocess.run(command, cwd=TREE).returncode


if __name__ == "__main__":
    sys.exit(main())
