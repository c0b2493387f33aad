"""Near-duplicate stories: the same text re-published by many outlets counts once.

Each text becomes a set of word shingles of its normalised form (links, cashtag signs,
HTML entities stripped by `textnorm.normalize`), summarised by a MinHash. An LSH index
finds earlier stories that are probably similar; each candidate is then judged on the
MinHash estimates of two similarities:

- Jaccard similarity of the shingle sets, for copies with small edits;
- containment of the shorter set in the longer one, for copies that add a prefix
  ("BREAKING:"), a suffix ("- Reuters") or a sentence, which lowers Jaccard a lot on short
  headlines but leaves the shorter text contained in the longer one. It is only trusted
  when the shorter text has enough shingles, so a three-word headline is not "contained"
  in every story that happens to start with the same words.

Similar wording is not enough on its own: templated headlines ("Exxon shares fall 3% after
profit miss" / "Apple shares fall 3% after profit miss") are different stories. So the
names and numbers of the text (capitalised words, tickers, figures) must agree: those of
one text must all appear in the other, which an added prefix or source tag never breaks.

A copy points at the first-seen story of its cluster, so fifty copies (and copies of
copies) all carry the same `dup_of`. Stories are remembered for a horizon of event time
(`published_at`), so the index is bounded and a replay gives the same answers.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import threading
from dataclasses import dataclass
from datetime import datetime

from datasketch import MinHash, MinHashLSH

from finsentry.settings import Settings
from finsentry.textnorm import normalize

_WORD = re.compile(r"\w+")
# The LSH index only proposes candidates; it must find copies whose Jaccard similarity is
# well below the decision threshold (a headline plus a long suffix), so it is set lower.
_CANDIDATE_FACTOR = 0.6


def words_and_anchors(text: str) -> tuple[list[str], frozenset[str]]:
    """The lower-cased words of the normalised text, and its names and figures: words
    written with a capital, or holding a digit."""
    words = _WORD.findall(normalize(text))
    names = frozenset(w.lower() for w in words if w[0].isupper() or any(c.isdigit() for c in w))
    return [w.lower() for w in words], names


def shingles(words: list[str], size: int) -> set[bytes]:
    if len(words) < size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


@dataclass
class _Story:
    root: str  # first-seen id of the cluster this story belongs to
    published_at: float
    size: int  # distinct shingles
    digest: str  # hash of the token sequence: exact copies skip the LSH
    minhash: MinHash
    anchors: frozenset[str]


class NearDuplicateIndex:
    """`check(doc_id, text, published_at)` → the id this story duplicates, or None.

    Not thread-safe; one per worker (the score agent calls it on the event loop).
    """

    def __init__(
        self,
        threshold: float = 0.8,
        horizon_s: float = 6 * 3600,
        num_perm: int = 128,
        shingle_words: int = 2,
        min_containment_shingles: int = 6,
        max_stories: int = 200_000,
        seed: int = 1,
    ):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be positive, got {horizon_s}")
        if shingle_words < 1:
            raise ValueError(f"shingle_words must be at least 1, got {shingle_words}")
        self.threshold = threshold
        self.horizon_s = float(horizon_s)
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.min_containment_shingles = min_containment_shingles
        self.max_stories = max_stories
        self._lock = threading.Lock()  # the worker scores batches on several threads at once
        template = MinHash(num_perm=num_perm, seed=seed)
        self._permutations, self._scheme = template.permutations, template.scheme
        self._lsh = MinHashLSH(threshold=max(0.1, threshold * _CANDIDATE_FACTOR), num_perm=num_perm)
        self._stories: dict[str, _Story] = {}
        self._by_digest: dict[str, str] = {}  # token-sequence hash → newest id with that text
        self._expiry: list[tuple[float, str]] = []  # heap of (published_at, id)
        self._watermark = float("-inf")

    @classmethod
    def from_settings(cls, settings: Settings) -> "NearDuplicateIndex":
        return cls(
            settings.dedup_threshold,
            settings.dedup_horizon_s,
            num_perm=settings.dedup_num_perm,
            shingle_words=settings.dedup_shingle_words,
            max_stories=settings.dedup_max_stories,
        )

    def __len__(self) -> int:
        return len(self._stories)

    def check(self, doc_id: str, text: str, published_at: datetime | float) -> str | None:
        """The first-seen id of the story `text` repeats, or None (then it is remembered as
        a new story). Asking again about a remembered id gives the same answer. Thread-safe."""
        with self._lock:
            return self._check(doc_id, text, published_at)

    def _check(self, doc_id: str, text: str, published_at: datetime | float) -> str | None:
        known = self._stories.get(doc_id)
        if known is not None:
            return None if known.root == doc_id else known.root
        at = published_at.timestamp() if isinstance(published_at, datetime) else float(published_at)
        self._watermark = max(self._watermark, at)
        self._expire()
        words, names = words_and_anchors(text)
        if not words:
            return None  # nothing to compare: never a duplicate, not remembered
        digest = hashlib.blake2b(" ".join(words).encode(), digest_size=16).hexdigest()
        exact = self._by_digest.get(digest)
        if exact is not None and exact in self._stories:
            original = self._stories[exact]
            self._remember(doc_id, _Story(original.root, at, original.size, digest, original.minhash, original.anchors))
            return original.root
        grams = shingles(words, self.shingle_words)
        minhash = MinHash(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        minhash.update_batch(list(grams))
        match = self._best_match(minhash, len(grams), names)
        root = self._stories[match].root if match is not None else doc_id
        if at >= self._watermark - self.horizon_s:  # a story already past the horizon is not kept
            self._remember(doc_id, _Story(root, at, len(grams), digest, minhash, names))
        return None if root == doc_id else root

    def similarity(self, a: MinHash, size_a: int, b: MinHash, size_b: int) -> float:
        jaccard = float(a.jaccard(b))
        smaller = min(size_a, size_b)
        if smaller < self.min_containment_shingles:
            return jaccard
        # |A ∩ B| from J = |A ∩ B| / |A ∪ B| and |A ∪ B| = |A| + |B| - |A ∩ B|.
        intersection = jaccard * (size_a + size_b) / (1.0 + jaccard)
        return max(jaccard, min(1.0, intersection / smaller))

    def _best_match(self, minhash: MinHash, size: int, names: frozenset[str]) -> str | None:
        best: tuple[float, float, str] | None = None
        for candidate in self._lsh.query(minhash):
            story = self._stories.get(candidate)
            if story is None or not (names <= story.anchors or story.anchors <= names):
                continue
            sim = self.similarity(minhash, size, story.minhash, story.size)
            if sim < self.threshold:
                continue
            rank = (sim, -story.published_at, candidate)  # most similar, then earliest: same answer every run
            if best is None or rank > best:
                best = rank
        return best[2] if best is not None else None

    def _remember(self, doc_id: str, story: _Story) -> None:
        self._stories[doc_id] = story
        self._by_digest[story.digest] = doc_id
        self._lsh.insert(doc_id, story.minhash, check_duplication=False)
        heapq.heappush(self._expiry, (story.published_at, doc_id))
        while len(self._stories) > self.max_stories:
            self._forget_oldest()

    def _expire(self) -> None:
        cutoff = self._watermark - self.horizon_s
        while self._expiry and self._expiry[0][0] < cutoff:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        at, doc_id = heapq.heappop(self._expiry)
        story = self._stories.get(doc_id)
        if story is None or story.published_at != at:
            return
        del self._stories[doc_id]
        self._lsh.remove(doc_id)
        if self._by_digest.get(story.digest) == doc_id:
            del self._by_digest[story.digest]
