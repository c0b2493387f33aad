"""Helpers of the dashboard tests: the Debian tools they run (installed by the CI script),
and the scored documents and alerts their stores are filled with."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from system_deps import require_binary as require_tool  # noqa: F401  (the dashboard tests import it from here)

from finsentry.records import Alert, Evidence, ScoredDocument, Sentiment, Topic

# ---- scored documents and alerts the dashboard tests fill their stores with ----------------
# A fixed historical end: the dashboards must anchor their windows at the data, not the clock.
CORPUS_END = datetime(2024, 3, 1, 15, 0, tzinfo=timezone.utc)
XSS_TITLE = (
    '<img src=x onerror="window.__finsentry_xss=1"><script>window.__finsentry_xss=2</script>'
    "<svg onload=alert('xss')></svg> Bank slump"
)
XSS_URL = "javascript:window.__finsentry_xss=3"
TOPICS = ("Earnings", "Macro", "Energy / Oil", "M&A / Investments")
ENTITIES = ("AAPL", "MSFT", "XOM")
SOURCES = ("wire-a", "wire-b", "reviews-c")
NEGATIVE_WORDS = ("slump", "plunge", "misses", "lawsuit", "downgrade")
POSITIVE_WORDS = ("beats", "surges", "upgrade", "record", "growth")


def scored_document(
    i: int,
    published_at: datetime,
    topic: str,
    label: str,
    *,
    title: str | None = None,
    url: str | None = None,
    entities: list[str] | None = None,
    source: str | None = None,
) -> ScoredDocument:
    score = {"negative": -0.8, "neutral": 0.0, "positive": 0.7}[label] + (i % 7) / 100
    p_neg = max(0.0, -score) + 0.1
    p_pos = max(0.0, score) + 0.1
    probabilities = {
        "negative": p_neg,
        "neutral": 1 - p_neg - p_pos if 1 - p_neg - p_pos > 0 else 0.0,
        "positive": p_pos,
    }
    word = (NEGATIVE_WORDS if label == "negative" else POSITIVE_WORDS)[i % 5]
    text_title = title or f"Company {i} {word} after quarterly update"
    return ScoredDocument(
        id=f"doc-{i:05d}",
        source=source or SOURCES[i % len(SOURCES)],
        kind="news",
        title=text_title,
        text=f"{text_title}. Analysts comment on item {i}.",
        url=url or f"https://news.example.com/story/{i}",
        published_at=published_at,
        ingested_at=published_at.timestamp(),
        sentiment=Sentiment(label=label, probabilities=probabilities, score=round(score, 4)),
        topic=Topic(label=topic, probability=0.9),
        entities=entities if entities is not None else [ENTITIES[i % 3]],
        model_version="test-v1",
        scored_at=published_at.timestamp() + 0.5,
        explanation=[[word, -0.42 if label == "negative" else 0.38], ["quarterly", 0.01]],
    )


def corpus(end: datetime, hours: float = 3.0, per_minute: int = 3, seed: int = 7) -> list[ScoredDocument]:
    """A few hours of scored documents on four topics; Earnings turns negative in the last 30 minutes."""
    rng = random.Random(seed)
    docs = []
    minutes = int(hours * 60)
    i = 0
    for m in range(minutes):
        at = end - timedelta(minutes=minutes - m)
        for k in range(per_minute):
            topic = TOPICS[(m + k) % len(TOPICS)]
            episode = topic == "Earnings" and m >= minutes - 30
            p_neg = 0.8 if episode else 0.2
            r = rng.random()
            label = "negative" if r < p_neg else ("neutral" if r < p_neg + 0.4 * (1 - p_neg) else "positive")
            docs.append(scored_document(i, at + timedelta(seconds=k * 10), topic, label))
            i += 1
    docs.append(scored_document(i, end - timedelta(minutes=1), "Earnings", "negative", title=XSS_TITLE, url=XSS_URL))
    return docs


def episode_alert(end: datetime, docs: list[ScoredDocument]) -> Alert:
    start = end - timedelta(minutes=25)
    negative = sorted(
        (d for d in docs if d.topic.label == "Earnings" and d.published_at >= start), key=lambda d: d.sentiment.score
    )[:4]
    evidence = [
        Evidence(
            id=d.id,
            title=d.title,
            url=d.url,
            source=d.source,
            score=d.sentiment.score,
            published_at=d.published_at,
            explanation=d.explanation,
        )
        for d in negative
    ]
    evidence.append(
        Evidence(
            id="xss", title=XSS_TITLE, url=XSS_URL, source="wire-x", score=-0.9, published_at=end - timedelta(minutes=2)
        )
    )
    return Alert(
        id=Alert.make_id("topic", "Earnings", start),
        scope="topic",
        key="Earnings",
        severity="critical",
        episode_start=start,
        window_start=end - timedelta(minutes=8),
        window_end=end - timedelta(minutes=5),
        negative_share=0.78,
        baseline=0.21,
        statistic=8.3,
        volume=42,
        baseline_volume=30.0,
        model_version="test-v1",
        updated_at=end - timedelta(minutes=5),
        evidence=evidence,
    )


def minute_floor(when: datetime | None = None) -> datetime:
    when = when or datetime.now(timezone.utc)
    return when.replace(second=0, microsecond=0)
