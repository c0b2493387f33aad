"""The committed JSON Schemas under docs/schemas are the ones the records generate, and
name every field the records write."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from finsentry.records import Alert, DeadLetter, Document, Label, ModelUpdate, ScoredDocument, Sentiment, Topic
from finsentry.streams import schemas

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "schemas"
NOW = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def test_committed_schemas_match_the_records():
    assert schemas.differences(COMMITTED) == [], "run: finsentry schemas --output docs/schemas"
    assert sorted(p.name for p in COMMITTED.glob("*.schema.json")) == sorted(schemas.render())


def test_check_command_fails_on_a_stale_file(tmp_path):
    schemas.write(tmp_path)
    ok = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", "schemas", "--check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "docs.raw.schema.json"
    stale.write_text(stale.read_text().replace('"source"', '"origin"'))
    out = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", "schemas", "--check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "docs.raw.schema.json: differs" in out.stderr


def fields_of(schema: dict) -> tuple[set[str], set[str]]:
    return set(schema["properties"]), set(schema.get("required", []))


def test_every_field_a_record_writes_is_in_its_schema():
    scored = ScoredDocument(
        id="d1",
        source="wire",
        text="Oil slumps",
        published_at=NOW,
        sentiment=Sentiment(
            label="negative", probabilities={"negative": 0.9, "neutral": 0.05, "positive": 0.05}, score=-0.85
        ),
        topic=Topic(label="Energy | Oil", probability=0.9),
        model_version="m1",
    )
    samples = {
        "docs.raw": Document(source="wire", text="Oil slumps"),
        "docs.scored": scored,
        "alerts": Alert(
            id="a",
            scope="topic",
            key="Energy",
            severity="warning",
            episode_start=NOW,
            window_start=NOW,
            window_end=NOW,
            negative_share=0.6,
            baseline=0.2,
            statistic=5,
            volume=30,
            baseline_volume=25,
        ),
        "dlq": DeadLetter.of(b"{", "malformed JSON", "validate"),
        "labels": Label(doc_id="d1", sentiment="negative"),
        "model-updates": ModelUpdate(action="promote", version="m2"),
    }
    for topic, record in samples.items():
        properties, required = fields_of(json.loads((COMMITTED / f"{topic}.schema.json").read_text()))
        written = set(json.loads(record.model_dump_json()))
        assert written <= properties and required <= written, topic
    observations = json.loads((COMMITTED / "alerts.observations.schema.json").read_text())
    assert len(observations["anyOf"]) == 3  # a group, a tick, or a single observation
