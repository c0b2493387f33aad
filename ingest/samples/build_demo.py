"""Build the bundled demo stream (demo.jsonl.gz) from the MIT-licensed Twitter financial news
sets in data/tfn (attribution: data/tfn/SOURCES.md) plus a few hand-written app reviews.

The stream covers 70 minutes of event time: a steady background of headlines on every
topic (about 30 a minute) and, from minute 20 to 30, a realistic negative episode on
Energy / Oil — an oil-price slump reported by many outlets, some syndicated copies among
them — so the detector fires a few minutes (event time) into the episode — within two
minutes of wall-clock time at the demo's 30× replay. Three deliberately
malformed records show the dead-letter topic at work.

Episode headlines are chosen with the shipped model (predicted Energy / Oil and negative),
so the episode is what the model, not a keyword list, would see.

    python -m finsentry.ingest.samples.build_demo
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import html
import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "demo.jsonl.gz"
START = datetime(2026, 1, 5, 13, 0, tzinfo=timezone.utc)
MINUTES = 70
EPISODE = (20, 30)
SOURCES = ["wire-a", "wire-b", "markets-desk", "fin-tweets", "street-daily", "global-business"]
ENERGY = re.compile(
    r"\b(oil|crude|opec|brent|wti|barrel|gasoline|refiner|energy|exxon|chevron|shale|drill|natural gas)\b", re.I
)
_URL = re.compile(r"https?://\S+")

REVIEWS = [
    (
        "TradeNow app",
        1,
        "App froze during market open and my stop order never executed. Support took three days to answer.",
    ),
    ("TradeNow app", 2, "Fees went up again this quarter without notice. Considering moving my account."),
    ("TradeNow app", 5, "Fast execution and the new options chain view is excellent."),
    ("TradeNow app", 4, "Solid app, charts are clear, would like more research reports."),
    ("Harbor Bank mobile", 1, "Locked out of my account for a week after the update, no explanation from the bank."),
    ("Harbor Bank mobile", 3, "Transfers work but the login is slow most mornings."),
    ("Harbor Bank mobile", 5, "Mobile check deposit is instant now, great improvement."),
    ("Harbor Bank mobile", 2, "Card was declined abroad twice even after I set a travel notice."),
    ("CoinDock exchange", 1, "Withdrawals have been pending for days and nobody responds to tickets."),
    ("CoinDock exchange", 4, "Low spreads and the staking rewards arrive on time."),
    ("NestEgg robo-advisor", 5, "Rebalancing is automatic and the tax-loss harvesting saved me real money."),
    ("NestEgg robo-advisor", 3, "Decent returns but the cash sweep rate is below competitors."),
]


def read_csv(path: Path) -> list[tuple[str, int]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(row["text"], int(row["label"])) for row in csv.DictReader(fh)]


def headline(text: str) -> str:
    # The sets keep some tweets HTML-escaped ("S&amp;P"); a feed reader would unescape them.
    return html.unescape(_URL.sub("", text)).strip()


def doc(text: str, at: datetime, rng: random.Random, source: str | None = None, kind: str = "news") -> dict:
    src = source or rng.choice(SOURCES)
    title = headline(text)
    return {
        "source": src,
        "kind": kind,
        "title": title[:300],
        "text": title,
        "url": f"https://{src}.example/{hashlib.sha1((src + title).encode()).hexdigest()[:12]}",
        "published_at": at.isoformat().replace("+00:00", "Z"),
        "lang": "en",
    }


def episode_pool(texts: list[str], model_dir: Path | None) -> list[str]:
    from finsentry.models.engine import Engine

    engine = Engine.load(model_dir, backend="torch")
    preds = engine.predict(texts)
    return [
        t
        for t, p in zip(texts, preds)
        if p.topic == "Energy / Oil" and p.sentiment == "negative" and p.probabilities["negative"] > 0.7
    ]


def build(seed: int = 7, model_dir: Path | None = None) -> list[str]:
    rng = random.Random(seed)
    data = ROOT / "data" / "tfn"
    sentiment = read_csv(data / "tfns_sentiment_train.csv")
    topic = read_csv(data / "tfnt_topic_train.csv")
    background = [t for t, _ in sentiment] + [t for t, _ in topic]
    rng.shuffle(background)
    candidates = sorted(
        {headline(t) for t, label in sentiment if label == 0 and ENERGY.search(t)}
        | {headline(t) for t, label in topic if label == 6}
    )
    pool = episode_pool(candidates, model_dir)
    rng.shuffle(pool)
    episode_set = set(pool)
    background = [t for t in background if headline(t) not in episode_set]

    lines: list[tuple[datetime, str]] = []
    cursor = 0
    for minute in range(MINUTES):
        base = START + timedelta(minutes=minute)
        for _ in range(rng.randint(26, 34)):
            at = base + timedelta(seconds=rng.uniform(0, 60))
            lines.append((at, json.dumps(doc(background[cursor], at, rng))))
            cursor += 1
        if rng.random() < 0.25:
            product, rating, text = rng.choice(REVIEWS)
            at = base + timedelta(seconds=rng.uniform(0, 60))
            review = doc(text, at, rng, source=f"reviews:{product}", kind="review")
            review["title"], review["rating"] = f"{product} review", float(rating)
            lines.append((at, json.dumps(review)))
        if EPISODE[0] <= minute < EPISODE[1]:
            for _ in range(24):
                if not pool:
                    break
                at = base + timedelta(seconds=rng.uniform(0, 60))
                story = pool.pop()
                lines.append((at, json.dumps(doc(story, at, rng))))
                if rng.random() < 0.15:  # syndicated: the same story from other outlets
                    for outlet in rng.sample(SOURCES, 2):
                        copy_at = at + timedelta(seconds=rng.uniform(5, 90))
                        lines.append(
                            (copy_at, json.dumps(doc(story + " (" + outlet + ")", copy_at, rng, source=outlet)))
                        )
    lines.sort(key=lambda item: item[0])
    out = [line for _, line in lines]
    # Malformed records, so the dead-letter topic has something to show.
    out.insert(100, '{"source": "wire-a", "title": "truncated record", "text": "Oil')
    out.insert(400, json.dumps({"source": "wire-b", "kind": "news", "title": "no body"}))
    out.insert(900, json.dumps({"source": "wire-c", "kind": "rumour", "text": "Unknown kind of document"}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: shipped)")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    lines = build(args.seed, args.model)
    with gzip.open(args.output, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} records to {args.output}")


if __name__ == "__main__":
    main()
