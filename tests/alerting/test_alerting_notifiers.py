"""Notifiers against real receivers: Debian's Alertmanager on loopback (its v2 API) and
Apprise delivering json:// to a local HTTP server."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timedelta

import pytest
from alerting_helpers import START, Receiver, eventually, make_alert

from finsentry.alerting.notifiers import (
    ALERTNAME,
    AlertmanagerNotifier,
    AppriseNotifier,
    NotificationFailed,
    NotificationRejected,
    notifiers_from_settings,
)
from finsentry.alerting.outbox import Outbox
from finsentry.settings import Settings
from finsentry.streams.broker import free_port


def am_alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as resp:
        return json.loads(resp.read())


def ours(alerts: list[dict], key: str) -> list[dict]:
    return [a for a in alerts if a["labels"].get("alertname") == ALERTNAME and a["labels"].get("key") == key]


async def test_alertmanager_receives_the_alert_with_labels_annotations_and_links(alertmanager):
    notifier = AlertmanagerNotifier(alertmanager, dashboard_url="http://dash.example:6066/")
    await notifier.send(make_alert("Energy / Oil"))
    [received] = ours(am_alerts(alertmanager), "Energy / Oil")
    assert received["labels"] == {
        "alertname": ALERTNAME,
        "scope": "topic",
        "key": "Energy / Oil",
        "severity": "warning",
    }
    assert received["status"]["state"] == "active"
    notes = received["annotations"]
    assert "negative share on topic 'Energy / Oil' 82% vs baseline 21%" in notes["summary"]
    assert "41 distinct stories" in notes["description"] and "7 near-duplicate copies" in notes["description"]
    assert (
        "https://wire-a.example/oil-slump" in notes["evidence"]
        and "https://wire-b.example/refiners" in notes["evidence"]
    )
    assert notes["dashboard"] == "http://dash.example:6066/"
    assert received["generatorURL"] == "http://dash.example:6066/"
    assert datetime.fromisoformat(received["startsAt"].replace("Z", "+00:00")) == START


async def test_alertmanager_resolves_the_alert_when_the_episode_ends(alertmanager):
    notifier = AlertmanagerNotifier(alertmanager)
    alert = make_alert("Financials")
    await notifier.send(alert)
    assert len(ours(am_alerts(alertmanager), "Financials")) == 1
    ended = START + timedelta(minutes=4)
    await notifier.send(
        alert.model_copy(update={"status": "resolved", "change": "resolved", "update": 5, "ended_at": ended})
    )
    assert ours(am_alerts(alertmanager), "Financials") == []  # resolved alerts leave the active list


async def test_an_escalated_episode_is_one_critical_alert_in_alertmanager(alertmanager):
    notifier = AlertmanagerNotifier(alertmanager)
    alert = make_alert("Macro")
    await notifier.send(alert)
    await notifier.send(alert.model_copy(update={"severity": "critical", "change": "escalated", "update": 1}))
    assert [a["labels"]["severity"] for a in ours(am_alerts(alertmanager), "Macro")] == ["critical"]


async def test_an_alert_through_the_outbox_reaches_alertmanager(alertmanager, tmp_path):
    async with Outbox(tmp_path / "outbox.db", [AlertmanagerNotifier(alertmanager)]) as outbox:
        await outbox.enqueue(make_alert("Currencies", severity="critical"))
        await eventually(lambda: ours(am_alerts(alertmanager), "Currencies"), what="the alert in Alertmanager")
        assert await outbox.wait_idle(timeout=10)
    [received] = ours(am_alerts(alertmanager), "Currencies")
    assert received["labels"]["severity"] == "critical"


async def test_alertmanager_down_is_a_transient_failure():
    with pytest.raises(NotificationFailed, match="unreachable") as info:
        await AlertmanagerNotifier(f"http://127.0.0.1:{free_port()}").send(make_alert())
    assert not isinstance(info.value, NotificationRejected)


@pytest.mark.parametrize(
    "status, error", [(400, NotificationRejected), (503, NotificationFailed), (429, NotificationFailed)]
)
async def test_alertmanager_http_errors_map_to_retry_or_reject(status, error):
    # A stand-in HTTP server answering with a fixed status: the real Alertmanager cannot be
    # made to answer 503 or 429 on demand.
    stub = await Receiver(status=status).start()
    try:
        with pytest.raises(error) as info:
            await AlertmanagerNotifier(f"http://127.0.0.1:{stub.port}").send(make_alert())
        assert (status == 400) == isinstance(info.value, NotificationRejected)
        assert stub.received[0]["path"] == "/api/v2/alerts"
    finally:
        await stub.stop()


async def test_apprise_delivers_to_a_local_webhook(receiver):
    notifier = AppriseNotifier(receiver.url, dashboard_url="http://dash.example:6066/")
    await notifier.send(make_alert(severity="critical"))
    [hit] = receiver.received
    body = hit["body"]
    assert hit["path"] == "/hook"
    assert "CRITICAL: negative share on topic 'Energy / Oil'" in body["title"]
    assert "https://wire-a.example/oil-slump" in body["message"]
    assert "Dashboard: http://dash.example:6066/" in body["message"]
    assert body["type"] == "failure"


async def test_apprise_to_a_receiver_that_is_down_raises():
    with pytest.raises(NotificationFailed):
        await AppriseNotifier(f"json://127.0.0.1:{free_port()}/hook").send(make_alert())


def test_chat_notifiers_hear_of_changes_alertmanager_of_every_update():
    chat, am = AppriseNotifier("json://127.0.0.1:1/hook"), AlertmanagerNotifier("http://127.0.0.1:1")
    for change, wanted in [
        ("opened", True),
        ("updated", False),
        ("escalated", True),
        ("reopened", True),
        ("resolved", True),
    ]:
        alert = make_alert(change=change)
        assert chat.accepts(alert) is wanted
        assert am.accepts(alert)


def test_notifiers_from_settings_one_per_url_named_without_secrets():
    settings = Settings(
        _env_file=None,
        alertmanager_url="http://am:9093",
        apprise_urls="slack://T000/B000/s3cr3tt0ken, json://hooks.example/x",
    )
    names = [n.name for n in notifiers_from_settings(settings)]
    assert names[0] == "alertmanager" and names[1].startswith("apprise:slack:") and names[2].startswith("apprise:json:")
    assert not any("s3cr3t" in n for n in names)
    with pytest.raises(ValueError, match="not a valid Apprise URL"):
        notifiers_from_settings(Settings(_env_file=None, apprise_urls="nosuchscheme://x"))
