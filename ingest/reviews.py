"""Review sources configured, not coded: a URL, where the reviews are in the answer, and
where each field is inside one review.

JSON: `items` is a dotted path to the list ("data.reviews"; numbers index lists; empty =
the answer itself) and each field a dotted path inside one review ("user.name").
HTML: `items` is a CSS selector of one review element and each field a CSS selector inside
it ("span.stars"), "selector@attr" for an attribute ("a.permalink@href"), "@attr" for one of
the review element itself.
Fields: text (required), title, rating, author, date, id, url. kind defaults to "review";
the rating is kept as a number.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, field_validator

from finsentry.ingest.conditional import ConditionalGetSource
from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.htmltext import html_to_text
from finsentry.ingest.seen import identity_keys
from finsentry.ingest.source import Item, MalformedSource
from finsentry.records import Document, Kind

log = logging.getLogger("finsentry.ingest.reviews")

FIELDS = ("text", "title", "rating", "author", "date", "id", "url")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


class ReviewOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "html"] = "json"
    items: str = ""
    fields: dict[str, str]
    kind: Kind = "review"
    lang: str | None = None

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        if "text" not in value:
            raise ValueError("the 'text' field is required")
        return value


def dotted(data: Any, path: str) -> Any:
    """data["a"]["b"][0] for "a.b.0"; None when the path does not exist."""
    for part in filter(None, path.split(".")):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.lstrip("-").isdigit() and -len(data) <= int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def parse_rating(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    if "★" in text:
        return float(text.count("★"))
    match = _NUMBER.search(text)
    return float(match.group().replace(",", ".")) if match else None


def parse_date(value: Any) -> datetime | None:
    """ISO 8601, RFC 2822 or epoch seconds/milliseconds; naive times are taken as UTC."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    text = str(value).strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def json_records(body: bytes, options: ReviewOptions, url: str, charset: str | None = None) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedSource(f"{url} is not JSON: {exc}") from None
    items = dotted(data, options.items)
    if not isinstance(items, list):
        raise MalformedSource(f"{url}: '{options.items or '(root)'}' is not a list of reviews")
    records = []
    for item in items:
        if isinstance(item, dict):
            records.append({name: dotted(item, path) for name, path in options.fields.items()})
    return records


def html_records(body: bytes, options: ReviewOptions, url: str, charset: str | None = None) -> list[dict[str, Any]]:
    import lxml.html
    from lxml.etree import ParserError

    try:  # decode ourselves: lxml guesses Latin-1 for bytes without a <meta charset>
        root = lxml.html.fromstring(body.decode(charset or "utf-8", "replace"))
    except (ParserError, ValueError, LookupError):
        try:
            root = lxml.html.fromstring(body)
        except (ParserError, ValueError) as exc:
            raise MalformedSource(f"{url} is not HTML: {exc}") from None
    if not options.items:
        raise MalformedSource("an HTML review source needs an `items` CSS selector")
    return [
        {name: _select(element, spec) for name, spec in options.fields.items()}
        for element in root.cssselect(options.items)
    ]


def _select(element: Any, spec: str) -> str | None:
    selector, _, attribute = spec.partition("@")
    targets = element.cssselect(selector) if selector.strip() else [element]
    if not targets:
        return None
    if attribute:
        return targets[0].get(attribute)
    return html_to_text(lxml_html_of(targets[0]))


def lxml_html_of(element: Any) -> str:
    import lxml.html

    return lxml.html.tostring(element, encoding="unicode", with_tail=False)


def _charset(headers: Any) -> str | None:
    for part in str(headers.get("Content-Type", "")).split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return None


class ReviewSource(ConditionalGetSource):
    def __init__(self, name: str, url: str, interval_s: float, fetcher: PoliteFetcher, options: ReviewOptions):
        super().__init__(name, url, interval_s, fetcher)
        self.options = options

    async def poll(self) -> AsyncIterator[Item]:
        response = await self.fetch_if_changed()
        if response is None:
            return
        extract = html_records if self.options.format == "html" else json_records
        for record in extract(response.body, self.options, self.url, _charset(response.headers)):
            item = self._item(record)
            if item is None:
                log.info("review without text skipped source=%s id=%s", self.name, record.get("id"))
                continue
            yield item

    def _item(self, record: dict[str, Any]) -> Item | None:
        text = record.get("text")
        text = html_to_text(text) if isinstance(text, str) else (str(text) if text is not None else "")
        if not text:
            return None
        title = html_to_text(str(record["title"])) if record.get("title") else None
        review_id = str(record["id"]) if record.get("id") not in (None, "") else None
        url = urljoin(self.url, str(record["url"])) if record.get("url") else None
        meta: dict[str, Any] = {"listing": self.url}
        if record.get("author"):
            meta["author"] = str(record["author"])
        published_at = parse_date(record.get("date"))
        if record.get("date") not in (None, "") and published_at is None:
            meta["date_raw"] = str(record["date"])  # kept, not guessed
        doc = Document(
            id=f"{self.name}:{review_id}"[:200] if review_id else None,
            source=self.name,
            kind=self.options.kind,
            title=title,
            text=text,
            url=url,
            published_at=published_at,
            lang=self.options.lang,
            rating=parse_rating(record.get("rating")),
            meta=meta,
        )
        return Item(doc, identity_keys(self.name, url=url, guid=review_id, title=title, text=text))
