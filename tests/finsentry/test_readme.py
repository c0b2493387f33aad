"""The README stays true: its settings table is the one Settings generates, and it holds
the two set-up commands that .ci/run relies on."""

import re
from pathlib import Path

from finsentry.settings import README_MARKERS, Settings, readme_with_settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_table_matches_the_settings_class():
    readme = (ROOT / "README.md").read_text()
    assert all(marker in readme for marker in README_MARKERS)
    assert readme == readme_with_settings(readme), "run: finsentry settings --update-readme README.md"
    for name in Settings.model_fields:
        assert f"`FINSENTRY_{name.upper()}`" in readme


def setup_commands(readme: str) -> list[str]:
    """The commands of the first fenced block in the set-up section, comments left out."""
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_two_setup_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert setup_commands(readme) == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
