"""RSS/Atom feeds (feedparser): conditional polls, title + summary per entry, and optionally
the linked article's main text (trafilatura), fetched only for entries not seen before."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import feedparser
from pydantic import BaseModel, ConfigDict

from finsentry import metrics
from finsentry.ingest.conditional import ConditionalGetSource
from finsentry.ingest.fetcher import FetchError, PoliteFetcher, RobotsDisallowed
from finsentry.ingest.htmltext import html_to_text
from finsentry.ingest.seen import identity_keys
from finsentry.ingest.source import Item, MalformedSource
from finsentry.records import Document, Kind

log = logging.getLogger("finsentry.ingest.feeds")


class FeedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_text: bool = False  # fetch each new entry's page and keep its main text (trafilatura)
    kind: Kind = "news"
    lang: str | None = None  # default: the feed's own language, if it declares one


def parse_feed(body: bytes, headers: Any, url: str) -> feedparser.FeedParserDict:
    """feedparser over bytes (a stream, so it never mistakes the body for a URL to open)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}  # feedparser looks up lower-case names
    parsed = feedparser.parse(io.BytesIO(body), response_headers=lowered)
    if parsed.entries:
        if parsed.bozo:  # recoverable, e.g. a wrong declared encoding
            log.warning("feed parsed with a problem url=%s problem=%s", url, parsed.bozo_exception)
        return parsed
    if parsed.bozo:
        raise MalformedSource(f"{url} is not a readable feed: {parsed.bozo_exception}")
    if not parsed.version:
        raise MalformedSource(f"{url} is not an RSS or Atom feed")
    return parsed


def _when(entry: Any) -> datetime | None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime(*stamp[:6], tzinfo=timezone.utc) if stamp else None  # feedparser gives UTC


def _entry_text(entry: Any) -> str:
    contents = [c.get("value", "") for c in entry.get("content", [])]
    candidates = [html_to_text(c) for c in contents] + [html_to_text(entry.get("summary"))]
    return max(candidates, key=len)


class FeedSource(ConditionalGetSource):
    def __init__(
        self, name: str, url: str, interval_s: float, fetcher: PoliteFetcher, options: FeedOptions | None = None
    ):
        super().__init__(name, url, interval_s, fetcher)
        self.options = options or FeedOptions()

    async def poll(self) -> AsyncIterator[Item]:
        response = await self.fetch_if_changed()
        if response is None:
            return
        parsed = parse_feed(response.body, response.headers, self.url)
        lang = self.options.lang or parsed.feed.get("language") or None
        usable = 0
        for entry in parsed.entries:
            item = self._item(entry, lang)
            if item is None:
                log.info("feed entry without text skipped source=%s guid=%s", self.name, entry.get("id"))
                continue
            usable += 1
            yield item
        if parsed.bozo and not usable:  # the lenient parser salvaged nothing worth reading
            raise MalformedSource(f"{self.url} is not a readable feed: {parsed.bozo_exception}")

    def _item(self, entry: Any, lang: str | None) -> Item | None:
        title = html_to_text(entry.get("title")) or None
        text = _entry_text(entry) or title
        if not text:
            return None
        url = entry.get("link") or None
        guid = entry.get("id") or None
        meta = {"feed": self.url}
        if guid:
            meta["guid"] = guid
        doc = Document(
            source=self.name,
            kind=self.options.kind,
            title=title,
            text=text,
            url=url,
            published_at=_when(entry),
            lang=lang[:16] if lang else None,
            meta=meta,
        )
        return Item(doc, identity_keys(self.name, url=url, guid=guid, title=title, text=text))

    async def complete(self, item: Item) -> Document:
        if not (self.options.full_text and item.doc.url):
            return item.doc
        try:
            page = await self.fetcher.get(item.doc.url)
        except RobotsDisallowed:
            metrics.SCRAPE_ROBOTS_BLOCKED.labels(source=self.name).inc()
            log.info("article not fetched (robots.txt) source=%s url=%s", self.name, item.doc.url)
            return item.doc
        except FetchError as exc:
            log.warning(
                "article fetch failed, keeping the summary source=%s url=%s error=%s", self.name, item.doc.url, exc
            )
            return item.doc
        main = await asyncio.to_thread(_main_text, page.body, page.url, page.headers.get("Content-Type"))
        if not main or len(main) <= len(item.doc.text):
            return item.doc
        return item.doc.model_copy(update={"text": main, "meta": {**item.doc.meta, "full_text": True}})


def _main_text(html: bytes, url: str, content_type: str | None = None) -> str | None:
    """The page's main text. A charset the server names is used; otherwise trafilatura gets
    the bytes and finds the encoding itself (meta tag, then detection), so a windows-1252
    or Shift_JIS page is not garbled by a UTF-8 guess."""
    import trafilatura

    page: bytes | str = html
    charset = _declared_charset(content_type)
    if charset:
        try:
            page = html.decode(charset)
        except (LookupError, UnicodeDecodeError):
            page = html  # a wrong or unknown header: let trafilatura detect it
    return trafilatura.extract(page, url=url, include_comments=False, include_tables=False, favor_precision=True)


def _declared_charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value.strip("\"' "):
            return value.strip("\"' ")
    return None
