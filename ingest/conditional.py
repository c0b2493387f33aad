"""A source that polls one URL with conditional GET (ETag / Last-Modified).

The validators of a response are remembered only on `commit()`, after every new item it
gave was acknowledged by the broker: a failed publish is fetched again next poll instead
of hiding behind a 304.
"""

from __future__ import annotations

from finsentry import metrics
from finsentry.ingest.fetcher import PoliteFetcher, Response, Validators
from finsentry.ingest.source import BaseSource


class ConditionalGetSource(BaseSource):
    def __init__(self, name: str, url: str, interval_s: float, fetcher: PoliteFetcher):
        self.name, self.url, self.interval_s = name, url, interval_s
        self.fetcher = fetcher
        self._validators: Validators | None = None
        self._pending: Validators | None = None

    async def fetch_if_changed(self) -> Response | None:
        """The response, or None when the server says nothing changed (304)."""
        response = await self.fetcher.get(self.url, validators=self._validators)
        if response.not_modified:
            metrics.SCRAPE_NOT_MODIFIED.labels(source=self.name).inc()
            return None
        self._pending = response.validators
        return response

    def commit(self) -> None:
        if self._pending is not None:
            self._validators, self._pending = self._pending, None
