"""The Grafana datasources the dashboards use, and their provisioning file.

Panels name datasources by uid, so the uids here are the contract between the generated
dashboards and the provisioning that docker-compose mounts. Addresses and credentials are
Grafana environment variables (provisioning files expand `${VAR}`), set in docker-compose:

- FINSENTRY_PROMETHEUS_URL  (default in compose: http://prometheus:9090)
- FINSENTRY_ES_URL          (http://elasticsearch:9200)
- FINSENTRY_ES_USERNAME, FINSENTRY_ES_PASSWORD  (a read-only Elasticsearch user is enough)

The Elasticsearch indices are the store's (store/es_schema.py): documents behind the
alias `<prefix>-docs` (time field published_at), alerts in `<prefix>-alerts`.
"""

from __future__ import annotations

from typing import Any

from finsentry.dashboards.grafana.model import DatasourceRef

PROMETHEUS = DatasourceRef("prometheus", "finsentry-prometheus")
DOCUMENTS = DatasourceRef("elasticsearch", "finsentry-es-documents")
ALERTS = DatasourceRef("elasticsearch", "finsentry-es-alerts")

DOCUMENTS_TIME_FIELD = "published_at"
ALERTS_TIME_FIELD = "episode_start"
DEFAULT_INDEX_PREFIX = "finsentry"


def _elasticsearch(ref: DatasourceRef, name: str, index: str, time_field: str) -> dict[str, Any]:
    return {
        "name": name,
        "uid": ref.uid,
        "type": ref.type,
        "access": "proxy",
        "url": "${FINSENTRY_ES_URL}",
        "basicAuth": True,
        "basicAuthUser": "${FINSENTRY_ES_USERNAME}",
        "secureJsonData": {"basicAuthPassword": "${FINSENTRY_ES_PASSWORD}"},
        "jsonData": {
            "index": index,
            "timeField": time_field,
            "maxConcurrentShardRequests": 5,
            "logMessageField": "title" if ref == DOCUMENTS else "key",
        },
        "editable": False,
    }


def provisioning(index_prefix: str = DEFAULT_INDEX_PREFIX) -> dict[str, Any]:
    """Grafana's datasources provisioning document (apiVersion 1)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "finsentry Prometheus",
                "uid": PROMETHEUS.uid,
                "type": PROMETHEUS.type,
                "access": "proxy",
                "url": "${FINSENTRY_PROMETHEUS_URL}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
            },
            _elasticsearch(DOCUMENTS, "finsentry documents", f"{index_prefix}-docs", DOCUMENTS_TIME_FIELD),
            _elasticsearch(ALERTS, "finsentry alerts", f"{index_prefix}-alerts", ALERTS_TIME_FIELD),
        ],
    }


DASHBOARDS_PATH = "/var/lib/grafana/dashboards/finsentry"


def dashboard_provider() -> dict[str, Any]:
    """Grafana's dashboard provider: load the generated JSON files into a finsentry folder."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "finsentry",
                "orgId": 1,
                "folder": "finsentry",
                "folderUid": "finsentry",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_PATH, "foldersFromFilesStructure": False},
            }
        ],
    }
