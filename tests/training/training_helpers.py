"""Helpers of the training tests: a tiny slice of the real data, settings for quick runs,
and reading a topic back with kafka-python (assign + seek: its consumer groups do not work
against the embedded broker)."""

from __future__ import annotations

import csv
import itertools
import random
import time
from pathlib import Path

from finsentry.settings import Settings

REPO_DATA = Path(__file__).resolve().parents[2] / "data" / "tfn"
_prefixes = itertools.count()

# Floors for what a 16-step run on the tiny slice learns (sentiment balanced 3-way, topic
# 20-way): midway between that run (accuracy/F1 about 0.58/0.57, topic 0.24) and the same
# run on shuffled labels (0.36/0.25, topic 0.05). Far below the production floors.
TINY_FLOORS = dict(gate_min_sentiment_accuracy=0.47, gate_min_sentiment_macro_f1=0.41, gate_min_topic_accuracy=0.15)
# Hyper-parameters of every test run: short inputs, one small epoch, lively learning rates.
TINY_TRAIN = dict(batch_size=16, max_length=32, learning_rate=1e-4, head_learning_rate=5e-3, warmup_ratio=0.1)


def sample_rows(name: str, per_class: int, seed: int, skip: int = 0) -> list[dict[str, str]]:
    with open(REPO_DATA / name, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(seed)
    rng.shuffle(rows)
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    picked = [r for label in sorted(by_label) for r in by_label[label][skip : skip + per_class]]
    rng.shuffle(picked)
    return picked


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in rows)


def unique_prefix() -> str:
    return f"tr{next(_prefixes)}-{int(time.time() * 1000) % 10**8}."


def tiny_settings(root: Path, data: Path, **overrides) -> Settings:
    """Settings for a training test under `root`; pass broker=... to publish to the embedded broker."""
    base = dict(
        data_dir=root / "var",
        registry_dir=root / "registry",
        train_data_dir=data,
        train_extra_dir=root / "extra",
        store=f"sqlite:///{root / 'store.db'}",
        train_method="full",
        train_max_steps=16,
        train_epochs=1.0,
        train_min_new_examples=10,
        gate_min_examples=50,
        topic_prefix=unique_prefix(),
        producer_delivery_timeout_s=15.0,
        log_level="WARNING",
        **TINY_FLOORS,
    )
    base.update(overrides)
    return Settings(_env_file=None, **base)


def read_topic(address: str, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """Every record of `topic` from the beginning, until `expected` arrived (or timeout)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=address, group_id=None, enable_auto_commit=False, consumer_timeout_ms=500
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        assert partitions, f"topic {topic} never appeared"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = []
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))
    finally:
        consumer.close()


def write_tiny_data(out: Path) -> Path:
    """Class-balanced slices of the four files: 180 + 160 training rows, 120 + 120 golden."""
    _write(out / "tfns_sentiment_train.csv", sample_rows("tfns_sentiment_train.csv", 60, 1))
    _write(out / "tfnt_topic_train.csv", sample_rows("tfnt_topic_train.csv", 8, 1))
    _write(out / "tfns_sentiment_valid.csv", sample_rows("tfns_sentiment_valid.csv", 40, 2))
    _write(out / "tfnt_topic_test.csv", sample_rows("tfnt_topic_test.csv", 6, 2))
    return out


def synthetic_records(
    n: int,
    sentiment_mix: dict[str, float],
    topic_mix: dict[str, float],
    confidence: float,
    version: str,
    seed: int,
    start=None,
) -> list:
    """Scored documents whose predictions follow the given class mixes, with top-class
    confidences spread around `confidence` (a stand-in for a stream of real traffic)."""
    from datetime import datetime, timedelta, timezone

    from finsentry.records import ScoredDocument, Sentiment, Topic

    rng = random.Random(seed)
    start = start or datetime(2025, 3, 1, tzinfo=timezone.utc)
    s_names, s_weights = zip(*sentiment_mix.items())
    t_names, t_weights = zip(*topic_mix.items())
    out = []
    for i in range(n):
        label = rng.choices(s_names, s_weights)[0]
        conf = min(0.99, max(0.34, rng.gauss(confidence, 0.05)))
        probs = {name: conf if name == label else (1 - conf) / 2 for name in ("negative", "neutral", "positive")}
        out.append(
            ScoredDocument(
                id=f"{version}-{seed}-{i}",
                source="synthetic",
                text=f"story {i}",
                published_at=start + timedelta(seconds=i),
                sentiment=Sentiment(label=label, probabilities=probs, score=probs["positive"] - probs["negative"]),
                topic=Topic(
                    label=rng.choices(t_names, t_weights)[0],
                    probability=min(0.99, max(0.05, rng.gauss(confidence, 0.05))),
                ),
                model_version=version,
            )
        )
    return out
