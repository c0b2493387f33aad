"""Prometheus metrics of the pipeline: the worker, the store, the detector and ingest (the
trainer's own are in training/telemetry.py). Label sets are bounded: no per-document labels,
and entities appear only when listed in FINSENTRY_WATCHED_ENTITIES."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from finsentry.records import ScoredDocument

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

DOCS_INGESTED = Counter("finsentry_documents_ingested_total", "Raw documents read from the raw topic.")
DOCS_VALID = Counter("finsentry_documents_valid_total", "Documents that passed validation.", ["source"])
DOCS_SCORED = Counter("finsentry_documents_scored_total", "Documents scored by the model.", ["source"])
DOCS_STORED = Counter("finsentry_documents_stored_total", "Scored documents acknowledged by the store.")
DOCS_DEAD = Counter(
    "finsentry_documents_dead_lettered_total", "Records sent to the dead-letter topic.", ["stage", "reason"]
)
DOCS_DUPLICATE = Counter(
    "finsentry_documents_near_duplicate_total", "Documents recognised as near-duplicates of an earlier story."
)

BATCH_SIZE = Histogram("finsentry_batch_size", "Documents per model call.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
INFERENCE_SECONDS = Histogram("finsentry_inference_seconds", "Wall time of one model call.", buckets=LATENCY_BUCKETS)
INGEST_TO_STORED = Histogram(
    "finsentry_ingest_to_stored_seconds",
    "From ingest (raw topic) to acknowledged by the store.",
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge("finsentry_consumer_lag_messages", "Messages behind the high-water mark, per topic.", ["topic"])
STALLED_SECONDS = Gauge(
    "finsentry_worker_stalled_seconds",
    (
        "How long input has waited (lag above zero) with no committed offset of this worker moving; 0 while nothing "
        "waits or offsets move."
    ),
)
WORKER_READY = Gauge(
    "finsentry_worker_ready",
    "1 while /healthz says ready (partitions held, recovery over, progress when input waits), else 0.",
)

STORE_BULK_SECONDS = Histogram("finsentry_store_bulk_seconds", "Wall time of one bulk upsert.", buckets=LATENCY_BUCKETS)
STORE_ERRORS = Counter("finsentry_store_errors_total", "Failed store operations (the batch is retried).", ["kind"])

ALERTS_RAISED = Counter("finsentry_alerts_total", "Alerts raised (new episodes).", ["scope", "severity"])
NEGATIVE_SHARE = Gauge("finsentry_negative_share", "Negative share of the latest complete bucket per topic.", ["topic"])
ENTITY_NEGATIVE_SHARE = Gauge(
    "finsentry_entity_negative_share", "Negative share of the latest complete bucket for watched entities.", ["entity"]
)
LATE_RECORDS = Counter(
    "finsentry_detector_late_records_total",
    (
        "Records that came after the detector closed their bucket (the scope's clock was past them by more than the "
        "lateness bound): not counted, logged, and reported per scope in the alert's late_records."
    ),
    ["scope"],
)
REDELIVERED_OBSERVATIONS = Counter(
    "finsentry_detector_redelivered_observations_total",
    "Observations of a document the scope had counted already (delivered again after a rebalance or a restart): "
    "not counted a second time.",
    ["scope"],
)
WATERMARK_SKEW = Gauge(
    "finsentry_detector_watermark_skew_seconds",
    (
        "Event-time spread between the active source partitions, as the detector's clock of one observations "
        "partition sees it."
    ),
    ["partition"],
)
PARTITION_EVENT_TIME = Gauge(
    "finsentry_partition_event_time_seconds",
    "Newest event time (epoch seconds) read from an input partition by this worker.",
    ["topic", "partition"],
)
OUT_OF_ORDER_DELIVERIES = Counter(
    "finsentry_score_out_of_order_total",
    "Times the score agent stopped waiting for an earlier record of a partition (not handed over within its "
    "bound) and delivered later ones first: the detector may then count records of that partition as late.",
    ["topic"],
)
PAUSED_PARTITIONS = Gauge(
    "finsentry_paused_partitions",
    "Input partitions this worker holds paused because they run ahead in event time.",
    ["topic"],
)
FLOW_SKEW = Gauge(
    "finsentry_partition_skew_seconds",
    "Event-time spread between the newest records read from this worker's partitions of a topic.",
    ["topic"],
)

MODEL_INFO = Gauge("finsentry_model_info", "The model version serving (value 1).", ["version", "backend"])
MODEL_SWAPS = Counter("finsentry_model_swaps_total", "Model swaps in this worker.", ["action", "result"])

NOTIFICATIONS = Counter("finsentry_notifications_total", "Notification attempts.", ["notifier", "result"])
OUTBOX_PENDING = Gauge("finsentry_outbox_pending", "Notifications waiting in the outbox.")


def set_model_info(version: str, backend: str) -> None:
    MODEL_INFO.clear()
    MODEL_INFO.labels(version=version, backend=backend).set(1)


_SOURCE_LABELS: set[str] = set()
MAX_SOURCE_LABELS = 50


def source_label(source: str) -> str:
    """Bounded `source` label: the first 50 distinct sources by name, then 'other'."""
    name = source[:64]
    if name in _SOURCE_LABELS:
        return name
    if len(_SOURCE_LABELS) < MAX_SOURCE_LABELS:
        _SOURCE_LABELS.add(name)
        return name
    return "other"


# Ingest: the producer (every publisher) and the scrapers (one label value per configured source).
INGEST_PUBLISHED = Counter("finsentry_ingest_published_total", "Records acknowledged by the broker on the raw topic.")
INGEST_DELIVERY_FAILURES = Counter(
    "finsentry_ingest_delivery_failures_total",
    "Records the broker never acknowledged (the send raised or timed out).",
    ["error"],
)
SCRAPE_ITEMS = Counter("finsentry_scrape_items_total", "New documents a source published.", ["source"])
SCRAPE_SEEN = Counter(
    "finsentry_scrape_seen_total", "Items a source skipped because they were published before.", ["source"]
)
SCRAPE_NOT_MODIFIED = Counter("finsentry_scrape_not_modified_total", "Polls answered 304 Not Modified.", ["source"])
SCRAPE_ERRORS = Counter(
    "finsentry_scrape_errors_total", "Failed polls of a source (retried with back-off).", ["source", "kind"]
)
SCRAPE_LAST_SUCCESS = Gauge(
    "finsentry_scrape_last_success_timestamp_seconds", "Unix time of the last successful poll of a source.", ["source"]
)
SCRAPE_ROBOTS_BLOCKED = Counter(
    "finsentry_scrape_robots_blocked_total", "Requests not made because robots.txt disallows them.", ["source"]
)
PUSH_REQUESTS = Counter("finsentry_push_requests_total", "Requests to the HTTP push endpoint by answer.", ["status"])


# Per-topic volume by sentiment: 20 topics x 3 labels, a fixed label set. Prometheus
# derives the negative share per topic from it (finsentry:topic_negative_ratio:increase30m),
# and the backstop alert reads only that, so it works without the detector's gauge.
TOPIC_DOCUMENTS = Counter(
    "finsentry_topic_documents_total", "Scored documents by topic and sentiment label.", ["topic", "sentiment"]
)


def count_scored(record: ScoredDocument) -> None:
    """Count one scored record (a ScoredDocument): by source, and by topic and sentiment."""
    DOCS_SCORED.labels(source=source_label(record.source)).inc()
    TOPIC_DOCUMENTS.labels(topic=record.topic.label, sentiment=record.sentiment.label).inc()


def _initialise_known_series() -> None:
    """Create the label combinations known in advance at zero.

    A counter series that first appears already at 1 shows no increase() in Prometheus, so
    a one-off event such as a rollback would never fire its rule; starting them at 0 fixes that.
    """
    for action in ("promote", "rollback"):
        for result in ("swapped", "failed"):
            MODEL_SWAPS.labels(action=action, result=result)
    STORE_ERRORS.labels(kind="unavailable")
    STORE_ERRORS.labels(kind="auth")  # refused credentials: the first one should already alert
    for scope in ("global", "topic", "entity"):  # the detector's scopes (alerting/observations.py)
        LATE_RECORDS.labels(scope=scope)  # the first late record shows as an increase


def initialise_notifier_series(notifier: str) -> None:
    """Start a notifier's failure counters at 0 (call once per notifier when it is set up),
    so that its first rejected notification already shows as an increase."""
    for result in ("failed", "rejected"):
        NOTIFICATIONS.labels(notifier=notifier, result=result)


_initialise_known_series()
