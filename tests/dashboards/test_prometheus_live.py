"""Every Prometheus query of the dashboards and rules runs against a real Prometheus
(Debian package, loopback) that scrapes with the committed config (dashboards/prometheus/
prometheus.yml: its jobs, paths and rules, with loopback targets and 1 s intervals) the
processes it scrapes in production: the worker (dashboard_worker.py, scoring with the
shipped model) while documents flow through it, the scraper, the push endpoint and the
trainer (exporter_processes.py). Every query returns data. The worker's /metrics also
passes `promtool check metrics`. Only kafka-exporter cannot run here (UNAVAILABLE_JOBS)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from conftest import CALM_TOPIC, EPISODE_TOPIC, WATCHED
from dashboard_helpers import CORPUS_END, require_tool
from exporter_processes import FeedSite, push_one_document, start_exporters

from finsentry.dashboards.grafana import build, market, queries
from finsentry.records import Document
from finsentry.streams.broker import free_port

PROMETHEUS_DIR = Path(build.__file__).resolve().parents[1] / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULES = [r for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


# Jobs of the committed config whose exporter cannot run here, and why. The rules on their
# series still run against this Prometheus, and promtool's unit tests (dashboards/prometheus/
# tests) cover their firing logic.
UNAVAILABLE_JOBS = {"kafka-exporter": "kafka-exporter ships as a container image and no container engine runs here"}
COMMITTED_JOBS = [
    job["job_name"] for job in yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
]


def scrape_config_for(targets: dict[str, str]) -> dict:
    """The committed config with 1 s intervals, every job aimed at its process on loopback
    (a static target in place of the compose service name), the rules by absolute path and
    no Alertmanager. Jobs in UNAVAILABLE_JOBS are left out; any other job needs a target."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets) | set(UNAVAILABLE_JOBS), f"jobs {sorted(jobs)}, processes {sorted(targets)}"
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(p) for p in RULE_FILES]
    config.pop("alerting")
    config["scrape_configs"] = [
        {
            **{key: value for key, value in job.items() if not key.endswith("_configs")},
            "static_configs": [{"targets": [targets[name]]}],
        }
        for name, job in jobs.items()
        if name not in UNAVAILABLE_JOBS
    ]
    return config


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        data = urllib.parse.urlencode({"query": expr}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return result if isinstance(result, list) else [{"value": result}]

    def finite(self, expr: str) -> list[dict]:
        return [r for r in self.query(expr) if math.isfinite(float(r["value"][1]))]


def keep_publishing(settings, stop: threading.Event) -> None:
    """A steady trickle through the pipeline, so rates and latency histograms have data."""
    from finsentry.ingest.producer import DocumentProducer

    words = ["slumps", "beats", "holds"]
    with DocumentProducer(settings) as producer:
        i = 0
        while not stop.is_set():
            producer.publish(
                Document(
                    source="wire-trickle",
                    title=f"Oil price update {i} {words[i % 3]}",
                    text=f"Oil market {words[i % 3]} in session {i}.",
                    published_at=CORPUS_END - timedelta(minutes=10) + timedelta(seconds=i),
                )
            )
            producer.flush()
            i += 1
            stop.wait(0.2)


@pytest.fixture(scope="module")
def exporters(dashboard_worker, tmp_path_factory):
    """The scraper, push endpoint and trainer processes, by the job that scrapes each."""
    root = tmp_path_factory.mktemp("exporters")
    site = FeedSite()
    processes = start_exporters(dashboard_worker.settings, root, site)
    try:
        for process in processes.values():
            process.wait_serving()
        push_one_document(processes["finsentry-push"])
        # The series that take longest: the failing source's first error, and the trainer's
        # first drift check (its reference profile takes minutes on the first run, then
        # comes from var/).
        processes["finsentry-scraper"].wait_exporting(
            ["finsentry_scrape_items_total", "finsentry_scrape_errors_total"], timeout=120
        )
        processes["finsentry-trainer"].wait_exporting(["finsentry_drift_psi"], timeout=600)
        yield processes
    finally:
        for process in processes.values():
            process.stop()
        site.close()


@pytest.fixture(scope="module")
def prometheus(dashboard_worker, exporters, tmp_path_factory):
    binary = require_tool("prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    targets = {
        "finsentry-worker": f"127.0.0.1:{dashboard_worker.port}",
        "prometheus": f"127.0.0.1:{port}",
        **{job: process.target for job, process in exporters.items()},
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(scrape_config_for(targets)))
    log = open(root / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stop = threading.Event()
    publisher = threading.Thread(target=keep_publishing, args=(dashboard_worker.settings, stop), daemon=True)
    publisher.start()
    try:
        prom = Prometheus(f"http://127.0.0.1:{port}")
        # Ready when every target was scraped after the exporters had their series, and the
        # slowest inputs have data: the latency histogram of fresh documents, and a second
        # sample of the lag recording rule and of the scraper's counters (deriv and rate
        # need two).
        exporting_since = time.time()
        ready = [
            "finsentry:ingest_to_stored_seconds:histogram_quantile_5m",
            "deriv(finsentry:consumer_lag_messages:sum[1m])",
            "rate(finsentry_scrape_items_total[30s])",
            "rate(finsentry_scrape_errors_total[30s])",
            f"min(timestamp(up == 1)) > {exporting_since + 1:.3f} and count(up == 1) == {len(targets)}",
        ]
        missing: list[str] = ready
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (root / "prometheus.log").read_text()
            try:
                missing = [expr for expr in ready if not prom.finite(expr)]
            except OSError:
                pass
            if not missing:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(
                f"no data in Prometheus for {missing}:\n{(root / 'prometheus.log').read_text()}\n"
                f"{dashboard_worker.tail()}"
            )
        yield prom
    finally:
        stop.set()
        publisher.join(10)
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.mark.parametrize("job", COMMITTED_JOBS)
def test_every_job_of_the_committed_config_scrapes_a_running_process(prometheus, job):
    if job in UNAVAILABLE_JOBS:
        pytest.skip(f"{job}: {UNAVAILABLE_JOBS[job]}")
    assert prometheus.finite(f'up{{job="{job}"}} == 1'), f"{job} is not up"


# Series the dashboards and rules read that a process other than the worker exports.
SERIES_FROM = {
    "finsentry_scrape_items_total": "finsentry-scraper",
    "finsentry_scrape_errors_total": "finsentry-scraper",
    "finsentry_scrape_last_success_timestamp_seconds": "finsentry-scraper",
    "finsentry_push_requests_total": "finsentry-push",
    "finsentry_ingest_published_total": "finsentry-push",
    "finsentry_retrain_runs_total": "finsentry-trainer",
    "finsentry_drift_psi": "finsentry-trainer",
}


@pytest.mark.parametrize("series, job", SERIES_FROM.items(), ids=list(SERIES_FROM))
def test_series_of_the_other_processes_come_from_their_own_process(prometheus, exporters, series, job):
    process = exporters[job]
    scraped = {(r["metric"]["job"], r["metric"]["instance"]) for r in prometheus.finite(series)}
    assert (job, process.target) in scraped, f"{series} scraped from {sorted(scraped)}, not from {process.name}"
    assert f"\n{series}" in (process.metrics_text() or ""), f"{process.name}'s own /metrics lacks {series}"


def panel_exprs() -> list[tuple[str, str]]:
    out = []
    for dashboard in build.dashboards():
        topics = queries.Selection([queries.ALL], ["Earnings", "Macro", "Energy / Oil", EPISODE_TOPIC])
        selections = {
            "topic": topics,
            "entity": queries.Selection([queries.ALL], list(WATCHED)),
            "source": queries.Selection([queries.ALL]),
        }
        for item in queries.targets(dashboard):
            if "expr" in item.target:
                target = queries.interpolated_target(item, dashboard, selections, rate_interval="30s", range_="1h")
                out.append((f"{dashboard.uid}: {item.panel} [{item.target['refId']}]", target["expr"]))
    return out


PANEL_EXPRS = panel_exprs()


@pytest.mark.parametrize("expr", [e for _, e in PANEL_EXPRS], ids=[n for n, _ in PANEL_EXPRS])
def test_every_prometheus_panel_query_returns_data(prometheus, expr):
    assert "$" not in expr, f"uninterpolated variable in {expr}"
    assert prometheus.finite(expr), f"no data for {expr}"


# The share panels with one value chosen show only that value, and with "All" every one.
SHARE_PANELS = [
    ("Negative share per topic", "topic", [CALM_TOPIC, EPISODE_TOPIC], EPISODE_TOPIC),
    ("Negative share per watched entity", "entity", list(WATCHED), WATCHED[1]),
]


@pytest.mark.parametrize("panel, variable, options, chosen", SHARE_PANELS, ids=[p[0] for p in SHARE_PANELS])
def test_share_panels_follow_their_variable(prometheus, panel, variable, options, chosen):
    dashboard = market.dashboard()
    item = next(t for t in queries.targets(dashboard) if t.panel == panel)

    def shown(selection: queries.Selection) -> set[str]:
        expr = queries.interpolated_target(item, dashboard, {variable: selection})["expr"]
        return {r["metric"][variable] for r in prometheus.finite(expr)}

    assert shown(queries.Selection([queries.ALL], options)) == set(options)
    assert shown(queries.Selection([chosen])) == {chosen}


def test_alerting_series_come_from_the_running_detector_and_outbox(prometheus, dashboard_worker):
    """The worker's alert agents raised, notified and resolved the episode of run_episode;
    Prometheus sees the counters and gauges they export."""
    assert dashboard_worker.episode_alert()["status"] == "resolved"
    assert prometheus.finite('finsentry_alerts_total{scope="topic"} >= 1')
    assert prometheus.finite(f'finsentry_negative_share{{topic="{EPISODE_TOPIC}"}}')
    assert prometheus.finite('finsentry_notifications_total{notifier="alertmanager", result="sent"} >= 1')
    assert prometheus.finite("finsentry_outbox_pending == 0")  # delivered, nothing waits


def promtool_findings(exposition: str) -> str:
    """What `promtool check metrics` says about an exposition (empty when it finds nothing)."""
    proc = subprocess.run(
        [require_tool("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    return (proc.stdout + proc.stderr).strip() or ("" if proc.returncode == 0 else f"exit {proc.returncode}")


def test_the_worker_metrics_follow_the_prometheus_naming_conventions(dashboard_worker):
    status, _, body = dashboard_worker.get("/metrics", token=False)
    assert status == 200 and b"finsentry_negative_share" in body
    assert promtool_findings(body.decode()) == ""


def test_promtool_check_metrics_reports_a_badly_named_metric():
    # The check above on a counter without _total and in milliseconds: it does find problems.
    findings = promtool_findings(
        "# HELP x_latency_milliseconds x\n# TYPE x_latency_milliseconds counter\nx_latency_milliseconds 1\n"
    )
    assert "_total" in findings and "seconds" in findings


RECORDING = [r for r in RULES if "record" in r]


@pytest.mark.parametrize("rule", RECORDING, ids=[f"{r['record']}{r.get('labels', '')}" for r in RECORDING])
def test_every_recording_rule_has_data(prometheus, rule):
    selector = rule["record"]
    if rule.get("labels"):
        selector += "{" + ",".join(f'{k}="{v}"' for k, v in rule["labels"].items()) + "}"
    assert prometheus.finite(selector), f"{selector} has no data (expr: {rule['expr']})"


_OPERATOR = re.compile(r"\s(and|or|unless|==|!=|>=|<=|>|<)\s")
_MODIFIERS = re.compile(r"^\s*(bool\s+)?((on|ignoring|group_left|group_right)\s*\([^)]*\)\s*)*")


def top_level_operands(expr: str) -> list[str]:
    """Split at comparison and set operators outside brackets and strings."""
    depth, quote, cuts = 0, None, []
    for i, ch in enumerate(expr):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            match = _OPERATOR.match(expr, i - 1) if i else None
            if match and match.start() == i - 1 and (not cuts or match.start() >= cuts[-1][1]):
                cuts.append((match.start(), match.end()))
    parts, start = [], 0
    for begin, end in cuts:
        parts.append(expr[start:begin])
        start = end
    parts.append(expr[start:])
    return [_MODIFIERS.sub("", p).strip() for p in parts]


def alert_signals(expr: str) -> list[str]:
    """The non-literal operands of an alert's condition: the series its thresholds compare."""
    return [p for p in top_level_operands(" ".join(expr.split())) if not re.fullmatch(r"[\d.e+-]+", p)]


def test_signal_extraction():
    assert alert_signals("a:b > 500\n  and deriv(a:b[10m]) > 0") == ["a:b", "deriv(a:b[10m])"]
    assert alert_signals("(sum(increase(x[5m])) or vector(0)) == 0") == ["(sum(increase(x[5m])) or vector(0))"]
    assert alert_signals("r > 0.6 unless on (topic) v < 30") == ["r", "v"]
    assert alert_signals('up{job=~"f-.*"} == 0') == ['up{job=~"f-.*"}']


ALERTING = [r for r in RULES if "alert" in r]

# Series that only an exporter in UNAVAILABLE_JOBS serves.
EXTERNAL_SERIES = {"kafka_consumergroup_lag": "kafka-exporter"}


@pytest.mark.parametrize("rule", ALERTING, ids=[r["alert"] for r in ALERTING])
def test_every_alert_rule_runs_and_its_signals_have_data(prometheus, rule):
    prometheus.query(rule["expr"])  # valid and evaluable; firing is promtool's unit tests' job
    signals = alert_signals(rule["expr"])
    assert signals
    external = {
        signal: exporter for signal in signals for series, exporter in EXTERNAL_SERIES.items() if series in signal
    }
    for signal in signals:
        if signal not in external:
            assert prometheus.finite(signal), f"{rule['alert']}: {signal} has no data"
    if external:
        pytest.skip(
            f"{', '.join(external)} comes from {', '.join(set(external.values()))}: "
            + "; ".join(UNAVAILABLE_JOBS[job] for job in set(external.values()))
            + ". promtool's unit tests cover the rule"
        )
