"""Labelled examples: loading, normalising, splitting, hashing.

An example carries a sentiment label, a topic label, or both; a missing label is -1 and
the loss masks that head. Splits are deterministic (seeded, stratified) so a run can be
reproduced from its report.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from finsentry.labels import TFNS_TO_SENTIMENT, sentiment_index, topic_index
from finsentry.models.encoders import file_sha256  # noqa: F401  # re-exported: training hashes its input files with it
from finsentry.textnorm import normalize

MISSING = -1


@dataclass(frozen=True)
class Example:
    text: str
    sentiment: int = MISSING
    topic: int = MISSING


def read_tfns(path: Path) -> list[Example]:
    """Twitter financial news sentiment CSV (0 bearish, 1 bullish, 2 neutral)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            Example(normalize(row["text"]), sentiment=TFNS_TO_SENTIMENT[int(row["label"])])
            for row in csv.DictReader(fh)
        ]


def read_tfnt(path: Path) -> list[Example]:
    """Twitter financial news topic CSV (20 topics, ids as in SOURCES.md)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [Example(normalize(row["text"]), topic=int(row["label"])) for row in csv.DictReader(fh)]


def _label(value, parse) -> int:
    if value is None or value == "":
        return MISSING
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    return parse(value)


def read_labelled(path: Path) -> list[Example]:
    """A CSV or JSONL file with `text` plus `sentiment` and/or `topic` (names or indices)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    out = []
    for i, row in enumerate(rows, 1):
        if not str(row.get("text") or "").strip():
            raise ValueError(f"{path}:{i}: row has no text")
        ex = Example(
            normalize(str(row["text"])),
            sentiment=_label(row.get("sentiment"), sentiment_index),
            topic=_label(row.get("topic"), topic_index),
        )
        if ex.sentiment == MISSING and ex.topic == MISSING:
            raise ValueError(f"{path}:{i}: row has neither a sentiment nor a topic label")
        out.append(ex)
    return out


def stratified_split(
    examples: Sequence[Example], fraction: float, seed: int, key=lambda e: (e.sentiment, e.topic)
) -> tuple[list[Example], list[Example]]:
    """Split off `fraction` of every label group (at least one example of groups of ≥2)."""
    groups: dict[tuple, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[key(ex)].append(ex)
    rng = random.Random(seed)
    keep, held = [], []
    for label in sorted(groups):
        items = groups[label][:]
        rng.shuffle(items)
        n = int(round(len(items) * fraction))
        if len(items) >= 2:
            n = max(1, n)
        held.extend(items[:n])
        keep.extend(items[n:])
    rng.shuffle(keep)
    rng.shuffle(held)
    return keep, held


def examples_sha256(examples: Iterable[Example]) -> str:
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(f"{ex.sentiment}\t{ex.topic}\t{ex.text}\n".encode())
    return digest.hexdigest()
