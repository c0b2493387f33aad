"""A service's log is only log lines: with FINSENTRY_LOG_JSON=true every line is JSON, and no
third-party progress bar (transformers' "Loading weights" on every model load) gets in."""

from __future__ import annotations

import json
import os
import subprocess
import sys

LOAD_LIKE_A_WORKER = """
from finsentry.logging import setup_logging
setup_logging("INFO", as_json=True)
import logging
from finsentry.models.engine import Engine
engine = Engine.load(backend="torch")
logging.getLogger("finsentry.test").info("loaded %s", engine.version)
"""


def test_a_model_load_writes_only_json_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINSENTRY_", "HF_HUB_DISABLE"))}
    out = subprocess.run(
        [sys.executable, "-c", LOAD_LIKE_A_WORKER],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**env, "FINSENTRY_MODEL_CACHE_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    lines = (out.stdout + out.stderr).replace("\r", "\n").splitlines()
    assert lines and all(json.loads(line) for line in lines if line.strip()), lines
    assert "Loading weights" not in out.stderr
