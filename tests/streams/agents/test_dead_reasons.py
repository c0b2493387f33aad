"""Dead-letter reasons are typed (DeadReason) instead of read back from the start of the
message; the metric's label values and the letter's text stay what they were."""

from __future__ import annotations

import time

import pytest

from finsentry.records import DeadReason, InvalidPayload
from finsentry.streams.agents.validate import reason_kind, validate_payload

FUTURE = "2999-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "payload, kind, starts",
    [
        (b"\xff\xfe", DeadReason.INVALID_UTF8, "payload is not valid UTF-8"),
        (b"{not json", DeadReason.MALFORMED_JSON, "malformed JSON"),
        (b"[1, 2]", DeadReason.NOT_AN_OBJECT, "a document must be a JSON object"),
        (b'{"source": "s", "text": "' + b"x" * 200 + b'"}', DeadReason.TEXT_SIZE, "text is 200 bytes"),
        (b'{"source": "s", "text": "a\\u0000b"}', DeadReason.CONTROL_CHARS, "text contains NUL"),
        (
            b'{"source": "s", "text": "t", "published_at": "' + FUTURE.encode() + b'"}',
            DeadReason.FUTURE_TIME,
            "published_at 2999",
        ),
        (b'{"source": "s"}', DeadReason.SCHEMA, "text: Field required"),
        (b'{"source": "s", "text": "t", "published_at": "2024-01-01T00:00:00"}', DeadReason.SCHEMA, "published_at:"),
    ],
)
def test_each_refusal_has_its_kind_and_its_readable_reason(payload, kind, starts):
    with pytest.raises(InvalidPayload) as raised:
        validate_payload(payload, time.time(), max_text_bytes=100)
    assert reason_kind(raised.value) is kind
    assert str(raised.value).startswith(starts)
    assert isinstance(raised.value, ValueError)  # callers that caught ValueError still do


def test_the_metric_labels_are_the_ones_dashboards_and_rules_know():
    assert {k.value for k in DeadReason} >= {
        "invalid_utf8",
        "malformed_json",
        "not_an_object",
        "text_size",
        "control_chars",
        "future_time",
        "schema",
        "invalid_record",
        "invalid_label",
        "unknown_document",
        "store_rejected",
        "scoring_failed",
    }


def test_an_unexpected_error_counts_as_schema():
    assert reason_kind(RuntimeError("boom")) is DeadReason.SCHEMA
