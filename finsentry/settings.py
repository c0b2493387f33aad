"""Every setting finsentry reads, in one typed place.

Each field is an environment variable: ``FINSENTRY_`` + the field name in capitals
(``broker`` → ``FINSENTRY_BROKER``). A ``.env`` file in the working directory is read too.
CLI flags only override these. The README's settings table is generated from this class
(``finsentry settings --markdown``), so the description here is the documentation.
"""

from __future__ import annotations

import re
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from finsentry.errors import FinsentryError
from finsentry.threads import thread_plan

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FINSENTRY_", env_file=".env", extra="ignore")

    # --- Kafka ------------------------------------------------------------------------------
    broker: str = Field(
        "kafka://127.0.0.1:9092",
        description=(
            "Kafka bootstrap address(es): `kafka://host:port` or plain `host:port` (every command and flag takes "
            "both), several separated by `;` or `,`, e.g. kafka://k1:9092;k2:9092."
        ),
    )
    broker_connect_timeout_s: float = Field(
        300.0,
        ge=0,
        description=(
            "How long a worker, and a command that publishes or reads topics, waits for an unreachable broker at "
            "start-up (retrying with back-off, one log line per attempt) before it gives up with an error."
        ),
    )
    broker_embedded: bool = Field(
        False,
        description=(
            "The broker is the embedded tansu broker: apply its limits (one record per producer batch, no idempotence)."
        ),
    )
    topic_prefix: str = Field("finsentry.", description="Prefix of every topic name.")
    topic_partitions: int = Field(
        4, description="Partitions of the topics finsentry creates (= max workers per consumer group)."
    )
    topic_replication: int = Field(1, description="Replication factor of created topics (3 on a production cluster).")
    app_id: str = Field("finsentry", description="Faust app id = Kafka consumer group of the workers.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism when SASL is used."
    )
    kafka_username: str | None = Field(None, description="SASL user name.")
    kafka_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    kafka_ca_file: Path | None = Field(None, description="CA bundle for Kafka TLS.")
    consumer_fetch_max_wait_ms: int = Field(
        100,
        description=(
            "Longest a worker's fetch waits for records (Faust's fixed 1500 ms adds latency per hop on a quiet "
            "pipeline)."
        ),
    )
    broker_session_timeout_s: float = Field(30.0, description="Consumer group session timeout.")
    broker_heartbeat_s: float = Field(3.0, description="Consumer group heartbeat interval.")
    health_stall_s: float = Field(
        120.0,
        gt=0,
        description=(
            "A worker whose input waits (consumer lag above zero) while none of its committed offsets moved for this "
            "long reports not ready on /healthz (HTTP 503) and in finsentry_worker_ready; "
            "finsentry_worker_stalled_seconds counts the wait."
        ),
    )

    # --- Store ------------------------------------------------------------------------------
    store: str = Field(
        "sqlite:///var/finsentry.db",
        description=(
            "Where scored documents and alerts go: sqlite:///path.db or http(s)://host:9200 (Elasticsearch/OpenSearch)."
        ),
    )
    es_username: str | None = Field(None, description="Elasticsearch basic-auth user.")
    es_password: SecretStr | None = Field(None, description="Elasticsearch basic-auth password (never logged).")
    es_api_key: SecretStr | None = Field(None, description="Elasticsearch API key (instead of user/password).")
    es_ca_certs: Path | None = Field(None, description="CA bundle for Elasticsearch TLS.")
    es_verify_certs: bool = Field(True, description="Verify the Elasticsearch server certificate.")
    es_compat: Literal["elasticsearch", "opensearch"] = Field(
        "elasticsearch",
        description=(
            "'opensearch' sends plain application/json instead of the Elasticsearch compatibility media type (also "
            "?compat=opensearch in the store URL)."
        ),
    )
    es_index_prefix: str = Field(
        "finsentry", description="Prefix of the documents/alerts/labels indices and their alias."
    )
    es_retention_days: int = Field(
        90,
        description=(
            "Documents published more than this many days before today are deleted by the retention job (`finsentry "
            "store prune`; Elasticsearch drops whole daily indices) and, where the cluster supports it, by the "
            "ILM/ISM policy the store creates at start-up."
        ),
    )
    alert_retention_days: int = Field(
        365,
        ge=0,
        description=(
            "Alerts last updated more than this many days before today are deleted by the same retention job; kept "
            "longer than documents since they carry their evidence (titles, scores) with them."
        ),
    )
    es_shards: int = Field(1, description="Primary shards of each daily document index.")
    es_replicas: int = Field(
        1, description="Replicas of each finsentry index (0 on a single-node cluster keeps it green)."
    )
    es_request_timeout_s: float = Field(30.0, description="Timeout of one Elasticsearch request.")
    store_retry_budget_s: float = Field(
        10.0,
        description=(
            "How long one store call retries transient errors (connection, 429, 5xx) before it reports the store "
            "unavailable; the caller then retries with back-off."
        ),
    )
    sqlite_busy_timeout_s: float = Field(
        10.0,
        description=(
            "How long a SQLite call waits for another connection's write lock before the store counts as unavailable."
        ),
    )
    store_batch_size: int = Field(500, description="Records per bulk write.")
    store_retry_max_s: float = Field(
        30.0, description="Longest back-off between store retries (the pipeline waits, never drops)."
    )

    # --- Model ------------------------------------------------------------------------------
    model_path: Path | None = Field(
        None, description="Model directory to serve; default: the promoted registry version, else the shipped model."
    )
    backend: Literal["auto", "onnx", "torch", "torch-bf16", "cuda"] = Field(
        "auto", description="Inference backend; auto measures and picks the fastest that agrees with fp32."
    )
    model_cache_dir: Path = Field(
        Path("var/model-cache"), description="Where exported ONNX files and backend choices are cached."
    )
    registry_dir: Path = Field(
        Path("var/registry"), description="Model registry root (versions, manifests, the promoted pointer)."
    )
    inference_threads: int = Field(
        0, ge=0, description="Cores inference uses in all (0 = all cores), split evenly between the inference streams."
    )
    inference_streams: int = Field(
        1,
        ge=0,
        description=(
            "Batches the worker computes at once, each on its own thread with inference_threads/streams cores (0 = "
            "one per core). Under the worker's own load one core per batch beats every core on one batch "
            "(bench_pipeline, 2 cores, bf16: 161 vs 136 docs/s) but costs memory (1,048 vs 920 MB RSS): the default "
            "keeps a CPU worker inside 1 GB. A GPU backend computes one batch at a time."
        ),
    )
    inference_release_memory: bool = Field(
        True,
        description=(
            "Give memory freed by a batch back to the system after each model call (glibc malloc_trim; ONNX Runtime "
            "arena shrinkage): keeps a worker's RSS flat and within budget at a few per cent of throughput."
        ),
    )
    max_batch: int = Field(64, description="Most documents scored in one model call.")
    batch_window_s: float = Field(0.05, description="Longest wait to fill a batch before scoring what is there.")
    score_concurrency: int = Field(
        0,
        ge=0,
        le=16,
        description=(
            "Batches in flight in the score agent (0 = inference streams + 1): one more than the model computes at "
            "once, so while one is delivered the model does not wait on the broker. Offsets are still committed only "
            "up to the oldest batch not yet delivered."
        ),
    )
    future_tolerance_s: float = Field(
        3600.0,
        description=(
            "Documents published more than this far after they were received are dead-lettered (a wrong clock would "
            "stall the detector's event time)."
        ),
    )
    max_text_bytes: int = Field(100_000, description="Documents with more UTF-8 bytes of text are dead-lettered.")
    entity_aliases: Path | None = Field(
        None, description="CSV of company aliases (ticker,name,aliases) replacing the shipped list."
    )
    explain_evidence: bool = Field(True, description="Attach word-level explanations to alert evidence.")

    # --- Near-duplicates --------------------------------------------------------------------
    dedup_threshold: float = Field(
        0.8,
        description=(
            "Similarity above which a document duplicates an earlier story: the MinHash estimate of the Jaccard "
            "similarity of word shingles, or of the share of the shorter text contained in the longer one (so a copy "
            "with an added prefix, suffix or link still matches)."
        ),
    )
    dedup_horizon_s: float = Field(
        6 * 3600, description="How long (event time) a story is remembered for near-duplicate detection."
    )
    dedup_shingle_words: int = Field(2, description="Words per shingle of the near-duplicate check.")
    dedup_num_perm: int = Field(
        128, description="MinHash permutations of the near-duplicate check (more: more precise, slower)."
    )
    dedup_max_stories: int = Field(
        20_000,
        description=(
            "Most stories a worker remembers for the near-duplicate check; the oldest are forgotten first (about 14 "
            "KB each: 20,000 ≈ 280 MB)."
        ),
    )

    # --- Detector ---------------------------------------------------------------------------
    alert_bucket_s: int = Field(60, description="Event-time bucket width in seconds.")
    alert_lateness_s: int = Field(
        300,
        description=(
            "A bucket is closed (folded into the baseline) once the scope's clock (the low watermark of the input "
            "partitions, see docs/alerting.md) is this much past the bucket's end; it is also how far out of order "
            "records within one partition may come. Records for closed buckets are not counted; they are counted as "
            "late per scope (metric, log line, the alert's late_records)."
        ),
    )
    alert_idle_partition_s: float = Field(
        30.0,
        gt=0,
        description=(
            "An input partition from which nothing arrived for this many seconds (processing time), with nothing "
            "waiting for it upstream (raw, valid and scored offsets caught up), is idle: it no longer holds the "
            "detector's clock back. A partition with work waiting is never idle, however long it waits."
        ),
    )
    alert_watermark_interval_s: float = Field(
        2.0,
        gt=0,
        description=(
            "How often each worker reports the watermark and idleness of its input partitions to the detector, "
            "besides after every batch."
        ),
    )
    flow_max_skew_s: float = Field(
        300.0,
        gt=0,
        description=(
            "Flow control: an input partition more than this many seconds of event time ahead of the slowest "
            "partition that still has work waiting is paused until that one catches up, so the detector's clock is "
            "not held back far and little waits in its state."
        ),
    )
    flow_max_pause_s: float = Field(
        10.0,
        gt=0,
        description=(
            "Flow control bound: a partition is resumed after this many seconds paused if the partition it waits for "
            "has made no progress meanwhile, so a stuck partition cannot stall the rest."
        ),
    )
    alert_window_buckets: int = Field(
        3,
        description=(
            "Shortest window = this many latest buckets (the newest one still filling): the time scale of a busy "
            "topic's surge."
        ),
    )
    alert_longer_windows_buckets: str = Field(
        "15,60",
        description=(
            "Longer windows, in buckets, comma-separated, judged at the same time as the shortest: the time scales of "
            "a quiet scope's burst (a company with a few stories a day shows an episode over an hour, not over three "
            "minutes). Empty: the shortest window only."
        ),
    )
    alert_baseline_halflife_buckets: float = Field(
        60.0, description="Half-life of the EWMA baseline of negative share and volume, in buckets."
    )
    alert_drift_halflife_buckets: float = Field(
        1440.0,
        description=(
            "Half-life, in buckets, of the slow baseline share that the CUSUM measures slow drifts against (the EWMA "
            "baseline follows a drift too closely)."
        ),
    )
    alert_min_count: int = Field(
        5,
        ge=1,
        description="Floor of distinct stories in a window (near-duplicates counted once) below which it never alerts.",
    )
    alert_min_negatives: int = Field(
        6,
        ge=1,
        description=(
            "Floor of distinct negative stories in a window below which it never alerts: three negative tweets at "
            "night are not an episode, whatever their share."
        ),
    )
    alert_min_baseline_buckets: int = Field(5, description="Buckets a scope must have seen before it may alert.")
    alert_z_threshold: float = Field(
        4.0,
        description=(
            "Statistic that opens an episode (severity warning): the normal quantile of the window tests' tail "
            "probability (4 ≈ 3e-5, see docs/alerting.md). The one setting that trades false alarms against "
            "sensitivity: benchmarks/detector_scenarios.py prints the false alarms per scope and week it gives."
        ),
    )
    alert_z_support: float = Field(
        2.0,
        description=(
            "A window whose count of negative stories is surprising at alert_z_threshold for the scope's usual rate "
            "also needs its share test at this level (a quiet scope's share can never be very surprising with a few "
            "stories); a volume surge at the usual share stays below it."
        ),
    )
    alert_z_critical: float = Field(7.0, description="z-score for severity critical.")
    alert_z_rearm: float = Field(
        2.0,
        description=(
            "An episode ends when, at a bucket boundary, the statistic of the window that fired (its time scale) is "
            "below this (or its share is less than half of alert_min_share_increase above the baseline)."
        ),
    )
    alert_min_share_increase: float = Field(
        0.15, description="Window negative share must exceed the baseline by at least this much."
    )
    alert_cusum_k: float = Field(
        0.05,
        description=(
            "CUSUM slack for slow drifts, in share units: the CUSUM accumulates the evidence (log-likelihood ratio "
            "per story) that the share is baseline + 2k rather than the baseline."
        ),
    )
    alert_cusum_h: float = Field(
        12.0, description="CUSUM decision threshold in log-likelihood-ratio units (0 disables CUSUM)."
    )
    alert_cooldown_s: int = Field(
        1800,
        description=(
            "After an episode ends, a renewed spike of the same scope within this many seconds re-opens the same "
            "alert instead of raising a new one."
        ),
    )
    alert_scope_overrides: str = Field(
        "",
        description=(
            "Per-scope thresholds, ';'-separated 'scope[:key]=name=value,...' with names z, critical, rearm, support, "
            "min, min_negative, increase, cusum_k, cusum_h, cooldown, or 'off'; e.g. "
            "'topic:Earnings=z=5,min=30;entity:AAPL=z=3;entity=min=10;entity:SPY=off'."
        ),
    )
    alert_evidence_docs: int = Field(5, description="Representative documents attached to an alert.")
    watched_entities: str = Field(
        "", description="Comma-separated tickers shown on dashboards and exported as metrics (bounded label set)."
    )

    # --- Notifications ----------------------------------------------------------------------
    alertmanager_url: str | None = Field(None, description="Alertmanager base URL, e.g. http://alertmanager:9093.")
    apprise_urls: str = Field(
        "",
        description=(
            "Apprise URLs separated by spaces or commas (Slack, Teams, mailto://, json://...). Each URL is a notifier "
            "of its own, so one that is down delays no other."
        ),
    )
    outbox_path: Path = Field(Path("var/outbox.db"), description="Persistent notification outbox (SQLite).")
    notify_max_per_minute: int = Field(30, description="Rate limit per notifier.")
    notify_retry_min_s: float = Field(
        1.0, description="First back-off after a failed notification; it doubles per failure."
    )
    notify_retry_max_s: float = Field(300.0, description="Longest back-off between notification retries.")
    notify_timeout_s: float = Field(
        10.0, description="Timeout of one Alertmanager request (Apprise services use their own timeouts)."
    )
    dashboard_url: str = Field("http://127.0.0.1:6066", description="Link to the dashboard put into notifications.")

    # --- Web / metrics ----------------------------------------------------------------------
    web_host: str = Field(
        "127.0.0.1", description="Address the worker's web page, /api and /metrics bind to (loopback by default)."
    )
    web_port: int = Field(6066, description="Port of the worker's web page, /api and /metrics.")
    web_token: SecretStr | None = Field(
        None, description="If set, /api and the page require this token (header X-Finsentry-Token or ?token=)."
    )
    grafana_url: str | None = Field(None, description="Grafana base URL that `finsentry dashboards push` uploads to.")
    grafana_token: SecretStr | None = Field(
        None, description="Grafana service-account token for `finsentry dashboards push` (never logged)."
    )

    # --- Ingest -----------------------------------------------------------------------------
    sources_file: Path = Field(Path("sources.yml"), description="Scraper source list.")
    seen_path: Path = Field(
        Path("var/seen.db"), description="Persistent seen-set of the scrapers (URL / GUID / content hash)."
    )
    push_host: str = Field("127.0.0.1", description="Bind address of the HTTP push endpoint.")
    push_port: int = Field(6070, description="Port of the HTTP push endpoint.")
    push_token: SecretStr | None = Field(
        None,
        description=(
            "Token the push endpoint requires (Authorization: Bearer ...); the endpoint refuses to start without one."
        ),
    )
    user_agent: str = Field(
        "finsentry/0.1 (+https://github.com/finsentry/finsentry)", description="User-Agent of the scrapers."
    )
    per_host_interval_s: float = Field(2.0, description="Politeness: least seconds between two requests to one host.")
    scrape_metrics_port: int = Field(6071, description="Port of the scraper's /metrics.")
    scrape_metrics_host: str = Field(
        "127.0.0.1", description="Address the scraper's /metrics binds to (loopback by default)."
    )
    scrape_timeout_s: float = Field(20.0, description="Timeout of one scraper HTTP request.")
    seen_retention_days: float = Field(
        180.0, description="The scrapers forget items their sources have not listed for this long (at start-up)."
    )
    scrape_backoff_max_s: float = Field(
        600.0,
        description=(
            "Cap of the back-off of a failing source (waits double from the shorter of its interval and 30 s; a "
            "longer interval is its own cap)."
        ),
    )
    push_max_body_bytes: int = Field(10_000_000, description="Largest request body the HTTP push endpoint accepts.")
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "gzip", description="Compression of the ingest producer (snappy, lz4 and zstd need their Python libraries)."
    )
    producer_linger_ms: int = Field(
        5,
        description=(
            "How long the kafka-python producers (ingest, dlq redrive, training) wait to fill a batch, on the "
            "embedded broker too."
        ),
    )
    producer_delivery_timeout_s: float = Field(
        120.0,
        description="Upper bound on delivering one document, retries included; past it the send fails with an error.",
    )

    # --- Training ---------------------------------------------------------------------------
    train_schedule: str = Field("0 3 * * 0", description="Cron schedule of scheduled retraining (UTC).")
    train_data_dir: Path = Field(Path("data/tfn"), description="Directory with the base training CSVs (tfns_*/tfnt_*).")
    train_method: Literal["full", "lora"] = Field("lora", description="Fine-tuning method of scheduled retraining.")
    train_max_steps: int = Field(0, description="Cap on steps of scheduled retraining (0 = full epochs).")
    gate_tolerance: float = Field(
        0.01, description="A candidate may be at most this much worse than the promoted model on any golden metric."
    )
    gate_min_sentiment_accuracy: float = Field(
        0.80, description="Absolute floor: sentiment accuracy on the golden set."
    )
    gate_min_sentiment_macro_f1: float = Field(0.75, description="Absolute floor: sentiment macro-F1.")
    gate_min_topic_accuracy: float = Field(0.80, description="Absolute floor: topic accuracy.")
    gate_max_forgetting: float = Field(
        0.02, description="Max drop on the parent's held-out set (continual learning bound)."
    )
    drift_window: int = Field(2000, description="Scored documents per drift check window.")
    drift_psi_threshold: float = Field(
        0.2, description="Population stability index of the predicted class mix that counts as drift."
    )
    drift_confidence_drop: float = Field(0.1, description="Drop of mean top-class confidence that counts as drift.")
    drift_label_accuracy_floor: float = Field(
        0.75, description="Accuracy on fresh analyst labels below which drift is declared."
    )
    drift_check_interval_s: float = Field(300.0, description="How often the trainer checks for drift.")
    gate_max_ece_increase: float = Field(
        0.03,
        description=(
            "A candidate's calibration error (ECE) may exceed the promoted model's by at most this much on any golden "
            "set."
        ),
    )
    gate_min_examples: int = Field(
        100,
        description=(
            "Golden sets (and the parent's held-out split) with fewer examples are reported but not gated: too noisy "
            "to judge."
        ),
    )
    feedback_golden_share: float = Field(
        0.2,
        description=(
            "Share of analyst-labelled documents kept for evaluation (chosen by a hash of the document id), never "
            "trained on."
        ),
    )
    train_extra_dir: Path = Field(
        Path("var/training-data"),
        description=(
            "New labelled CSV/JSONL files (text + sentiment and/or topic) that scheduled retraining learns from, "
            "beside the analyst labels."
        ),
    )
    train_replay_fraction: float = Field(
        0.3,
        description=(
            "Share of the parent model's training data (minus its held-out split) replayed in a retraining run."
        ),
    )
    train_epochs: float = Field(
        3.0, description="Epochs of scheduled retraining over the new data plus the replay sample."
    )
    train_min_new_examples: int = Field(
        20,
        description=(
            "Scheduled retraining is skipped while there are fewer new labelled examples than this (nothing new to "
            "learn)."
        ),
    )
    drift_min_records: int = Field(
        200,
        description=(
            "Fewest scored documents of the serving version in the window for the class-mix and confidence checks."
        ),
    )
    drift_min_labels: int = Field(30, description="Fewest fresh analyst labels for the label-accuracy check.")
    trainer_metrics_host: str = Field(
        "127.0.0.1", description="Address the trainer's /metrics binds to (loopback by default)."
    )
    trainer_metrics_port: int = Field(6072, description="Port of the trainer's /metrics.")

    # --- Process ----------------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Working data directory (Faust table state, databases).")
    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(False, description="Log as JSON lines instead of key=value.")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        """`FINSENTRY_MODEL_PATH=` (empty, as `finsentry settings` prints an unset value)
        means unset for every optional setting, instead of the string '' or Path('')."""
        if isinstance(data, dict):
            return {k: (None if v == "" and _optional(cls.model_fields.get(k)) else v) for k, v in data.items()}
        return data

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        """`host:port` and `kafka://host:port` alike become Faust's `kafka://h1:p1;h2:p2`."""
        body = value.strip()
        match = _SCHEME.match(body)
        scheme = match.group(0) if match else "kafka://"
        addresses = [
            a.strip() for a in body[len(match.group(0)) if match else 0 :].replace(";", ",").split(",") if a.strip()
        ]
        if not addresses:
            raise ValueError("names no broker address (host:port or kafka://host:port)")
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{address!r} is not host:port (write host:port or kafka://host:port)")
        return scheme + ";".join(addresses)

    @property
    def inference_plan(self) -> tuple[int, int]:
        """(inference streams, score batches in flight) with the zeros resolved."""
        streams, _ = thread_plan(self.inference_threads, self.inference_streams)
        return streams, self.score_concurrency or streams + 1

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def broker_address(self) -> str:
        """host:port[,host:port] for kafka-python/aiokafka from the Faust-style URL."""
        url = self.broker.split("://", 1)[-1]
        return ",".join(part.strip() for part in url.replace(";", ",").split(",") if part.strip())

    def parsed_apprise_urls(self) -> list[str]:
        return [u for u in self.apprise_urls.replace(",", " ").split() if u]

    def parsed_watched_entities(self) -> list[str]:
        return [e.strip().upper() for e in self.watched_entities.split(",") if e.strip()]


def _optional(field: FieldInfo | None) -> bool:
    if field is None:
        return False
    origin = typing.get_origin(field.annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(field.annotation)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class SettingsOverrideError(FinsentryError, ValueError):
    """A value given on top of the settings (a CLI flag) that the settings' types refuse."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def settings_with(base: Settings | None = None, **overrides: Any) -> Settings:
    """`base` (default: from the environment) with the non-None `overrides` on top,
    validated by the same types as the environment: a bad value raises
    SettingsOverrideError naming its field, before anything starts."""
    base = base if base is not None else get_settings()
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(Settings.model_fields)
    if unknown:
        raise TypeError(f"not settings: {sorted(unknown)}")
    if not changes:
        return base
    try:
        return Settings.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error.get("loc") else next(iter(changes))
        raise SettingsOverrideError(field, str(error["msg"]).removeprefix("Value error, ")) from None


def settings_values(
    settings: Settings, changed: bool = False, show_secrets: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """({FINSENTRY_NAME: JSON value}, names of set secrets left out). None stays None;
    `changed`: only the fields whose value differs from the default."""
    values: dict[str, Any] = {}
    hidden: list[str] = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if changed and value == field.get_default(call_default_factory=True):
            continue
        env = f"FINSENTRY_{name.upper()}"
        if isinstance(value, SecretStr):
            if not show_secrets:
                hidden.append(env)
                continue
            value = value.get_secret_value()
        values[env] = str(value) if isinstance(value, Path) else value
    return values, hidden


def _dotenv_value(value: Any) -> str:
    """A value as python-dotenv reads it back: empty for None, quoted when not plain."""
    if value is None:
        return ""
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:@+,=-]*", text):
        return text
    if "'" not in text:
        return f"'{text}'"  # single quotes: taken literally, no escapes, no ${} interpolation
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def dotenv_lines(values: dict[str, Any], hidden: list[str]) -> list[str]:
    """.env lines for `settings_values`' output; a hidden secret becomes a comment."""
    lines = [f"{name}={_dotenv_value(value)}" for name, value in values.items()]
    lines += [f"# {name} is set but not shown (finsentry settings --show-secrets prints it)" for name in hidden]
    return lines


def settings_markdown() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default is None else str(default)
        rows.append(f"| `FINSENTRY_{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(rows)


README_MARKERS = ("<!-- settings-table -->", "<!-- /settings-table -->")


def readme_with_settings(readme: str) -> str:
    """The README text with the settings table between its markers regenerated."""
    start, end = README_MARKERS
    head, _, rest = readme.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{settings_markdown()}\n{end}{tail}"
