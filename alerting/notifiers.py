"""Where alerts go: Prometheus Alertmanager (grouping, silences, routing) and Apprise URLs
(Slack, Teams, e-mail, webhooks) for teams without Alertmanager.

A notifier's `send` raises on failure — `NotificationFailed` for a transient one (the
outbox retries with back-off), `NotificationRejected` when retrying cannot help (the
receiver refused the payload). `accepts` says which updates of an episode it wants:
Alertmanager takes every update (it needs them to keep the alert alive and resolves it
by itself when they stop); a chat channel only hears of new episodes, escalations,
re-openings and resolutions.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import aiohttp

from finsentry.errors import FinsentryError
from finsentry.records import Alert
from finsentry.settings import Settings

ALERTNAME = "FinsentryNegativeSpike"
CHAT_CHANGES = frozenset({"opened", "escalated", "reopened", "resolved"})
TEST_ALERT_LIFETIME = timedelta(minutes=5)


class NotificationFailed(FinsentryError):
    """Transient: try again later."""


class NotificationRejected(NotificationFailed):
    """Permanent: the receiver refused this notification; retrying would not help."""


@runtime_checkable
class Notifier(Protocol):
    name: str  # stable across restarts (the outbox keys deliveries by it); no secrets in it

    def accepts(self, alert: Alert) -> bool: ...

    async def send(self, alert: Alert) -> None: ...


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def evidence_lines(alert: Alert) -> list[str]:
    lines = []
    for ev in alert.evidence:
        title = (ev.title or ev.id).replace("\n", " ")
        where = f" — {ev.source}" if ev.source else ""
        lines.append(f"[{ev.score:+.2f}] {title}{where}" + (f" {ev.url}" if ev.url else ""))
    return lines


def describe(alert: Alert) -> str:
    window = f"{_iso(alert.window_start)} – {_iso(alert.window_end)}"
    if alert.method == "cusum":
        test = "CUSUM (slow drift)"
    else:
        test = "window test" + (f" at the {alert.time_scale_s // 60}-minute scale" if alert.time_scale_s else "")
    text = (
        f"{alert.volume} distinct stories in {window}, {alert.negative_share:.0%} negative "
        f"against a baseline of {alert.baseline:.0%} (about {alert.baseline_volume:.0f} stories expected); "
        f"{test} statistic {alert.statistic:.1f}."
    )
    if alert.duplicates:
        text += f" {alert.duplicates} near-duplicate copies were counted once."
    if alert.status == "resolved" and alert.ended_at is not None:
        text += f" Ended {_iso(alert.ended_at)}."
    return text


class AlertmanagerNotifier:
    """POST to Alertmanager's v2 API (/api/v2/alerts)."""

    def __init__(self, url: str, dashboard_url: str = "", timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.name = "alertmanager"
        self.dashboard_url = dashboard_url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    def accepts(self, alert: Alert) -> bool:
        return True

    def payload(self, alert: Alert) -> list[dict]:
        labels = {"alertname": ALERTNAME, "scope": alert.scope, "key": alert.key, "severity": alert.severity}
        link = self.dashboard_url
        annotations = {
            "summary": alert.summary,
            "description": describe(alert),
            "evidence": "\n".join(evidence_lines(alert)),
            "dashboard": link,
            "alert_id": alert.id,
            "model_version": alert.model_version or "",
        }
        item: dict = {"labels": labels, "annotations": annotations, "startsAt": _iso(alert.episode_start)}
        if link:
            item["generatorURL"] = link
        if alert.status == "resolved":
            item["endsAt"] = _iso(alert.ended_at or alert.updated_at)
        items = [item]
        if alert.severity == "critical":
            # Severity is a label, so an escalated episode is a second Alertmanager alert:
            # resolve the warning one so the episode is not shown twice.
            items.append(
                {
                    "labels": {**labels, "severity": "warning"},
                    "annotations": annotations,
                    "startsAt": _iso(alert.episode_start),
                    "endsAt": _iso(alert.updated_at),
                }
            )
        return items

    def test_payload(self, alert: Alert) -> list[dict]:
        """`payload`, labelled test="true" and ending by itself a few minutes later, so a
        route can tell it apart and nothing pages until Alertmanager's resolve_timeout."""
        ends = _iso(alert.updated_at + TEST_ALERT_LIFETIME)
        return [
            {**item, "labels": {**item["labels"], "test": "true"}, "endsAt": item.get("endsAt", ends)}
            for item in self.payload(alert)
        ]

    async def send(self, alert: Alert) -> None:
        await self._post(self.payload(alert))

    async def send_test(self, alert: Alert) -> None:
        await self._post(self.test_payload(alert))

    async def _post(self, items: list[dict]) -> None:
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.post(f"{self.url}/api/v2/alerts", json=items) as resp:
                    if resp.status < 300:
                        return
                    body = (await resp.text())[:300]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NotificationFailed(f"alertmanager unreachable: {type(exc).__name__}: {exc}") from exc
        if 400 <= resp.status < 500 and resp.status not in (408, 429):
            raise NotificationRejected(f"alertmanager refused the alert: HTTP {resp.status} {body}")
        raise NotificationFailed(f"alertmanager answered HTTP {resp.status} {body}")


class AppriseNotifier:
    """One Apprise URL (slack://, msteams://, mailto://, json://, ...)."""

    def __init__(self, url: str, dashboard_url: str = ""):
        import apprise

        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(
                f"not a valid Apprise URL (scheme {url.split('://', 1)[0]!r}); see the Apprise wiki for URL formats"
            )
        # The URL may hold a token: the name shows only its scheme and a short digest.
        scheme = url.split("://", 1)[0]
        self.name = f"apprise:{scheme}:{hashlib.sha256(url.encode()).hexdigest()[:10]}"
        self.dashboard_url = dashboard_url

    def accepts(self, alert: Alert) -> bool:
        return alert.change in CHAT_CHANGES

    def message(self, alert: Alert) -> tuple[str, str]:
        verb = {"opened": "", "escalated": "escalated: ", "reopened": "again: ", "resolved": ""}.get(alert.change, "")
        title = f"[finsentry] {verb}{alert.summary}"
        lines = [describe(alert)]
        evidence = evidence_lines(alert)
        if evidence:
            lines += ["", "Most negative stories:", *(f"- {line}" for line in evidence)]
        link = self.dashboard_url
        if link:
            lines += ["", f"Dashboard: {link}"]
        lines += ["", f"alert id {alert.id}, update {alert.update}, model {alert.model_version or 'unknown'}"]
        return title, "\n".join(lines)

    async def send(self, alert: Alert) -> None:
        import apprise

        title, body = self.message(alert)
        kind = (
            apprise.NotifyType.SUCCESS
            if alert.status == "resolved"
            else apprise.NotifyType.FAILURE
            if alert.severity == "critical"
            else apprise.NotifyType.WARNING
        )
        try:
            result = await self._apprise.async_notify(body=body, title=title, notify_type=kind)
        except Exception as exc:  # a plugin error is a delivery failure, retried like one
            raise NotificationFailed(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not result:
            raise NotificationFailed(f"{self.name}: delivery failed")


def notifiers_from_settings(settings: Settings) -> list[Notifier]:
    """Every configured notifier; a malformed Apprise URL is a ValueError naming it by scheme."""
    out: list[Notifier] = []
    if settings.alertmanager_url:
        out.append(AlertmanagerNotifier(settings.alertmanager_url, settings.dashboard_url, settings.notify_timeout_s))
    for url in settings.parsed_apprise_urls():
        out.append(AppriseNotifier(url, settings.dashboard_url))
    return out
