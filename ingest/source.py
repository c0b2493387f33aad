"""What every source gives the runner: `Item`s (a document + its identity keys).

A source only reads; the runner decides what is new (the seen-set), publishes, and marks
items seen once the broker acknowledged them. `complete` runs only for new items, so
expensive work (fetching an article page) is never done for something already published.
`commit` runs after a poll whose new items were all acknowledged: the moment a source may
remember progress (e.g. the validators of a conditional GET).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from finsentry.errors import FinsentryError
from finsentry.records import Document


@dataclass(frozen=True)
class Item:
    doc: Document
    keys: tuple[str, ...]  # identity in the seen-set (see seen.identity_keys)


class SourceError(FinsentryError):
    """A poll failed in a way worth retrying later; `kind` is its metric label."""

    kind = "error"


class MalformedSource(SourceError):
    kind = "malformed"


@runtime_checkable
class Source(Protocol):
    name: str
    interval_s: float

    def poll(self) -> AsyncIterator[Item]:
        """The items the source currently lists (an async generator)."""

    async def complete(self, item: Item) -> Document:
        """The document to publish for a new item."""

    def commit(self) -> None:
        """Every new item of the last poll was acknowledged."""

    async def aclose(self) -> None:
        """Release what the source holds."""


class BaseSource:
    """Defaults for the optional steps."""

    name: str
    interval_s: float

    async def complete(self, item: Item) -> Document:
        return item.doc

    def commit(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
