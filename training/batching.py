"""Length-grouped batches: similar lengths together so dynamic padding wastes little."""

from __future__ import annotations

import random
from typing import Iterator, Sequence


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Deterministic: indices sorted by length, cut into batches (inference)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, mega: int = 50) -> Iterator[list[int]]:
    """Training: shuffle, sort within mega-batches of `mega` batches, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * mega
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lengths.__getitem__, reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    yield from batches
