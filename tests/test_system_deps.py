"""A missing system binary skips its tests, or fails them under FINSENTRY_REQUIRE_SYSTEM_DEPS=1."""

from __future__ import annotations

import pytest
from system_deps import REQUIRE_ENV, require_binary

MISSING = "finsentry-no-such-binary"


def test_a_binary_on_path_or_at_a_fallback_path_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    assert require_binary("sh").endswith("/sh")
    fallback = tmp_path / "tool"
    fallback.write_text("#!/bin/sh\n")
    assert require_binary(MISSING, str(tmp_path / "absent"), str(fallback)) == str(fallback)


def test_a_missing_binary_skips_by_default(monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_binary(MISSING)


@pytest.mark.parametrize("value", ["1", "true"])
def test_a_missing_binary_fails_when_system_deps_are_required(monkeypatch, value):
    monkeypatch.setenv(REQUIRE_ENV, value)
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is not installed.*{REQUIRE_ENV}=1 requires it"):
        require_binary(MISSING)
