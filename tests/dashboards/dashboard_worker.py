"""A finsentry worker for the dashboard tests, run as its own process: `python dashboard_worker.py`,
configured like `finsentry worker` through FINSENTRY_* variables.

It is the real thing where it matters to the dashboards: the worker's composition root
(build_worker_app: the agents' app with the web dashboard mounted), the validate, score and
index agents and the alert agents (observe, detect, notify: the spike detector and the
notification outbox) on the embedded
broker, the SQLite store, the consumer-lag collector and the Faust web server. Two
stand-ins, both because what they replace is not what these tests look at:

- the model is a word-list scorer, not the transformer: the dashboards need scored records
  and the score agent's metric code paths, not the model's judgement (tests/models checks
  that), and loading the transformer would cost the suite many seconds of CPU;
- the series of the processes that are not a worker (scrapers and the publishers they run,
  the trainer) are produced by a timer calling the same metric objects those processes use,
  so the Prometheus queries of the dashboards and rules have every series to find.
"""

from __future__ import annotations

import logging
import re
import time

import faust

from finsentry import metrics
from finsentry.labels import TOPIC_LABELS
from finsentry.models.engine import Prediction
from finsentry.settings import get_settings
from finsentry.streams.consumer_lag import register_lag_collector
from finsentry.streams.runtime import Runtime
from finsentry.training import telemetry
from finsentry.worker import build_worker_app

NEGATIVE = {
    "slump",
    "slumps",
    "plunge",
    "plunges",
    "misses",
    "lawsuit",
    "downgrade",
    "cuts",
    "recall",
    "recalls",
    "falls",
}
POSITIVE = {"beats", "surges", "upgrade", "record", "growth", "jumps", "climbs", "raises"}
TOPIC_WORDS = {
    "earnings": "Earnings",
    "quarterly": "Earnings",
    "oil": "Energy / Oil",
    "fed": "Fed / Central Banks",
    "merger": "M&A / Investments",
    "acquire": "M&A / Investments",
    "inflation": "Macro",
}
_WORD = re.compile(r"[a-z]+")


class WordListEngine:
    """Stand-in for models.engine.Engine: same predict() contract, judged by word lists."""

    version = "wordlist-test-1"
    backend_name = "wordlist"

    def predict(self, texts):
        out = []
        for text in texts:
            words = set(_WORD.findall(text.lower()))
            neg, pos = len(words & NEGATIVE), len(words & POSITIVE)
            label = "negative" if neg > pos else "positive" if pos > neg else "neutral"
            p = (
                {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
                if label == "negative"
                else {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
                if label == "positive"
                else {"negative": 0.15, "neutral": 0.7, "positive": 0.15}
            )
            topic = next((TOPIC_WORDS[w] for w in sorted(words) if w in TOPIC_WORDS), "General News / Opinion")
            assert topic in TOPIC_LABELS
            out.append(
                Prediction(
                    sentiment=label,
                    probabilities=p,
                    score=p["positive"] - p["negative"],
                    topic=topic,
                    topic_probability=0.9,
                    model_version=self.version,
                )
            )
        return out


class NoDuplicates:
    """Stand-in for the near-duplicate index when alerting.dedup is not installed."""

    def check(self, doc_id, text, published_at):
        return None


def near_duplicates(settings):
    try:
        from finsentry.alerting.dedup import NearDuplicateIndex
    except ImportError:
        return NoDuplicates()
    return NearDuplicateIndex(settings.dedup_threshold, settings.dedup_horizon_s)


def other_processes_tick() -> None:
    """The series the scrapers and the trainer export (see the module docstring)."""
    for source in ("wire-a", "wire-b"):
        metrics.SCRAPE_ITEMS.labels(source=source).inc(2)
        metrics.SCRAPE_SEEN.labels(source=source).inc()
        metrics.SCRAPE_LAST_SUCCESS.labels(source=source).set(time.time())
    metrics.SCRAPE_ERRORS.labels(source="wire-b", kind="http_500").inc()
    metrics.INGEST_PUBLISHED.inc(4)
    telemetry.RETRAIN_RUNS.labels(trigger="schedule", result="promoted").inc()
    telemetry.DRIFT_PSI.labels(head="sentiment").set(0.05)
    telemetry.DRIFT_TRIGGERS.labels(reason="psi").inc()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # as run_worker does
    runtime = Runtime(settings, engine=WordListEngine(), dedup=near_duplicates(settings))
    app = build_worker_app(settings, runtime=runtime, agents=("validate", "score", "index", "alert"))
    register_lag_collector(app, interval_s=1.0)

    @app.timer(interval=1.0, name="dashboard-tests.other-processes")
    async def other_processes() -> None:
        other_processes_tick()

    # The web server's address and port come from the app's configuration (faust_config).
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
