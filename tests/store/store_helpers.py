"""Records and servers for the store tests."""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finsentry.records import Alert, ScoredDocument, Sentiment, Topic
from finsentry.settings import Settings

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)

_PROBS = {
    "negative": {"negative": 0.8, "neutral": 0.15, "positive": 0.05},
    "neutral": {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
    "positive": {"negative": 0.05, "neutral": 0.15, "positive": 0.8},
}


def scored(
    i: int,
    *,
    sentiment: str = "neutral",
    score: float | None = None,
    topic: str = "Markets",
    minutes: float | None = None,
    **fields,
) -> ScoredDocument:
    """Document number i, published i minutes after T0 unless told otherwise."""
    probs = _PROBS[sentiment]
    base = dict(
        id=f"doc-{i:05d}",
        source="wire",
        kind="news",
        title=f"Story {i}",
        text=f"Body of story {i}.",
        published_at=T0 + timedelta(minutes=i if minutes is None else minutes),
        sentiment=Sentiment(
            label=sentiment,
            probabilities=probs,
            score=probs["positive"] - probs["negative"] if score is None else score,
        ),
        topic=Topic(label=topic, probability=0.9),
        entities=[],
        model_version="v-test",
        ingested_at=T0.timestamp(),
        explanation=[("story", 0.1)],
    )
    base.update(fields)
    return ScoredDocument(**base)


def alert(update: int = 0, *, key: str = "Energy", updated_at: datetime | None = None, **fields) -> Alert:
    start = T0
    base = dict(
        id=Alert.make_id("topic", key, start),
        scope="topic",
        key=key,
        severity="warning",
        update=update,
        episode_start=start,
        window_start=start,
        window_end=start + timedelta(minutes=3),
        negative_share=0.6,
        baseline=0.2,
        statistic=5.0,
        volume=40,
        baseline_volume=35.0,
        updated_at=updated_at or start + timedelta(minutes=update),
    )
    base.update(fields)
    return Alert(**base)


def store_settings(**overrides) -> Settings:
    """Settings for store tests: no replicas, short retry budget, no .env file."""
    base = dict(
        es_replicas=0,
        store_retry_budget_s=1.0,
        es_request_timeout_s=10.0,
        store_batch_size=200,
        sqlite_busy_timeout_s=2.0,
    )
    base.update(overrides)
    return Settings(_env_file=None, **base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def dump_as_seed(url: str, pattern: str, directory: Path) -> Path:
    """Write the indices matching `pattern` (settings that matter, mappings, aliases, documents)
    as an osmem seed directory, the way a node's data directory would keep them."""
    directory.mkdir(parents=True, exist_ok=True)
    for row in http_json("GET", f"{url}/_cat/indices/{pattern}?format=json&h=index"):
        index = row["index"]
        info = http_json("GET", f"{url}/{index}")[index]
        settings = info["settings"]["index"]
        kept = {k: settings[k] for k in ("number_of_shards", "number_of_replicas", "analysis") if k in settings}
        (directory / f"{index}.index.json").write_text(
            json.dumps({"settings": kept, "mappings": info["mappings"], "aliases": info.get("aliases", {})})
        )
        hits = http_json("POST", f"{url}/{index}/_search", {"size": 10000, "query": {"match_all": {}}})["hits"]["hits"]
        lines = []
        for hit in hits:
            lines += [json.dumps({"index": {"_id": hit["_id"]}}), json.dumps(hit["_source"])]
        if lines:  # osmem refuses an empty bulk body
            (directory / f"{index}.ndjson").write_text("\n".join(lines) + "\n")
    return directory


def require_real_elasticsearch(backend: str) -> None:
    """The real-cluster variant runs only with ES_URL; without it, it is reported as skipped."""
    import os

    import pytest

    if backend == "elasticsearch" and not os.environ.get("ES_URL"):
        pytest.skip("real-Elasticsearch variant: set ES_URL=http://user:pw@host:9200 to run it")
