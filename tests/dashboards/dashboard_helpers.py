"""Locating the Debian tools the dashboard tests run (installed by the CI script)."""

from __future__ import annotations

import shutil

import pytest

PACKAGES = {"promtool": "prometheus", "prometheus": "prometheus", "amtool": "prometheus-alertmanager",
            "chromium": "chromium", "chromedriver": "chromium-driver"}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {PACKAGES.get(name, name)}")
    return path
