"""The dashboard as the worker serves it: a real Faust worker process (dashboard_worker.py)
on the embedded broker, over HTTP."""

from __future__ import annotations

import json
import time

from conftest import PUBLISHED_DOCS, SHIPPED_VERSION


def test_health_and_metrics_need_no_token(dashboard_worker):
    # Ready once the worker holds its partitions and recovery is over (the lag collector looks
    # every 5 s); until then 503 with the reasons.
    deadline = time.monotonic() + 120
    while True:
        status, _, body = dashboard_worker.get("/healthz", token=False)
        health = json.loads(body)
        if status == 200 or time.monotonic() > deadline:
            break
        assert status == 503 and health["ready"] is False and health["reasons"], health
        time.sleep(0.5)
    assert status == 200 and health["status"] == "ok" and health["ready"] is True, health
    assert health["partitions"] > 0 and health["reasons"] == []
    status, headers, body = dashboard_worker.get("/metrics", token=False)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    for name in (
        "finsentry_documents_stored_total",
        "finsentry_consumer_lag_messages",
        "finsentry_model_info",
        "finsentry_store_bulk_seconds_bucket",
        "finsentry_ingest_to_stored_seconds_bucket",
    ):
        assert name in text, name


def test_page_and_api_require_the_token(dashboard_worker):
    for path in ("/", "/api/stats", "/api/documents", "/api/search?q=oil"):
        status, _, body = dashboard_worker.get(path, token=False)
        assert status == 401, path
        assert b"token" in body
    status, _, _ = dashboard_worker.get("/api/stats", token=True, header=False)  # ?token= works too
    assert status == 200
    wrong = dashboard_worker.get("/api/stats", token=False)
    assert wrong[0] == 401


def test_page_is_served_with_a_strict_content_security_policy(dashboard_worker):
    status, headers, body = dashboard_worker.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/static/app.js" in body and b"/vendor/uplot/uPlot.iife.min.js" in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    for asset in (
        "/static/app.js",
        "/static/style.css",
        "/vendor/uplot/uPlot.iife.min.js",
        "/vendor/uplot/uPlot.min.css",
    ):
        status, _, body = dashboard_worker.get(asset, token=False)
        assert status == 200 and len(body) > 500, asset


def test_api_serves_the_stored_documents_including_the_live_ones(dashboard_worker):
    stats = json.loads(dashboard_worker.get("/api/stats")[2])
    # At least: other tests sharing this worker may publish more.
    assert stats["documents"] >= dashboard_worker.corpus_size + PUBLISHED_DOCS
    assert stats["model_versions"] == [SHIPPED_VERSION]
    assert stats["alerts_firing"] == 1
    live = json.loads(dashboard_worker.get("/api/documents?source=wire-live&limit=100")[2])["documents"]
    assert len(live) == PUBLISHED_DOCS
    assert {d["model_version"] for d in live} == {SHIPPED_VERSION}
    assert {d["sentiment"] for d in live} == {"negative", "neutral", "positive"}
    found = json.loads(dashboard_worker.get("/api/search?q=quarterly%20slumps")[2])["documents"]
    assert found and all("slumps" in d["title"] for d in found)
    series = json.loads(dashboard_worker.get("/api/series?range_s=3600")[2])
    assert series["series"] and any(v is not None for s in series["series"] for v in s["negative_share"])


def test_api_answers_bad_parameters_with_400_and_a_reason(dashboard_worker):
    status, _, body = dashboard_worker.get("/api/documents?limit=many")
    assert status == 400 and "limit must be a whole number" in json.loads(body)["error"]
    status, _, body = dashboard_worker.get("/api/search?q=")
    assert status == 400 and "at least one word" in json.loads(body)["error"]
