"""The "Market sentiment" dashboard, for analysts: what the market says, per topic and per
watched entity, and which headlines say it.

Document panels query the store's Elasticsearch alias (field names from the index mapping
in store/es_schema.py); negative share comes from Prometheus, where the detector
exports it per topic and per watched entity for its latest complete bucket.
"""

from __future__ import annotations

from finsentry.dashboards.grafana.datasources import ALERTS, DOCUMENTS, PROMETHEUS
from finsentry.dashboards.grafana.model import (
    Annotation,
    Dashboard,
    EsMetric,
    EsQuery,
    Panel,
    PromQuery,
    Variable,
    date_histogram,
    row,
    terms,
)

UID = "finsentry-market"

# Lucene filters shared by the document panels. $topic expands to the chosen topics
# ("All" = every topic); $source uses "*" for All. $entity also filters the Prometheus
# panel, so its All value is the regex ".*"; the document panels match $entity as a Lucene
# regular expression (/.../ on the keyword field), so that value works there too.
TOPIC_FILTER = "topic.label:$topic AND source:$source"
ENTITY_FILTER = "entities:/${entity:regex}/ AND source:$source"

AVG_SCORE = EsMetric("avg", "sentiment.score")
COUNT = EsMetric("count")

SCORE_AXIS = dict(unit="none", min=-1, max=1)
SHARE_AXIS = dict(unit="percentunit", min=0, max=1)
LINES = {"drawStyle": "line", "lineWidth": 2, "spanNulls": False, "showPoints": "never"}
BARS = {"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}, "lineWidth": 1}
LEGEND = {
    "legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "lastNotNull"]},
    "tooltip": {"mode": "multi", "sort": "desc"},
}


def variables() -> list[Variable]:
    return [
        Variable(
            "topic",
            "Topic",
            DOCUMENTS,
            {"find": "terms", "field": "topic.label", "size": 50},
            description="Model topic of the documents.",
        ),
        Variable(
            "entity",
            "Entity",
            DOCUMENTS,
            {"find": "terms", "field": "entities", "size": 500},
            all_value=".*",
            description="Tickers found in the documents.",
        ),
        Variable(
            "source",
            "Source",
            DOCUMENTS,
            {"find": "terms", "field": "source", "size": 200},
            all_value="*",
            description="Where the documents were scraped from.",
        ),
    ]


def annotations() -> list[Annotation]:
    return [
        Annotation(
            "Spike alerts",
            ALERTS,
            {
                "query": "status:(firing OR resolved)",
                "timeField": "episode_start",
                "timeEndField": "window_end",
                "textField": "key",
                "tagsField": "severity",
            },
            color="red",
        )
    ]


def topic_panels() -> list[Panel]:
    return [
        row("Topics"),
        Panel(
            "Sentiment trend per topic",
            "timeseries",
            DOCUMENTS,
            [
                EsQuery(
                    TOPIC_FILTER,
                    [AVG_SCORE],
                    [terms("topic.label", 10), date_histogram("published_at")],
                    alias="{{term topic.label}}",
                )
            ],
            description="Mean sentiment score (positive minus negative probability, −1 … +1) per topic.",
            **SCORE_AXIS,
            defaults={"custom": LINES},
            options=LEGEND,
        ),
        Panel(
            "Negative share per topic",
            "timeseries",
            PROMETHEUS,
            [PromQuery('max by (topic) (finsentry_negative_share{topic=~"$topic"})', legend="{{topic}}")],
            description="Share of negative documents in the detector's latest complete bucket. The dashed "
            "line is the backstop alert's threshold (60% of a topic's documents in 30 minutes).",
            **SHARE_AXIS,
            defaults={
                "custom": {**LINES, "thresholdsStyle": {"mode": "dashed"}},
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.6}],
                },
            },
            options=LEGEND,
        ),
        Panel(
            "Volume per topic",
            "timeseries",
            DOCUMENTS,
            [
                EsQuery(
                    TOPIC_FILTER,
                    [COUNT],
                    [terms("topic.label", 10), date_histogram("published_at")],
                    alias="{{term topic.label}}",
                )
            ],
            description="Documents per interval and topic (near-duplicates included).",
            unit="short",
            defaults={"custom": BARS},
            options=LEGEND,
        ),
        Panel(
            "Negative documents per topic",
            "timeseries",
            DOCUMENTS,
            [
                EsQuery(
                    f"{TOPIC_FILTER} AND sentiment.label:negative",
                    [COUNT],
                    [terms("topic.label", 10), date_histogram("published_at")],
                    alias="{{term topic.label}}",
                )
            ],
            description="Documents the model labelled negative, per interval and topic.",
            unit="short",
            defaults={"custom": BARS},
            options=LEGEND,
        ),
    ]


def entity_panels() -> list[Panel]:
    return [
        row("Watched entities"),
        Panel(
            "Sentiment per entity",
            "timeseries",
            DOCUMENTS,
            [
                EsQuery(
                    ENTITY_FILTER,
                    [AVG_SCORE],
                    [terms("entities", 10), date_histogram("published_at")],
                    alias="{{term entities}}",
                )
            ],
            description="Mean sentiment score of the documents that mention each entity (top 10 by volume).",
            **SCORE_AXIS,
            defaults={"custom": LINES},
            options=LEGEND,
        ),
        Panel(
            "Negative share per watched entity",
            "timeseries",
            PROMETHEUS,
            [PromQuery('max by (entity) (finsentry_entity_negative_share{entity=~"$entity"})', legend="{{entity}}")],
            description="Detector's negative share for the chosen entities among FINSENTRY_WATCHED_ENTITIES "
            "(only watched entities are exported).",
            **SHARE_AXIS,
            defaults={"custom": LINES},
            options=LEGEND,
        ),
        Panel(
            "Volume per entity",
            "barchart",
            DOCUMENTS,
            [EsQuery(ENTITY_FILTER, [COUNT], [terms("entities", 15)], alias="{{term entities}}")],
            description="Documents mentioning each entity in the time range.",
            unit="short",
            width=24,
            height=7,
            options={"orientation": "horizontal", "showValue": "auto", "legend": {"showLegend": False}},
        ),
    ]


def headline_panels() -> list[Panel]:
    link = [{"title": "Open the article", "url": "${__data.fields.url}", "targetBlank": True}]
    return [
        row("Headlines and alerts"),
        Panel(
            "Latest most negative headlines",
            "table",
            DOCUMENTS,
            [EsQuery(f"sentiment.label:negative AND {TOPIC_FILTER}", [EsMetric("raw_data", settings={"size": "200"})])],
            description="The 200 latest negative documents, most negative first. Click a title to open it.",
            width=24,
            height=12,
            options={
                "showHeader": True,
                "sortBy": [{"displayName": "score", "desc": False}],
                "cellHeight": "sm",
                "footer": {"show": False},
            },
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "includeByName": {
                            "published_at": True,
                            "title": True,
                            "sentiment.score": True,
                            "topic.label": True,
                            "source": True,
                            "entities": True,
                            "url": True,
                        },
                        "indexByName": {
                            "published_at": 0,
                            "sentiment.score": 1,
                            "title": 2,
                            "topic.label": 3,
                            "entities": 4,
                            "source": 5,
                            "url": 6,
                        },
                        "renameByName": {
                            "published_at": "published",
                            "sentiment.score": "score",
                            "topic.label": "topic",
                        },
                    },
                }
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "title"},
                    "properties": [{"id": "links", "value": link}, {"id": "custom.width", "value": 640}],
                },
                {"matcher": {"id": "byName", "options": "url"}, "properties": [{"id": "custom.hidden", "value": True}]},
                {
                    "matcher": {"id": "byName", "options": "score"},
                    "properties": [{"id": "decimals", "value": 2}, {"id": "custom.width", "value": 80}],
                },
            ],
        ),
        Panel(
            "Spike alerts",
            "table",
            ALERTS,
            [
                EsQuery(
                    "status:(firing OR resolved)",
                    [EsMetric("raw_data", settings={"size": "50"})],
                    time_field="episode_start",
                )
            ],
            description="Alerts of the spike detector in the time range, with their statistics.",
            width=24,
            height=8,
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "includeByName": {
                            "episode_start": True,
                            "window_end": True,
                            "scope": True,
                            "key": True,
                            "severity": True,
                            "status": True,
                            "negative_share": True,
                            "baseline": True,
                            "statistic": True,
                            "volume": True,
                        },
                        "indexByName": {
                            "episode_start": 0,
                            "window_end": 1,
                            "severity": 2,
                            "status": 3,
                            "scope": 4,
                            "key": 5,
                            "negative_share": 6,
                            "baseline": 7,
                            "statistic": 8,
                            "volume": 9,
                        },
                    },
                }
            ],
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": "negative_share|baseline"},
                    "properties": [{"id": "unit", "value": "percentunit"}],
                }
            ],
        ),
    ]


def dashboard() -> Dashboard:
    return Dashboard(
        uid=UID,
        title="finsentry · Market sentiment",
        description="Sentiment and negative share per topic and watched entity, volume, spike alerts and the "
        "most negative headlines.",
        tags=["finsentry", "sentiment"],
        variables=variables(),
        annotations=annotations(),
        panels=topic_panels() + entity_panels() + headline_panels(),
        links=[{"title": "Pipeline health", "type": "link", "url": "/d/finsentry-pipeline", "icon": "dashboard"}],
    )
