"""The page's files ship in the wheel (the Docker image installs finsentry with `pip install .`,
not from a checkout): their folders are packages, so setup.py's package_data picks them up."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

from setuptools import find_packages

from finsentry.dashboards.web import server

REPO = Path(__file__).resolve().parents[2]


def package_data_patterns() -> list[str]:
    """The file patterns setup.py ships with every package."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            return ast.literal_eval(node.value)[""]
    raise AssertionError("setup.py has no package_data")


def test_every_asset_the_page_serves_is_in_a_package_and_matches_package_data():
    packages = {p.replace(".", "/") for p in find_packages(str(REPO / "dashboards"))}
    patterns = package_data_patterns()
    assets = [
        p
        for d in (server.STATIC_DIR, server.VENDOR_DIR)
        for p in d.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ]
    assert {a.name for a in assets} >= {
        "index.html",
        "app.js",
        "style.css",
        "uPlot.iife.min.js",
        "uPlot.min.css",
        "LICENSE",
    }
    for asset in assets:
        folder = asset.parent.relative_to(REPO / "dashboards").as_posix()
        assert folder in packages, f"{folder} is not a package: add an __init__.py so {asset.name} ships"
        assert any(fnmatch.fnmatch(asset.name, p) for p in patterns), f"{asset.name} matches no package_data pattern"
