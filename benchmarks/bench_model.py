"""Model throughput: every engine backend against naive Hugging Face scoring, same run.

Naive = what a first script does: pad every text to 128 tokens, batches of 32 in input
order, fp32, no sorting. Both score the same held-out texts (TFNS valid + TFNT test), and
accuracy is printed beside each so speed never hides a quality loss. The last lines judge
`auto`'s choice (measured afresh on the model's golden batch, as a worker would) and the best
backend against the target: at least 8x naive with each head's accuracy within 0.5 point.

    python benchmarks/bench_model.py [--n 2000] [--threads 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from finsentry.labels import SENTIMENT_LABELS, TFNS_TO_SENTIMENT, TOPIC_LABELS
from finsentry.models.classifier import load_artifact, load_tokenizer
from finsentry.models.engine import SHIPPED_MODEL, LoadedModel, candidate_backends, choose_backend, read_golden
from finsentry.textnorm import normalize

DATA = Path(__file__).resolve().parents[1] / "data" / "tfn"
TARGET_SPEEDUP = 8.0  # × naive
TARGET_ACCURACY_POINTS = 0.5  # largest accuracy change of either head, in points


def held_out(n: int, seed: int = 0) -> list[dict]:
    rows = []
    with open(DATA / "tfns_sentiment_valid.csv", newline="", encoding="utf-8") as fh:
        rows += [
            {"text": r["text"], "sentiment": SENTIMENT_LABELS[TFNS_TO_SENTIMENT[int(r["label"])]]}
            for r in csv.DictReader(fh)
        ]
    with open(DATA / "tfnt_topic_test.csv", newline="", encoding="utf-8") as fh:
        rows += [{"text": r["text"], "topic": TOPIC_LABELS[int(r["label"])]} for r in csv.DictReader(fh)]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def accuracy(rows: list[dict], sentiment: list[str], topic: list[str]) -> dict:
    out = {}
    for head, preds in (("sentiment", sentiment), ("topic", topic)):
        pairs = [(r[head], p) for r, p in zip(rows, preds) if head in r]
        out[head] = sum(a == b for a, b in pairs) / max(1, len(pairs))
    return out


@torch.no_grad()
def naive(model, tokenizer, texts: list[str]) -> tuple[list[str], list[str]]:
    sentiment, topic = [], []
    for i in range(0, len(texts), 32):
        enc = tokenizer(
            [normalize(t) for t in texts[i : i + 32]],
            padding="max_length",
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        s, t = model(enc["input_ids"], enc["attention_mask"])
        sentiment += [SENTIMENT_LABELS[j] for j in s.argmax(1).tolist()]
        topic += [TOPIC_LABELS[j] for j in t.argmax(1).tolist()]
    return sentiment, topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = held_out(args.n)
    texts = [r["text"] for r in rows]
    model, card = load_artifact(args.model)
    tokenizer = load_tokenizer(card.max_length, card.encoder)

    naive(model, tokenizer, texts[:64])  # warm-up
    start = time.perf_counter()
    s, t = naive(model, tokenizer, texts)
    base_rate = len(texts) / (time.perf_counter() - start)
    base_acc = accuracy(rows, s, t)
    results = {"naive": {"docs_per_s": base_rate, **base_acc}}

    cands = candidate_backends(lambda: model, args.model, card, Path("var/model-cache"), args.threads)
    for name, factory in cands.items():
        loaded = LoadedModel(args.model, card, factory(), tokenizer, args.batch)
        loaded.predict(texts[:64])
        start = time.perf_counter()
        preds = loaded.predict(texts)
        rate = len(texts) / (time.perf_counter() - start)
        results[name] = {"docs_per_s": rate, **accuracy(rows, [p.sentiment for p in preds], [p.topic for p in preds])}

    print(f"{len(texts)} held-out texts, {torch.get_num_threads()} threads, model {card.version}")
    print(f"{'backend':<12}{'docs/s':>10}{'× naive':>10}{'sent acc':>10}{'topic acc':>11}{'Δacc pts':>10}")
    for name, r in results.items():
        delta = 100 * (np.mean([r["sentiment"], r["topic"]]) - np.mean([base_acc["sentiment"], base_acc["topic"]]))
        print(
            f"{name:<12}{r['docs_per_s']:>10.0f}{r['docs_per_s'] / base_rate:>10.2f}"
            f"{r['sentiment']:>10.4f}{r['topic']:>11.4f}{delta:>+10.2f}"
        )
    print(json.dumps({k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()}))

    golden = [g["text"] for g in read_golden(args.model)]
    auto, _, _ = choose_backend(cands, tokenizer, card, args.model, golden, args.batch, cache_file=None)
    best = max((n for n in results if n != "naive"), key=lambda n: verdict(results[n], results["naive"])[:2])
    for label, name in (("auto", auto), ("best", best)):
        passed, speedup, points = verdict(results[name], results["naive"])
        print(
            f"target ≥{TARGET_SPEEDUP:g}× naive at accuracy within {TARGET_ACCURACY_POINTS} point: "
            f"{'PASS' if passed else 'FAIL'} ({label}: {name}, {speedup:.2f}× naive, "
            f"largest accuracy change {points:+.2f} pt)"
        )
    print(
        f"load average (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs: a busy machine makes every rate lower"
    )


def verdict(result: dict, naive_result: dict) -> tuple[bool, float, float]:
    """(meets the target, speed-up over naive, the head accuracy change furthest from zero in points)."""
    speedup = result["docs_per_s"] / naive_result["docs_per_s"]
    points = max((100 * (result[h] - naive_result[h]) for h in ("sentiment", "topic")), key=abs)
    return speedup >= TARGET_SPEEDUP and abs(points) <= TARGET_ACCURACY_POINTS, speedup, points


if __name__ == "__main__":
    main()
