"""`finsentry worker` with an instant engine, for measuring the streaming layer's own cost.

    python benchmarks/null_worker.py     # configured through FINSENTRY_*, like the worker

Everything but the model is the real worker: the same run_worker (app factory, every agent,
logging, web page, /metrics), the near-duplicate index and entity extraction in the scoring
thread, the store, the detector. The engine answers at once with valid predictions, so what
the process spends per document is the pipeline's own work (bench_pipeline.py --engine null).

It lives here, as its own entry point, rather than as a backend the worker could be
configured to use: nobody should be able to run a production worker that scores nothing.
"""

from __future__ import annotations

import zlib

from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.models.engine import Prediction


def _prediction(sentiment: str, topic: str) -> Prediction:
    probabilities = {label: (0.8 if label == sentiment else 0.1) for label in SENTIMENT_LABELS}
    return Prediction(
        sentiment=sentiment,
        probabilities=probabilities,
        score=probabilities["positive"] - probabilities["negative"],
        topic=topic,
        topic_probability=0.9,
        model_version=NullEngine.version,
    )


class NullEngine:
    """models.engine.Engine's predict() contract at no cost. The answer depends on the text
    (a CRC picks it), so observations spread over several topics and both sentiments, as the
    detector sees them with a real model; no text is ever looked at beyond that checksum."""

    version = "null-bench-1"
    backend_name = "null"

    def __init__(self) -> None:
        self.choices = [_prediction(sentiment, topic) for topic in TOPIC_LABELS[:8] for sentiment in SENTIMENT_LABELS]

    def predict(self, texts):
        choices = self.choices
        return [choices[zlib.crc32(text.encode()) % len(choices)] for text in texts]


def main() -> None:
    from finsentry.cli.worker_app import run_worker
    from finsentry.logging import setup_logging
    from finsentry.settings import get_settings
    from finsentry.streams.runtime import Runtime

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    run_worker(settings, Runtime(settings, engine=NullEngine()))


if __name__ == "__main__":
    main()
