"""`classify` scores a line as the pipeline's score agent scores a document."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

from finsentry.models.classify import classify_stream
from finsentry.records import ValidDocument
from finsentry.streams.agents.score import score_documents
from finsentry.textnorm import model_input

ALIASES = "ticker,name,aliases\nZBX,Zorblax Industries,Zorblax Industries;Zorblax\nAAPL,Apple Inc.,Apple\n"


def test_classify_uses_the_pipelines_input_and_entity_list(engine, tmp_path):
    aliases = tmp_path / "aliases.csv"
    aliases.write_text(ALIASES)
    title = "Zorblax shares slump after profit warning"
    lead = "The widget maker cut its outlook for the third time this year."
    docs = [
        {"title": title, "text": f"{title}. {lead} " + "Analysts expect further cuts to estimates. " * 60},
        {"text": "$AAPL rallies after record iPhone sales https://t.co/abc"},
        {"title": "Zorblax Industries beats estimates", "text": "Revenue rose 12% on strong demand."},
    ]
    out = io.StringIO()
    n = classify_stream(
        io.StringIO("".join(json.dumps(d) + "\n" for d in docs)), out, engine=engine, entities_csv=aliases
    )
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(records) == len(docs)

    now = datetime.now(timezone.utc)
    valid = [ValidDocument(id=str(i), source="test", published_at=now, **d) for i, d in enumerate(docs)]
    scored = score_documents(engine, valid, entities_csv=aliases)
    for record, doc in zip(records, scored):
        assert record["text"] == model_input(doc.title, doc.text)
        assert record["sentiment"] == doc.sentiment.model_dump()
        assert record["topic"] == doc.topic.model_dump()
        assert record["entities"] == doc.entities
    # title + lead, not title + the whole body with the title repeated
    assert records[0]["text"].startswith(f"{title}. {lead}") and len(records[0]["text"]) < 1300
    # FINSENTRY_ENTITY_ALIASES's list replaces the shipped one: only it knows Zorblax
    assert [r["entities"] for r in records] == [["ZBX"], ["AAPL"], ["ZBX"]]


MIXED = [
    "Oil slumps as OPEC+ signals higher output",
    "{bad json",
    '{"text": 5}',
    '{"title": "Fed holds", "text": "Rates steady as inflation cools"}',
    '["a", "list"]',
    '{"title": "only a title"}',
    '{"text": ""}',
]


def test_malformed_lines_are_reported_with_their_numbers_and_not_scored(engine):
    out, errors = io.StringIO(), []
    n = classify_stream(io.StringIO("\n".join(MIXED) + "\n"), out, engine=engine, on_error=errors.append)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(records) == 3
    assert [r["text"] for r in records] == [
        "Oil slumps as OPEC+ signals higher output",
        "Fed holds. Rates steady as inflation cools",
        "only a title",
    ]
    assert [e.number for e in errors] == [2, 3, 5, 7]
    assert "malformed JSON" in str(errors[0]) and str(errors[0]).startswith("line 2: ")
    assert '"text" must be a string, got int' in str(errors[1])
    assert "must be an object" in str(errors[2]) and 'no "text"' in str(errors[3])


def test_strict_stops_at_the_first_malformed_line(engine):
    out, errors = io.StringIO(), []
    n = classify_stream(io.StringIO("\n".join(MIXED) + "\n"), out, engine=engine, on_error=errors.append, strict=True)
    assert n == 1 and [e.number for e in errors] == [2]
