"""The system binaries (Debian packages, installed by .ci/system-deps) the tests run for real.

A missing binary skips the tests that need it, so `pytest` works on a laptop without them.
With FINSENTRY_REQUIRE_SYSTEM_DEPS=1 (what `make test` and `make reliability` set) it fails
them instead: a CI without a package must not pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ENV = "FINSENTRY_REQUIRE_SYSTEM_DEPS"

PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "docker-compose": "docker-compose",
    "openssl": "openssl",
    "curl": "curl",
}


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def require_binary(name: str, *fallbacks: str) -> str:
    """The path of `name` (on PATH, or the first existing fallback path); otherwise skip,
    or fail when FINSENTRY_REQUIRE_SYSTEM_DEPS is set."""
    found = shutil.which(name) or next((p for p in fallbacks if Path(p).is_file()), None)
    if found:
        return found
    message = f"{name} is not installed (apt-get install -y {PACKAGES.get(name, name)})"
    if required():
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(message)
