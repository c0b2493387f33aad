"""A notifier is down while an alert fires: the alert is delivered after it recovers, once.

The notifier is Apprise's json:// target pointing at an HTTP receiver on loopback — a real
Apprise notification over HTTP; the receiver is what a webhook endpoint would be. It is
down (nothing listens on its port) when the alert fires, stays down while the worker is
killed with SIGKILL and restarted (the alert waits in the worker's persistent outbox and
Kafka re-delivers the alerts topic's uncommitted records), then comes up.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from reliability_harness import (
    FAST_DETECTOR,
    Stories,
    doc_id,
    event_time_origin,
    spike,
    steady_stream,
)

from finsentry.streams.broker import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.drill]

NOTE = re.compile(r"alert id (\w+), update (\d+)")


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        Receiver.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def notified(received: list[dict]) -> list[tuple[str, int]]:
    """(alert id, update) of each notification, from the line the notifier ends it with."""
    out = []
    for body in received:
        match = NOTE.search(body.get("message", ""))
        assert match, f"a notification without its alert id: {body}"
        out.append((match.group(1), int(match.group(2))))
    return out


def test_alert_fired_while_notifier_down_is_delivered_once_after_recovery(pipeline):
    port = free_port()
    p = pipeline(
        **FAST_DETECTOR,
        apprise_urls=f"json://127.0.0.1:{port}/finsentry",
        notify_retry_min_s=0.5,
        notify_retry_max_s=2.0,
    )
    stories = Stories()
    t0 = event_time_origin()
    baseline = steady_stream(stories, t0, range(12))
    burst = spike(stories, t0, range(12, 14))
    Receiver.received = []

    p.start_worker()
    p.publish(baseline)
    ids = {doc_id(d) for d in baseline}
    p.wait(lambda: ids <= set(p.export_ids()), 120, "the baseline stream stored")
    p.publish(burst)
    alert = p.wait(lambda: next((a for a in p.alerts() if a["scope"] == "global"), None), 90, "a global alert")

    def attempts() -> float:  # every attempt fails while nothing listens
        return p.workers[-1].metrics().get("finsentry_notifications_total", 0.0)

    p.wait(lambda: attempts() >= 2, 60, "the outbox to try the dead notifier (and retry)")

    # Crash with the alert undelivered; the receiver is still down after the restart.
    p.workers[-1].kill()
    p.start_worker()
    p.wait(lambda: attempts() >= 1, 60, "the restarted worker to retry the pending notification")
    assert Receiver.received == []

    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        p.wait(
            lambda: any(i == alert["id"] for i, _ in notified(Receiver.received)),
            60,
            "the alert delivered after the receiver came up",
        )
        p.wait(lambda: p.workers[-1].metrics().get("finsentry_outbox_pending", 1.0) == 0.0, 30, "an empty outbox")
        time.sleep(3 * 2.0)  # longer than the longest back-off: a duplicate would arrive now
    finally:
        server.shutdown()
        server.server_close()

    deliveries = notified(Receiver.received)
    assert len(deliveries) == len(set(deliveries)), f"delivered more than once: {deliveries}"
    ours = [update for alert_id, update in deliveries if alert_id == alert["id"]]
    assert len(ours) == 1, f"the global alert's episode was notified {len(ours)} times: {deliveries}"
