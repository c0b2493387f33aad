"""Structured logging: one line per event, key=value by default or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"ts={ts}Z level={record.levelname.lower()} logger={record.name} "
            f"msg={json.dumps(record.getMessage(), ensure_ascii=False)}"
        )
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # its stream is a property
    """Writes to the sys.stderr of the moment, not the one at set-up: a CLI runner (or a
    daemon) may swap it, and a handler left holding a closed stream loses every line."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it; the property decides
        pass


NOISY = ("aiokafka", "faust", "mode", "elastic_transport", "urllib3", "kafka")


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if as_json else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def dict_config(level: str = "INFO", as_json: bool = False) -> dict[str, Any]:
    """The same set-up as `setup_logging`, for frameworks that install their own logging
    from a dictConfig (the Faust worker does, with its own line format, at start)."""
    level = level.upper()
    quiet = logging.getLevelName(max(logging.WARNING, logging.getLevelName(level)))
    formatter = "finsentry.logging.JsonFormatter" if as_json else "finsentry.logging.KeyValueFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"finsentry": {"()": formatter}},
        "handlers": {"default": {"()": "finsentry.logging.StderrHandler", "formatter": "finsentry"}},
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {name: {"level": quiet} for name in NOISY},
    }
