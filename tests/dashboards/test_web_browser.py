"""The built-in dashboard in real headless Chromium (Debian chromium), served by a real
worker process (dashboard_worker.py) over a store holding three hours of scored documents,
an alert, documents that went through the live pipeline and the alert its detector raised,
and hostile markup in a headline, an alert's evidence and a link."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from chromium_cdp import Chromium
from conftest import SHIPPED_VERSION
from dashboard_helpers import require_tool


@pytest.fixture
async def page(dashboard_worker, tmp_path):
    async with Chromium(require_tool("chromium"), tmp_path / "profile") as browser:
        await browser.navigate(f"{dashboard_worker.url}/?token={dashboard_worker.token}")
        await browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
        yield browser


async def test_the_page_loads_with_charts_alerts_and_documents(page, dashboard_worker, tmp_path):
    # uPlot draws on a canvas; the containers report how many points they were given.
    for chart in ("chart-sentiment", "chart-negative"):
        points = int(await page.evaluate(f"document.getElementById('{chart}').dataset.points"))
        series = int(await page.evaluate(f"document.getElementById('{chart}').dataset.series"))
        assert points > 20 and series >= 3, chart
        assert await page.evaluate(f"document.querySelectorAll('#{chart} canvas').length") >= 1
    legend = await page.evaluate(
        "Array.from(document.querySelectorAll('#chart-negative .u-legend .u-label')).map(e => e.textContent)"
    )
    assert "Earnings" in legend
    assert await page.evaluate("document.getElementById('stat-documents').textContent") not in ("", "–")
    # The corpus's alert fires; the detector's own alert (conftest.run_episode) has resolved.
    alerts = dashboard_worker.alerts()
    assert sorted(a["status"] for a in alerts) == ["firing", "resolved"]
    assert await page.evaluate("document.getElementById('stat-alerts').textContent") == "1"
    assert await page.evaluate("document.getElementById('stat-model').textContent") == SHIPPED_VERSION
    assert await page.evaluate("document.querySelectorAll('#alerts > li').length") == len(alerts)
    assert (
        await page.evaluate("document.querySelectorAll('#alerts .evidence-item').length")
        == sum(len(a["evidence"]) for a in alerts)
        >= 10
    )
    assert await page.evaluate("document.querySelectorAll('#documents > li').length") == 25
    # Explanation words are highlighted inside the headlines.
    assert await page.evaluate("document.querySelectorAll('#documents mark.neg').length") > 0
    assert not page.exceptions, page.exceptions
    assert not [m for m in page.console if "Failed to load" in m], page.console  # every asset served

    shot = await page.screenshot(tmp_path / "dashboard.png")
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("FINSENTRY_SCREENSHOT_DIR")
    if keep:  # to look at the page: FINSENTRY_SCREENSHOT_DIR=/tmp pytest ...
        shutil.copy(shot, Path(keep) / "finsentry-dashboard.png")


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def expected_markers(worker, by: str, range_s: str) -> int:
    """The alerts app.js should mark on the negative-share chart: those of the chart's scope
    or global whose episode overlaps the chart's time axis (computed here from the API)."""
    t = json.loads(worker.get(f"/api/series?by={by}&range_s={range_s}&top=8")[2])["t"]
    return sum(
        1
        for a in worker.alerts()
        if a["scope"] in (by, "global")
        and epoch(a["ended_at"] or a["window_end"]) >= t[0]
        and epoch(a["episode_start"]) <= t[-1]
    )


async def test_alert_markers_follow_the_alerts_of_the_chart_scope(page, dashboard_worker):
    marked = "document.getElementById('chart-negative').dataset.alertMarkers"
    by, range_s = await page.evaluate("[document.getElementById('by').value, document.getElementById('range').value]")
    expected = expected_markers(dashboard_worker, by, range_s)
    assert by == "topic" and expected == 2  # the corpus's topic alert and the detector's
    assert int(await page.evaluate(marked)) == expected
    # Per entity: no alert of that scope (or global) exists, so none is drawn.
    await page.evaluate(
        "const by = document.getElementById('by'); by.value = 'entity';by.dispatchEvent(new Event('change'))"
    )
    await page.wait_for(
        "document.querySelector('#chart-negative .u-legend .u-label') &&"
        " Array.from(document.querySelectorAll('#chart-negative .u-legend .u-label'))"
        ".some(e => e.textContent === 'AAPL')"
    )
    assert expected_markers(dashboard_worker, "entity", range_s) == 0
    assert int(await page.evaluate(marked)) == 0
    assert not page.exceptions, page.exceptions


async def test_hostile_markup_in_scraped_text_stays_inert_text(page):
    # The payload is on the page as text, in the document list and in the alert's evidence...
    shown = await page.evaluate(
        "Array.from(document.querySelectorAll('#documents .title, #alerts .evidence .title'))"
        ".map(e => e.textContent).filter(t => t.includes('<img src=x onerror'))"
    )
    assert len(shown) == 2
    # ...and nothing of it became markup or ran: no element, no handler, no dialog.
    assert await page.evaluate("typeof window.__finsentry_xss") == "undefined"
    assert await page.evaluate("document.querySelectorAll('main img, main svg, main script').length") == 0
    assert await page.evaluate("document.querySelectorAll('script').length") == 2  # uPlot and app.js
    assert page.dialogs == []
    # Had any of it become markup, the Content-Security-Policy would have reported blocking it.
    assert not [m for m in page.console if "Content Security Policy" in m], page.console
    # A javascript: URL is never made a link.
    hrefs = await page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("https://") for h in hrefs), hrefs


async def test_search_box_shows_matching_documents_and_clears(page):
    await page.evaluate(
        "document.getElementById('search-input').value = 'lawsuit';"
        "document.getElementById('search-form').requestSubmit()"
    )
    await page.wait_for("document.getElementById('documents-title').textContent.startsWith('Search')")
    titles = await page.evaluate("Array.from(document.querySelectorAll('#documents .title')).map(e => e.textContent)")
    assert titles and all("lawsuit" in t.lower() for t in titles)
    await page.evaluate("document.getElementById('search-clear').click()")
    await page.wait_for("document.getElementById('documents-title').textContent === 'Latest scored documents'")
    assert not page.exceptions, page.exceptions
