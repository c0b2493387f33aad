"""The "Pipeline health" dashboard, for operators: is the pipeline moving, how fast, what
is failing, which model serves. Prometheus only; metric names from finsentry/metrics.py."""

from __future__ import annotations

from finsentry.dashboards.grafana.datasources import PROMETHEUS
from finsentry.dashboards.grafana.model import Dashboard, Panel, PromQuery, row

UID = "finsentry-pipeline"
RATE = "$__rate_interval"

LINES = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 10, "showPoints": "never", "spanNulls": True}
LEGEND = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi", "sort": "desc"}}
DOCS_PER_S = "suffix: docs/s"


def quantiles(metric: str, qs=(0.5, 0.9, 0.99)) -> list[PromQuery]:
    return [
        PromQuery(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[{RATE}])))", legend=f"p{int(q * 100)}")
        for q in qs
    ]


def timeseries(title: str, queries: list[PromQuery], description: str, unit: str, width: int = 12, **extra) -> Panel:
    return Panel(
        title,
        "timeseries",
        PROMETHEUS,
        queries,
        description=description,
        unit=unit,
        width=width,
        defaults={"custom": LINES},
        options=LEGEND,
        **extra,
    )


def flow_panels() -> list[Panel]:
    return [
        row("Flow"),
        timeseries(
            "Throughput",
            [
                PromQuery(f"sum(rate(finsentry_documents_ingested_total[{RATE}]))", legend="read from docs.raw"),
                PromQuery(f"sum(rate(finsentry_documents_scored_total[{RATE}]))", legend="scored"),
                PromQuery(f"sum(rate(finsentry_documents_stored_total[{RATE}]))", legend="stored"),
                PromQuery(f"sum(rate(finsentry_documents_dead_lettered_total[{RATE}]))", legend="dead-lettered"),
            ],
            "Documents per second at each stage, summed over workers.",
            DOCS_PER_S,
        ),
        timeseries(
            "Ingest → stored latency",
            quantiles("finsentry_ingest_to_stored_seconds"),
            "From the raw topic to acknowledged by the store, percentiles over all workers.",
            "s",
        ),
        timeseries(
            "Consumer lag",
            [PromQuery("sum by (topic) (finsentry_consumer_lag_messages)", legend="{{topic}}")],
            "Messages behind the log end per topic, summed over workers. Growing lag means the workers "
            "fall behind (alert FinsentryConsumerLagGrowing).",
            "short",
        ),
        timeseries(
            "Batch size",
            [
                PromQuery(
                    f"sum(rate(finsentry_batch_size_sum[{RATE}])) / sum(rate(finsentry_batch_size_count[{RATE}]))",
                    legend="mean",
                ),
                PromQuery(
                    f"histogram_quantile(0.9, sum by (le) (rate(finsentry_batch_size_bucket[{RATE}])))", legend="p90"
                ),
            ],
            "Documents per model call: close to FINSENTRY_MAX_BATCH under load, small when quiet.",
            "short",
        ),
        timeseries(
            "Inference time per model call",
            quantiles("finsentry_inference_seconds", (0.5, 0.99)),
            "Wall time of one batched model call.",
            "s",
        ),
        timeseries(
            "Dead letters by stage and reason",
            [
                PromQuery(
                    f"sum by (stage, reason) (rate(finsentry_documents_dead_lettered_total[{RATE}]))",
                    legend="{{stage}}: {{reason}}",
                )
            ],
            "Records sent to the dlq topic; each dead letter carries its reason and raw payload.",
            DOCS_PER_S,
        ),
    ]


def store_panels() -> list[Panel]:
    return [
        row("Store"),
        timeseries(
            "Store bulk write time",
            quantiles("finsentry_store_bulk_seconds", (0.5, 0.99)),
            "Wall time of one bulk upsert (Elasticsearch or SQLite).",
            "s",
        ),
        timeseries(
            "Store errors",
            [PromQuery(f"sum by (kind) (rate(finsentry_store_errors_total[{RATE}]))", legend="{{kind}}")],
            "Failed store calls. The index agent retries the batch; nothing is dropped, the topic backs up.",
            "ops",
        ),
    ]


def model_panels() -> list[Panel]:
    return [
        row("Model"),
        Panel(
            "Model version timeline",
            "state-timeline",
            PROMETHEUS,
            [PromQuery("count by (version) (finsentry_model_info)", legend="{{version}}")],
            description="Which model version each worker serves (the value is the number of workers).",
            width=24,
            height=6,
            options={"showValue": "auto", "mergeValues": True, "rowHeight": 0.8, "legend": {"showLegend": False}},
            defaults={"color": {"mode": "palette-classic"}, "custom": {"fillOpacity": 80}},
        ),
        timeseries(
            "Model swaps",
            [
                PromQuery(
                    "sum by (action, result) (increase(finsentry_model_swaps_total[1h]))",
                    legend="{{action}} {{result}}",
                )
            ],
            "Promotions and rollbacks applied by the workers in the last hour (alert FinsentryModelRolledBack).",
            "short",
            width=8,
        ),
        timeseries(
            "Retrain runs",
            [
                PromQuery(
                    "sum by (trigger, result) (increase(finsentry_retrain_runs_total[1d]))",
                    legend="{{trigger}}: {{result}}",
                )
            ],
            "Retraining runs of the trainer in the last day, by trigger (schedule, drift) and result.",
            "short",
            width=8,
        ),
        timeseries(
            "Prediction drift (PSI)",
            [PromQuery("max by (head) (finsentry_drift_psi)", legend="{{head}}")],
            "Population stability index of the predicted class mix against training "
            "(FINSENTRY_DRIFT_PSI_THRESHOLD triggers retraining).",
            "none",
            width=8,
        ),
    ]


def detector_panels() -> list[Panel]:
    return [
        row("Alerts and notifications"),
        timeseries(
            "Spike alerts raised",
            [
                PromQuery(
                    "sum by (scope, severity) (increase(finsentry_alerts_total[1h]))", legend="{{scope}} {{severity}}"
                )
            ],
            "New alert episodes in the last hour, by scope and severity.",
            "short",
            width=8,
        ),
        timeseries(
            "Notifications",
            [
                PromQuery(
                    f"sum by (notifier, result) (rate(finsentry_notifications_total[{RATE}]))",
                    legend="{{notifier}} {{result}}",
                ),
            ],
            "Notification attempts per second by notifier and result.",
            "ops",
            width=8,
        ),
        timeseries(
            "Outbox backlog and late records",
            [
                PromQuery("sum(finsentry_outbox_pending)", legend="outbox pending"),
                PromQuery(f"sum(rate(finsentry_detector_late_records_total[{RATE}]))", legend="late records/s"),
            ],
            "Notifications waiting for a notifier, and records too late for the detector's buckets.",
            "short",
            width=8,
        ),
    ]


def ingest_panels() -> list[Panel]:
    return [
        row("Ingest"),
        timeseries(
            "New documents per source",
            [PromQuery(f"sum by (source) (rate(finsentry_scrape_items_total[{RATE}]))", legend="{{source}}")],
            "Documents the scrapers published, per configured source.",
            DOCS_PER_S,
            width=8,
        ),
        timeseries(
            "Scrape errors",
            [
                PromQuery(
                    f"sum by (source, kind) (rate(finsentry_scrape_errors_total[{RATE}]))",
                    legend="{{source}}: {{kind}}",
                )
            ],
            "Failed polls per source (retried with back-off).",
            "ops",
            width=8,
        ),
        timeseries(
            "Time since last successful poll",
            [
                PromQuery(
                    "time() - max by (source) (finsentry_scrape_last_success_timestamp_seconds)", legend="{{source}}"
                )
            ],
            "Alert FinsentrySourceStale fires past one hour.",
            "s",
            width=8,
        ),
        Panel(
            "Targets up",
            "state-timeline",
            PROMETHEUS,
            [PromQuery('up{job=~"finsentry-.*"}', legend="{{job}} {{instance}}")],
            description="Prometheus scrape status of every finsentry process (1 up, 0 down).",
            width=24,
            height=5,
            options={"showValue": "never", "mergeValues": True, "legend": {"showLegend": False}},
            defaults={
                "color": {"mode": "thresholds"},
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
                },
                "mappings": [{"type": "value", "options": {"0": {"text": "down"}, "1": {"text": "up"}}}],
            },
        ),
    ]


def dashboard() -> Dashboard:
    return Dashboard(
        uid=UID,
        title="finsentry · Pipeline health",
        description="Throughput, latency, lag, batch size, dead letters, store, model versions, retraining, "
        "notifications and scrapers.",
        tags=["finsentry", "operations"],
        time_from="now-3h",
        panels=flow_panels() + store_panels() + model_panels() + detector_panels() + ingest_panels(),
        links=[{"title": "Market sentiment", "type": "link", "url": "/d/finsentry-market", "icon": "dashboard"}],
    )
