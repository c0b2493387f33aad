"""Event-time buckets of one scope and the window over the latest of them.

A bucket counts distinct stories, negative ones, and near-duplicate copies (which are not
counted as stories: a story syndicated fifty times is one story), and keeps the few most
negative original stories as evidence. It also remembers a short mark of every document it
counted, so a document delivered again (after a rebalance or a restart the worker re-reads
from its last commit) is counted once; the marks go when the bucket leaves the state.
Everything here is plain data that round-trips through JSON, because it lives in a
changelog-backed table.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from finsentry.alerting.observations import Observation

_TITLE_CHARS = 300  # evidence is for people; a headline is enough, and state stays small
_MARK_BYTES = 6  # 48 bits: a false match among a bucket's documents is vanishingly rare, and state stays small


def bucket_index(t: float, width: int) -> int:
    return math.floor(t / width)


def document_mark(doc_id: str) -> str:
    """A short stand-in for a document id (ids may be up to 200 characters)."""
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=_MARK_BYTES).hexdigest()


def evidence_of(obs: Observation) -> dict:
    return {
        "id": obs.doc_id,
        "title": (obs.title or "")[:_TITLE_CHARS] or None,
        "url": obs.url,
        "source": obs.source,
        "score": obs.score,
        "published_at": obs.published_at.isoformat(),
        "explanation": [list(pair) for pair in obs.explanation] if obs.explanation else None,
    }


def most_negative(items: Iterable[dict], keep: int) -> list[dict]:
    """The `keep` lowest-scored items, one per id, in a stable order."""
    best: dict[str, dict] = {}
    for item in items:
        if item["id"] not in best:
            best[item["id"]] = item
    return sorted(best.values(), key=lambda e: (e["score"], e["id"]))[:keep]


@dataclass
class Bucket:
    n: int = 0  # distinct stories
    neg: int = 0  # distinct negative stories
    dups: int = 0  # near-duplicate copies, not counted in n
    evidence: list[dict] = field(default_factory=list)
    counted: set[str] = field(default_factory=set)  # marks of the documents counted here

    def holds(self, obs: Observation) -> bool:
        return document_mark(obs.doc_id) in self.counted

    def add(self, obs: Observation, keep: int) -> bool:
        """Count `obs`; False (nothing counted) if this document was counted here already."""
        mark = document_mark(obs.doc_id)
        if mark in self.counted:
            return False
        self.counted.add(mark)
        if obs.dup_of:
            self.dups += 1
            return True
        self.n += 1
        if obs.negative:
            self.neg += 1
            if keep > 0:
                self.evidence = most_negative([*self.evidence, evidence_of(obs)], keep)
        return True

    def dump(self) -> list:
        return [self.n, self.neg, self.dups, self.evidence, sorted(self.counted)]

    @classmethod
    def load(cls, raw: list) -> "Bucket":
        """Also a bucket written before the marks (state version 2): what it counted is unknown."""
        n, neg, dups, evidence, *counted = raw
        return cls(n, neg, dups, list(evidence), set(counted[0]) if counted else set())


@dataclass
class Window:
    first: int  # bucket index, inclusive
    last: int  # bucket index, inclusive
    n: int = 0
    neg: int = 0
    dups: int = 0
    evidence: list[dict] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.neg / self.n if self.n else 0.0

    @property
    def buckets(self) -> int:
        return self.last - self.first + 1


def window(buckets: Mapping[int, Bucket], last: int, size: int, keep: int) -> Window:
    """Sum of the `size` buckets ending at `last` (absent buckets count as empty)."""
    out = Window(first=last - size + 1, last=last)
    pool: list[dict] = []
    for index in range(out.first, last + 1):
        bucket = buckets.get(index)
        if bucket is not None:
            out.n += bucket.n
            out.neg += bucket.neg
            out.dups += bucket.dups
            pool += bucket.evidence
    out.evidence = most_negative(pool, keep)
    return out
