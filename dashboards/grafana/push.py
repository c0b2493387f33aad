"""Upload the dashboards to a running Grafana over its HTTP API (grafana-client).

For Grafanas that do not mount the provisioning files (a shared company Grafana, say). The
datasources must exist there under the uids in datasources.py; dashboards go into one
folder, created if missing, and overwrite their previous version (same uid).
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from finsentry.dashboards.grafana.build import dashboards

FOLDER_UID = "finsentry"
FOLDER_TITLE = "finsentry"


@dataclass
class Pushed:
    uid: str
    title: str
    url: str | None  # where Grafana serves it
    version: int | None


def ensure_folder(api: GrafanaApi, uid: str, title: str) -> str:
    try:
        return api.folder.get_folder(uid)["uid"]
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    return api.folder.create_folder(title, uid=uid)["uid"]


def push(
    url: str,
    token: str,
    folder_uid: str = FOLDER_UID,
    folder_title: str = FOLDER_TITLE,
    message: str = "finsentry dashboards push",
    timeout: float = 30.0,
) -> list[Pushed]:
    """Create or overwrite every finsentry dashboard in the folder; returns what Grafana answered."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    folder = ensure_folder(api, folder_uid, folder_title)
    pushed = []
    for dashboard in dashboards():
        answer = api.dashboard.update_dashboard(
            {"dashboard": dashboard.to_json(), "folderUid": folder, "overwrite": True, "message": message}
        )
        pushed.append(Pushed(dashboard.uid, dashboard.title, answer.get("url"), answer.get("version")))
    return pushed
