"""Model throughput: every engine backend against naive Hugging Face scoring, same run.

Naive = what a first script does: pad every text to 128 tokens, batches of 32 in input
order, fp32, no sorting. Both score the same held-out texts (TFNS valid + TFNT test), and
accuracy is printed beside each so speed never hides a quality loss.

    python benchmarks/bench_model.py [--n 2000] [--threads 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from finsentry.models.engine import SHIPPED_MODEL, LoadedModel, candidate_backends
from finsentry.models.classifier import load_artifact, load_tokenizer
from finsentry.models.labels import SENTIMENT_LABELS, TFNS_TO_SENTIMENT, TOPIC_LABELS
from finsentry.models.textnorm import normalize

DATA = Path(__file__).resolve().parents[1] / "data" / "tfn"


def held_out(n: int, seed: int = 0) -> list[dict]:
    rows = []
    with open(DATA / "tfns_sentiment_valid.csv", newline="", encoding="utf-8") as fh:
        rows += [{"text": r["text"], "sentiment": SENTIMENT_LABELS[TFNS_TO_SENTIMENT[int(r["label"])]]} for r in csv.DictReader(fh)]
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
        enc = tokenizer([normalize(t) for t in texts[i:i + 32]], padding="max_length", truncation=True,
                        max_length=128, return_tensors="pt")
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
        delta = 100 * (np.mean([r['sentiment'], r['topic']]) - np.mean([base_acc['sentiment'], base_acc['topic']]))
        print(f"{name:<12}{r['docs_per_s']:>10.0f}{r['docs_per_s'] / base_rate:>10.2f}"
              f"{r['sentiment']:>10.4f}{r['topic']:>11.4f}{delta:>+10.2f}")
    print(json.dumps({k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()}))


if __name__ == "__main__":
    main()
