"""File replay: documents from JSONL or CSV, paced by their own timestamps.

Every input line becomes a `Line`: a parsed `Document`, or the raw payload plus the reason
it is not one. Bad lines are never skipped here — the caller decides (publish them raw so the
worker dead-letters them, or stop). Pacing follows the gaps between ``published_at`` values
divided by a speed factor; ``rebase`` shifts timestamps so that the first one is "now".
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field

from finsentry.errors import FinsentryError
from finsentry.ingest.producer import DeliveryError
from finsentry.ingest.seen import identity_keys
from finsentry.ingest.source import BaseSource, Item
from finsentry.records import Document, parse_document

log = logging.getLogger("finsentry.ingest.replay")

Format = Literal["jsonl", "csv"]
CSV_COLUMNS = tuple(Document.model_fields)
_BOM = codecs.BOM_UTF8


class ReplayFormatError(FinsentryError, ValueError):
    """The input as a whole cannot be read (e.g. an unknown CSV column)."""


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the input (CSV: where the record ends)
    raw: bytes  # what a worker would receive for this line
    doc: Document | None = None
    reason: str | None = None  # why raw is not a document

    @property
    def ok(self) -> bool:
        return self.doc is not None


def detect_format(name: str | None, head: bytes) -> Format:
    """From the file name when it says, else from the first non-blank byte ('{' → JSONL)."""
    lowered = (name or "").lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if head.lstrip(_BOM + b" \t\r\n")[:1] == b"{" else "csv"


def _parse(number: int, raw: bytes, max_text_bytes: int) -> Line:
    try:
        return Line(number, raw, doc=parse_document(raw, max_text_bytes))
    except ValueError as exc:
        return Line(number, raw, reason=str(exc))


def read_jsonl(lines: Iterable[bytes], max_text_bytes: int) -> Iterator[Line]:
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        raw = raw.rstrip(b"\r\n")
        if raw.strip():  # blank lines separate nothing and carry nothing
            yield _parse(number, raw, max_text_bytes)


def _row_payload(row: dict[str, str]) -> tuple[dict, str | None]:
    """A CSV row as the JSON object a document would be; empty cells are absent."""
    data: dict = {k: v for k, v in row.items() if v not in ("", None)}
    if "meta" in data:
        try:
            data["meta"] = json.loads(data["meta"])
        except json.JSONDecodeError as exc:
            return data, f"meta: not JSON ({exc.msg})"
    return data, None


def read_csv(stream: IO[bytes], max_text_bytes: int) -> Iterator[Line]:
    """CSV with a header row naming Document fields (id, source, kind, title, text, url,
    published_at, lang, rating, meta — meta as a JSON object)."""
    # surrogateescape keeps undecodable bytes visible, so such a row is reported, not mangled
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.DictReader(text)
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if unknown or "text" not in header:
            problem = f"unknown CSV column(s): {', '.join(unknown)}" if unknown else "no 'text' column"
            raise ReplayFormatError(f"{problem}; the header must name Document fields: {', '.join(CSV_COLUMNS)}")
        for row in reader:
            yield _csv_line(reader.line_num, row, max_text_bytes)
    finally:
        text.detach()  # the caller owns the byte stream (it may be stdin)


def _csv_line(number: int, row: dict, max_text_bytes: int) -> Line:
    cells = [v for v in row.values() if isinstance(v, str)]
    try:
        "".join(cells).encode("utf-8")
    except UnicodeEncodeError:
        return Line(number, ",".join(cells).encode("utf-8", "surrogateescape"), reason="row is not valid UTF-8")
    if None in row:  # more cells than header columns
        extra = row.pop(None)
        return Line(number, json.dumps(row).encode(), reason=f"{len(extra)} cell(s) more than the header has")
    data, problem = _row_payload(row)
    raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Line(number, raw, reason=problem) if problem else _parse(number, raw, max_text_bytes)


def read_documents(
    stream: IO[bytes], fmt: Format | None = None, name: str | None = None, max_text_bytes: int = 100_000
) -> Iterator[Line]:
    """Every line of a binary stream as a `Line`, in order."""
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    fmt = fmt or detect_format(name, stream.peek(512)[:512])
    return read_csv(stream, max_text_bytes) if fmt == "csv" else read_jsonl(stream, max_text_bytes)


class Rebaser:
    """Shifts every published_at by one offset: the first timestamp seen becomes `now`.
    Ids do not depend on published_at, so they are unchanged."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime.now(timezone.utc)
        self.offset: timedelta | None = None

    @classmethod
    def ending_at(cls, end: datetime, docs: Iterable[Document]) -> Rebaser:
        """A rebaser that moves the newest of `docs` to `end`: a recorded stream that ends now."""
        rebaser = cls(end)
        stamps = [doc.published_at for doc in docs if doc.published_at is not None]
        if stamps:
            rebaser.offset = end - max(stamps)
        return rebaser

    def __call__(self, doc: Document) -> Document:
        if doc.published_at is None:
            return doc
        if self.offset is None:
            self.offset = self.now - doc.published_at
        return doc.model_copy(update={"published_at": doc.published_at + self.offset})


class Pacer:
    """How long to wait before each document so they leave at their event-time gaps divided
    by `speed`. Anchored to the first timestamp, so time spent publishing is not added on top.
    speed 0 or None: no waiting. Documents without a timestamp or earlier than the anchor
    leave at once."""

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic):
        if speed is not None and speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed or 0.0
        self.clock = clock
        self._anchor: tuple[datetime, float] | None = None

    def delay(self, published_at: datetime | None) -> float:
        if not self.speed or published_at is None:
            return 0.0
        now = self.clock()
        if self._anchor is None:
            self._anchor = (published_at, now)
            return 0.0
        first, started = self._anchor
        due = started + (published_at - first).total_seconds() / self.speed
        return max(0.0, due - now)


def pacing_schedule(timestamps: Iterable[datetime | None], speed: float | None, work_s: float = 0.0) -> list[float]:
    """The sleep before each document when publishing one takes `work_s` seconds."""
    clock = _VirtualClock()
    pacer = Pacer(speed, clock=clock)
    sleeps = []
    for ts in timestamps:
        wait = pacer.delay(ts)
        sleeps.append(wait)
        clock.t += wait + work_s
    return sleeps


@dataclass
class _VirtualClock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t


class BadInput(FinsentryError, ValueError):
    def __init__(self, line: Line):
        self.line = line
        super().__init__(f"line {line.number}: {line.reason}")


@dataclass
class ReplaySummary:
    published: int = 0  # acknowledged by the broker (malformed lines sent raw included)
    failed: int = 0  # not acknowledged
    malformed: int = 0  # lines that are not documents, sent raw for the worker to dead-letter
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _ok(self, _meta) -> None:
        with self._lock:
            self.published += 1

    def _failed(self, _exc) -> None:
        with self._lock:
            self.failed += 1

    def line(self) -> str:
        text = f"published {self.published}, failed {self.failed}"
        if self.malformed:
            text += f" ({self.malformed} malformed line(s) sent raw to be dead-lettered)"
        return text


def replay(
    lines: Iterable[Line],
    producer,
    *,
    speed: float | None = None,
    rebase: bool = False,
    strict: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[Line], None] | None = None,
) -> ReplaySummary:
    """Publish every line through a DocumentProducer (see producer.py).

    Good lines are published as documents, bad ones raw (the worker dead-letters them with
    its reason) — or, with strict, the first bad line raises BadInput after what came before
    it was flushed. Returns once the broker acknowledged or failed every record.
    """
    summary = ReplaySummary()
    pacer = Pacer(speed, clock=clock)
    shift = Rebaser() if rebase else None

    def track(future) -> None:
        future.add_callback(summary._ok)
        future.add_errback(summary._failed)

    try:
        for line in lines:
            if line.doc is None:
                if strict:
                    raise BadInput(line)
                summary.malformed += 1
                send = lambda line=line: producer.publish_raw(line.raw)  # noqa: E731
            else:
                doc = shift(line.doc) if shift else line.doc
                wait = pacer.delay(doc.published_at)
                if wait > 0:
                    sleep(wait)
                send = lambda doc=doc: producer.publish(doc)  # noqa: E731
            try:
                track(send())
            except DeliveryError:
                summary.failed += 1  # already counted and logged by the producer
            if progress:
                progress(line)
    finally:
        try:
            producer.flush()
        except DeliveryError:
            pass  # each failure is in summary.failed through its future
    return summary


class ReplayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speed: float = Field(0.0, ge=0)  # 0: as fast as possible
    rebase: bool = False
    format: Format | None = None


class ReplaySource(BaseSource):
    """A file as a scraper source (type: replay): each poll re-reads it; the seen-set makes
    later polls publish only lines added since. Pacing and rebasing happen in `complete`, so
    they start at the first *new* document and a restart does not wait through old ones."""

    def __init__(
        self,
        name: str,
        path: Path,
        interval_s: float,
        options: ReplayOptions | None = None,
        *,
        max_text_bytes: int = 100_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name, self.path, self.interval_s = name, Path(path), interval_s
        self.options = options or ReplayOptions()
        self.max_text_bytes = max_text_bytes
        self._sleep = sleep
        self._pacer = Pacer(self.options.speed, clock=clock)
        self._rebase = Rebaser() if self.options.rebase else None
        self._reported: set[int] = set()

    async def poll(self) -> AsyncIterator[Item]:
        with self.path.open("rb") as stream:
            for line in read_documents(stream, self.options.format, self.path.name, self.max_text_bytes):
                if line.doc is None:
                    if line.number not in self._reported:  # once per line, not once per poll
                        self._reported.add(line.number)
                        log.warning(
                            "not a document source=%s file=%s line=%d reason=%s",
                            self.name,
                            self.path,
                            line.number,
                            line.reason,
                        )
                    continue
                doc = line.doc
                yield Item(doc, identity_keys(self.name, url=doc.url, guid=doc.id, title=doc.title, text=doc.text))

    async def complete(self, item: Item) -> Document:
        doc = self._rebase(item.doc) if self._rebase else item.doc
        wait = self._pacer.delay(doc.published_at)
        if wait > 0:
            await self._sleep(wait)
        return doc
