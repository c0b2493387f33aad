"""`classify` scores a line as the pipeline's score agent scores a document."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

from finsentry.models.classify import classify_stream
from finsentry.models.textnorm import model_input
from finsentry.streams.agents.score import score_documents
from finsentry.streams.records import ValidDocument

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
    n = classify_stream(io.StringIO("".join(json.dumps(d) + "\n" for d in docs)), out, engine=engine,
                        entities_csv=aliases)
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
