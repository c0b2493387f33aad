"""The stored form of records, shared by every backend so they return the same dicts."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from finsentry.records import Label, ScoredDocument

_WORD = re.compile(r"[^\W_]+\*?")  # letters and digits; "_" separates words as in both indexes


def stored_document(record: ScoredDocument, stored_at: datetime) -> dict[str, Any]:
    """The record as JSON-ready dict plus the time the store accepted it."""
    doc = record.model_dump(mode="json")
    doc["stored_at"] = stored_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return doc


def ingest_to_stored_s(doc: dict[str, Any]) -> float:
    """Seconds from ingest (epoch `ingested_at`) to the store's acceptance (ISO `stored_at`)."""
    return stored_epoch(doc) - float(doc["ingested_at"])


def stored_epoch(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["stored_at"].replace("Z", "+00:00")).timestamp()


def encode(doc: dict[str, Any]) -> bytes:
    """Strict UTF-8 JSON, or ValueError naming the field at fault (e.g. a lone surrogate in text)."""
    try:
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        where = _unencodable(doc, "") or "a string"
        raise ValueError(f"{where} is not valid UTF-8 ({exc.reason})") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not encodable as JSON: {exc}") from None


def _unencodable(value: Any, path: str) -> str | None:
    """Path of the first string (or key) that UTF-8 cannot encode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{path or 'value'} (character {exc.start})"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unencodable(str(key), f"{path}.<key>") or _unencodable(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unencodable(item, f"{path}[{i}]")
            if found:
                return found
    return None


def label_id(label: Label) -> str:
    """One label per document and analyst: a later correction replaces the earlier one."""
    raw = f"{label.doc_id}\x1f{label.analyst or ''}"
    return hashlib.sha1(raw.encode()).hexdigest()[:24]


def version_ms(when: datetime) -> int:
    """A time as an ordering version (milliseconds since the epoch)."""
    return int(when.timestamp() * 1000)


def day_start(when: datetime) -> datetime:
    when = when.astimezone(timezone.utc)
    return datetime(when.year, when.month, when.day, tzinfo=timezone.utc)


def bucket_start(epoch_s: float, interval_s: int) -> datetime:
    start = (int(epoch_s) // interval_s) * interval_s
    return datetime.fromtimestamp(start, timezone.utc)


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """Start of the oldest UTC day kept when the last `days` days before today are retained."""
    if days < 0:
        raise ValueError(f"retention days must be >= 0, not {days}")
    return day_start(now or datetime.now(timezone.utc)) - timedelta(days=days)


def search_terms(text: str) -> list[str]:
    """The words of a full-text query, each optionally ending in '*' (prefix).

    Both backends build their query from these words only, so operators or quotes in user
    input can neither break the query syntax nor make the backends disagree.
    """
    return [w.lower() for w in _WORD.findall(text)]
