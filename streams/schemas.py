"""JSON Schemas of every topic's payload, generated from the records the agents parse.

Other teams producing to docs.raw, or consuming docs.scored, alerts or dlq, validate
against these instead of reading Python. `finsentry schemas -o docs/schemas` writes one file
per topic (named without the deployment's FINSENTRY_TOPIC_PREFIX); a test keeps the
committed files equal to what the records generate. Schemas describe what the agents
accept (pydantic's validation mode); every record finsentry writes validates against its
topic's schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Union

from pydantic import TypeAdapter

from finsentry.alerting.observations import Observation, ObservationGroup, Tick
from finsentry.records import Alert, DeadLetter, Document, Label, ModelUpdate, ScoredDocument, ValidDocument

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

TOPICS: dict[str, tuple[Any, str]] = {
    "docs.raw": (
        Document,
        "A document as scrapers and other producers publish it (JSON, UTF-8). Unknown fields are refused.",
    ),
    "docs.valid": (ValidDocument, "A validated document with its stable id, UTC publication time and ingest time."),
    "docs.scored": (ScoredDocument, "A scored document: sentiment, topic, entities, the model version that scored it."),
    "alerts.observations": (
        Union[ObservationGroup, Tick, Observation],
        "Internal to the detector: the observations of one scope from one batch, or a clock tick.",
    ),
    "alerts": (
        Alert,
        "One update of an alert episode; the same id is re-sent as the episode grows and when it resolves.",
    ),
    "dlq": (DeadLetter, "A payload a stage refused, with the reason and the payload itself (or its base64)."),
    "labels": (Label, "An analyst's corrected label for a stored document."),
    "model-updates": (ModelUpdate, "A model version promoted or rolled back; every worker swaps to it."),
}


def topic_schema(topic: str) -> dict[str, Any]:
    record, description = TOPICS[topic]
    schema = TypeAdapter(record).json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:finsentry:schema:{topic}",
        "title": f"finsentry topic <prefix>{topic}",
        "description": description,
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
        **({"x-record": schema["title"]} if "title" in schema else {}),
    }


def render() -> dict[str, str]:
    """File name → content, for every topic."""
    return {
        f"{topic}.schema.json": json.dumps(topic_schema(topic), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
        for topic in TOPICS
    }


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def differences(directory: Path) -> list[str]:
    """Files in `directory` that are missing or differ from what the records generate."""
    out = []
    for name, content in render().items():
        path = directory / name
        if not path.is_file():
            out.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != content:
            out.append(f"{path}: differs from the records")
    return out
