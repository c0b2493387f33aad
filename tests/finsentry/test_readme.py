"""The README stays true: its settings table is the one Settings generates, and it holds
the two set-up commands that .ci/run relies on."""

from pathlib import Path

from finsentry.settings import README_MARKERS, Settings, readme_with_settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_table_matches_the_settings_class():
    readme = (ROOT / "README.md").read_text()
    assert all(marker in readme for marker in README_MARKERS)
    assert readme == readme_with_settings(readme), "run: finsentry settings --update-readme README.md"
    for name in Settings.model_fields:
        assert f"`FINSENTRY_{name.upper()}`" in readme


def test_two_setup_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
