"""Log lines go to the standard error of the moment, in the configured format."""

from __future__ import annotations

import io
import json
import logging
import sys

from finsentry.logging import setup_logging


def test_lines_follow_a_swapped_stderr_and_a_closed_one_is_never_used(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        first = io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        setup_logging("INFO", as_json=True)
        logging.getLogger("finsentry.test").info("one")
        first.close()  # as a CLI runner closes the stream it captured into
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("finsentry.test").warning("two")
        entry = json.loads(second.getvalue())
        assert entry["msg"] == "two" and entry["level"] == "warning" and entry["logger"] == "finsentry.test"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
