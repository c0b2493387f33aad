import json

from finsentry.records import DeadLetter, ValidDocument


async def test_good_document_goes_on_with_stable_id_and_ingest_time(harness):
    h = harness(("validate",))
    payload = json.dumps(
        {"source": "wire", "title": "Oil falls", "text": "Oil falls 3%", "published_at": "2026-01-05T13:00:00+01:00"}
    ).encode()
    async with h.agent("validate").test_context() as agent:
        await agent.put(payload, key=b"k", timestamp=1767614400.5)
        await agent.put(payload, key=b"k", timestamp=1767614401.0)
        first, second = [ValidDocument.model_validate_json(v) for v in await h.read("valid", 2)]
    assert first.id == second.id and len(first.id) == 32
    assert first.published_at.isoformat() == "2026-01-05T12:00:00+00:00"
    assert first.ingested_at == 1767614400.5
    assert h.empty("dlq")


async def test_bad_payloads_are_dead_lettered_with_reason_and_raw_bytes(harness):
    h = harness(("validate",))
    bad = [
        b"{not json",
        b"\xff\xfe\x00",
        json.dumps({"source": "s"}).encode(),
        json.dumps({"source": "s", "text": "x", "published_at": "2026-01-05T13:00:00"}).encode(),
        json.dumps({"source": "s", "text": "x", "published_at": "2099-01-05T13:00:00Z"}).encode(),
    ]
    async with h.agent("validate").test_context() as agent:
        for payload in bad:
            await agent.put(payload, key=b"k")
        await agent.put(json.dumps({"source": "s", "text": "fine"}).encode(), key=b"k")
        letters = [DeadLetter.model_validate_json(v) for v in await h.read("dlq", len(bad))]
        assert len(await h.read("valid", 1)) == 1
    reasons = [letter.reason for letter in letters]
    assert reasons[0].startswith("malformed JSON")
    assert "not valid UTF-8" in reasons[1]
    assert reasons[2] == "text: Field required"
    assert "no time zone" in reasons[3]
    assert "after the document was received" in reasons[4]
    assert letters[1].raw_encoding == "base64" and letters[0].raw == "{not json"
    assert all(letter.stage == "validate" for letter in letters)
