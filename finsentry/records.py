"""The records that travel between agents, as pydantic models serialised to JSON.

Topics carry raw bytes and the agents parse them here, so a malformed payload becomes a
`DeadLetter` with a reason instead of a deserialisation crash inside the consumer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finsentry.errors import FinsentryError
from finsentry.labels import TOPIC_LABELS, topic_index
from finsentry.textnorm import normalize

Kind = Literal["news", "review", "social", "filing"]
SentimentLabel = Literal["negative", "neutral", "positive"]

_WORD = re.compile(r"[a-z0-9]+")
# The tags outlets and wires put around a syndicated headline: "BREAKING: ", "UPDATE 1-",
# "Markets: " before it; " - Reuters", " | Zero Hedge", " (Bloomberg)", " via @desk" after it.
_LEADING_TAG = re.compile(
    r"^(?:breaking(?: news)?|update(?: ?\d+)?|exclusive|wrapup(?: ?\d+)?|rpt|refile|corrected|urgent|flash"
    r"|just in|developing|analysis|factbox|markets?|live|video|watch)\s*[:\-–—|]\s*",
    re.IGNORECASE,
)
_TRAILING_TAG = re.compile(
    r"(?:\s*[(\[][^()\[\]]{1,40}[)\]]|\s+[-–—|]\s+(?:\S+\s+){0,3}\S+|\s+via\s+@?\S+)\s*$", re.IGNORECASE
)
# Tags sit around a headline: past this many characters the key's first words are settled,
# and a bounded input keeps the key cheap for any text (it is computed before validation).
_HEADLINE_CHARS = 400
_MAX_TAG_ROUNDS = 4


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def story_headline(text: str) -> str:
    """The headline (its first 400 characters) without the outlet and wire tags around it,
    removed a few at a time as long as at least three words remain."""
    text = text[:_HEADLINE_CHARS]
    for _ in range(_MAX_TAG_ROUNDS):
        stripped = _TRAILING_TAG.sub("", _LEADING_TAG.sub("", text)).strip()
        if stripped == text or len(_WORD.findall(stripped.lower())) < 3:
            break
        text = stripped
    return text


def story_key(title: str | None, text: str) -> str:
    """Partition key that keeps the copies of one story together.

    Syndicated copies carry the same headline with an outlet's tags around it, so the key
    is a hash of the first 12 words of the title (or text when there is no title) once
    links, tags, case and punctuation are gone. Only partitioning depends on it: stories
    that happen to share a key just share a partition.
    """
    words = _WORD.findall(story_headline(normalize(title or text)).lower())[:12]
    return hashlib.sha1(" ".join(words).encode()).hexdigest()[:16]


def document_id(source: str, url: str | None, title: str | None, text: str) -> str:
    payload = "\x1f".join([source, url or "", title or "", text])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class Document(BaseModel):
    """A document as scrapers publish it to docs.raw."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    id: str | None = Field(None, min_length=1, max_length=200)
    source: str = Field(..., min_length=1, max_length=200)
    kind: Kind = "news"
    title: str | None = Field(None, max_length=2000)
    text: str
    url: str | None = Field(None, max_length=4000)
    published_at: datetime | None = None
    lang: str | None = Field(None, max_length=16)
    rating: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_present(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("text is empty")
        return value

    @field_validator("published_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("published_at has no time zone; send ISO 8601 with Z or an offset")
        return value.astimezone(timezone.utc)

    def with_defaults(self, received_at: datetime | None = None) -> "Document":
        """Fill the stable id and, when missing, the publication time with the time the
        document was received (the Kafka message timestamp in the worker): a re-delivered
        message gets the same time again, so it lands on the same record. Copies."""
        return self.model_copy(
            update={
                "id": self.id or document_id(self.source, self.url, self.title, self.text),
                "published_at": self.published_at or received_at or utcnow(),
            }
        )

    @property
    def key(self) -> str:
        return story_key(self.title, self.text)


class Sentiment(BaseModel):
    label: SentimentLabel
    probabilities: dict[str, float]
    score: float  # p_positive - p_negative, in [-1, 1]


class Topic(BaseModel):
    label: str
    probability: float


class ValidDocument(Document):
    """A validated document on its way to scoring, with its ingest time for latency."""

    id: str
    published_at: datetime
    ingested_at: float = Field(default_factory=time.time)  # epoch seconds; producer or broker time


class ScoredDocument(ValidDocument):
    sentiment: Sentiment
    topic: Topic
    entities: list[str] = Field(default_factory=list)
    model_version: str
    scored_at: float = Field(default_factory=time.time)
    dup_of: str | None = None
    explanation: list[tuple[str, float]] | None = None


class Evidence(BaseModel):
    id: str
    title: str | None = None
    url: str | None = None
    source: str | None = None
    score: float
    published_at: datetime | None = None
    explanation: list[tuple[str, float]] | None = None


class Alert(BaseModel):
    """One episode of a negative-share spike on a scope, as of one update.

    The detector re-emits the same `id` as the episode grows (`update` counts up) and once
    more with status "resolved" when it ends, so stores upsert it and notifiers can tell a
    new alert from an update. Every time is event time (from `published_at`), so replaying
    the same records reproduces the same alerts.
    """

    id: str  # scope + key + episode start: stable across updates of one episode
    scope: Literal["global", "topic", "entity"]
    key: str
    severity: Literal["warning", "critical"]
    status: Literal["firing", "resolved"] = "firing"
    change: Literal["opened", "escalated", "updated", "reopened", "resolved"] = "opened"
    update: int = 0  # sequence number within the episode: (id, update) is unique
    episode_start: datetime
    ended_at: datetime | None = None  # set when status is "resolved"
    window_start: datetime  # the peak window of the episode (for "cusum": the drift run)
    window_end: datetime
    negative_share: float
    baseline: float
    statistic: float  # z-score (or CUSUM log-likelihood ratio when method == "cusum")
    method: Literal["z", "cusum"] = "z"
    volume: int  # distinct stories in the window (near-duplicates counted once)
    baseline_volume: float  # stories the baseline expects in a window of that length
    duplicates: int = 0  # near-duplicate copies in the window, not counted in volume
    time_scale_s: int | None = None  # length of the window test that fired (None for a CUSUM drift run)
    model_version: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)  # event time of this update
    evidence: list[Evidence] = Field(default_factory=list)
    late_records: int = 0  # records of this scope that came after their bucket closed: not counted above

    @staticmethod
    def make_id(scope: str, key: str, episode_start: datetime) -> str:
        raw = f"{scope}\x1f{key}\x1f{episode_start.isoformat()}"
        return hashlib.sha1(raw.encode()).hexdigest()[:24]

    @property
    def summary(self) -> str:
        name = "z" if self.method == "z" else "CUSUM"
        state = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        over = f" in {self.time_scale_s // 60} min" if self.time_scale_s else ""
        return (
            f"{state}: negative share on {self.scope} '{self.key}' "
            f"{self.negative_share:.0%} vs baseline {self.baseline:.0%} "
            f"({self.volume} stories{over}, {name}={self.statistic:.1f})"
        )


# A dead letter carries at most this much of its payload: escaped as JSON (up to six bytes
# per byte, for control characters) it still fits a Kafka record of 1 MB, so a huge or
# hostile payload can always be dead-lettered. The digest and size describe the whole.
DEAD_LETTER_MAX_RAW_BYTES = 128 * 1024


class DeadReason(str, Enum):
    """Why a record was dead-lettered, as the bounded `reason` label of
    finsentry_documents_dead_lettered_total. The letter itself carries the readable text."""

    # validate: the raw payload
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    TEXT_SIZE = "text_size"
    CONTROL_CHARS = "control_chars"
    FUTURE_TIME = "future_time"
    SCHEMA = "schema"  # a field missing or of the wrong type, and anything not named above
    # the later stages
    INVALID_RECORD = "invalid_record"
    INVALID_LABEL = "invalid_label"
    UNKNOWN_DOCUMENT = "unknown_document"
    STORE_REJECTED = "store_rejected"
    SCORING_FAILED = "scoring_failed"


class InvalidPayload(FinsentryError, ValueError):
    """A payload that is not a document: the readable reason, and its kind for the metric."""

    def __init__(self, kind: DeadReason, reason: str):
        super().__init__(reason)
        self.kind = kind


class DeadLetter(BaseModel):
    reason: str
    stage: str  # validate | score | index | detect | notify
    raw: str  # the payload as text, or base64 when it is not UTF-8 (cut at DEAD_LETTER_MAX_RAW_BYTES)
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    raw_size: int | None = None  # bytes of the whole payload
    raw_sha256: str | None = None  # of the whole payload, also when `raw` is cut
    raw_truncated: bool = False
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    at: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(cls, payload: bytes | str, reason: str, stage: str, **where: Any) -> "DeadLetter":
        data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        cut = data[:DEAD_LETTER_MAX_RAW_BYTES]
        whole = dict(
            raw_size=len(data), raw_sha256=hashlib.sha256(data).hexdigest(), raw_truncated=len(cut) < len(data)
        )
        try:
            return cls(reason=reason, stage=stage, raw=cut.decode("utf-8"), **whole, **where)
        except UnicodeDecodeError:
            return cls(
                reason=reason, stage=stage, raw=base64.b64encode(cut).decode(), raw_encoding="base64", **whole, **where
            )


class Label(BaseModel):
    """Analyst feedback: a corrected label for a stored document."""

    doc_id: str = Field(..., min_length=1)
    sentiment: SentimentLabel | None = None
    topic: str | None = None
    analyst: str | None = None
    at: datetime = Field(default_factory=utcnow)
    text: str | None = None  # filled from the store when the label is recorded

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, value: str | None) -> str | None:
        if value is None:
            return None

        return TOPIC_LABELS[topic_index(value)]


class ModelUpdate(BaseModel):
    action: Literal["promote", "rollback"]
    version: str
    at: datetime = Field(default_factory=utcnow)


def describe_validation_error(exc: ValidationError) -> str:
    """One line a person can act on: 'text: text is empty; kind: Input should be ...'."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "record"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_document(payload: bytes, max_text_bytes: int) -> Document:
    """bytes → Document, or ValueError with a readable reason."""
    try:
        raw = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(DeadReason.INVALID_UTF8, f"payload is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise InvalidPayload(DeadReason.MALFORMED_JSON, message) from None
    except RecursionError:  # e.g. ten thousand nested arrays: refuse, never crash the reader
        message = "malformed JSON: nested more deeply than the parser allows"
        raise InvalidPayload(DeadReason.MALFORMED_JSON, message) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InvalidPayload(DeadReason.MALFORMED_JSON, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        message = f"a document must be a JSON object, got {type(data).__name__}"
        raise InvalidPayload(DeadReason.NOT_AN_OBJECT, message)
    text = data.get("text")
    if isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > max_text_bytes:
        message = f"text is {len(text.encode('utf-8', 'surrogatepass'))} bytes, over the limit of {max_text_bytes}"
        raise InvalidPayload(DeadReason.TEXT_SIZE, message)
    try:
        doc = Document.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(DeadReason.SCHEMA, describe_validation_error(exc)) from None
    if "\x00" in doc.text:
        raise InvalidPayload(DeadReason.CONTROL_CHARS, "text contains NUL characters")
    return doc
