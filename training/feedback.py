"""Analyst labels as training and evaluation data.

Each labelled document goes to exactly one side, decided by a hash of its id: a share of
them joins the golden sets (never trained on), the rest feed the next training run. The
choice is stable, so a label never moves from evaluation into training as more arrive.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Iterable

from finsentry.labels import sentiment_index, topic_index
from finsentry.records import Label
from finsentry.store import open_store
from finsentry.textnorm import normalize
from finsentry.training.data import MISSING, Example

log = logging.getLogger("finsentry.training.feedback")


def latest_per_document(labels: Iterable[Label]) -> list[Label]:
    """The newest label of each document (an analyst may correct a correction)."""
    newest: dict[str, Label] = {}
    for label in labels:
        kept = newest.get(label.doc_id)
        if kept is None or label.at >= kept.at:
            newest[label.doc_id] = label
    return [newest[k] for k in sorted(newest)]


def label_example(label: Label) -> Example | None:
    """The training example of a label, or None when it has no text or no label."""
    text = normalize(label.text or "")
    if not text:
        return None
    example = Example(
        text,
        sentiment=sentiment_index(label.sentiment) if label.sentiment else MISSING,
        topic=topic_index(label.topic) if label.topic else MISSING,
    )
    if example.sentiment == MISSING and example.topic == MISSING:
        return None
    return example


def is_golden(doc_id: str, share: float) -> bool:
    bucket = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 2**32
    return bucket < share


def split_feedback(labels: Iterable[Label], golden_share: float) -> tuple[list[Example], list[Example]]:
    """(training examples, golden examples) from analyst labels."""
    train: list[Example] = []
    golden: list[Example] = []
    skipped = 0
    for label in latest_per_document(labels):
        example = label_example(label)
        if example is None:
            skipped += 1
            continue
        (golden if is_golden(label.doc_id, golden_share) else train).append(example)
    if skipped:
        log.warning("analyst labels skipped: %d without text or label", skipped)
    return train, golden


async def store_labels(settings) -> list[Label]:
    """Every analyst label in the configured store."""
    store = open_store(settings.store, settings)
    async with store:
        return await store.labels()
