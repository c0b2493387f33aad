"""The Prometheus and Alertmanager configuration, checked by their own tools (Debian
packages prometheus and prometheus-alertmanager: promtool, amtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from dashboard_helpers import require_tool

ROOT = Path(__file__).resolve().parents[2] / "dashboards"
PROMETHEUS = ROOT / "prometheus"
ALERTMANAGER = ROOT / "alertmanager" / "alertmanager.yml"


def run(*cmd: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def alert_rules() -> list[dict]:
    rules = []
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def test_promtool_accepts_the_scrape_config_and_its_rule_files():
    out = run(require_tool("promtool"), "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert "2 rule files found" in out


def test_promtool_accepts_every_rule_file():
    files = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert len(files) == 2
    run(require_tool("promtool"), "check", "rules", *files)


def test_rule_unit_tests_pass():
    out = run(require_tool("promtool"), "test", "rules", "tests/finsentry-rules-test.yml", cwd=PROMETHEUS)
    assert "SUCCESS" in out


def test_every_alert_has_a_routable_severity_a_team_and_a_summary():
    names = set()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["labels"]["team"] in {"operations", "risk"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        names.add(rule["alert"])
    # The pipeline-health alerts the dashboards issue asks for, plus the backstop.
    assert {
        "FinsentryNoDocumentsScored",
        "FinsentryConsumerLagGrowing",
        "FinsentryDeadLetterRateHigh",
        "FinsentryStoreErrors",
        "FinsentryModelRolledBack",
        "FinsentryNegativeShareHigh",
    } <= names


def test_every_alert_rule_is_covered_by_a_unit_test():
    tested = set()
    for case in yaml.safe_load((PROMETHEUS / "tests" / "finsentry-rules-test.yml").read_text())["tests"]:
        tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    untested = {r["alert"] for r in alert_rules()} - tested
    assert not untested, f"no promtool test sees these fire: {untested}"


def test_amtool_accepts_the_alertmanager_config():
    run(require_tool("amtool"), "check-config", str(ALERTMANAGER))


@pytest.mark.parametrize(
    "labels, receivers",
    [
        (
            {"alertname": "FinsentrySpike", "scope": "topic", "key": "Earnings", "severity": "critical"},
            "risk-team-pager,risk-team-email",
        ),
        ({"alertname": "FinsentrySpike", "scope": "entity", "key": "AAPL", "severity": "warning"}, "risk-team-email"),
        ({"alertname": "FinsentryNegativeShareHigh", "severity": "warning", "team": "risk"}, "risk-team-email"),
        ({"alertname": "FinsentryStoreDown", "severity": "critical", "team": "operations"}, "operations-pager"),
        ({"alertname": "FinsentryStoreErrors", "severity": "warning", "team": "operations"}, "operations-email"),
        ({"alertname": "SomethingElse"}, "risk-team-email"),
    ],
)
def test_alertmanager_routes_by_team_and_severity(labels, receivers):
    out = run(
        require_tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert out.splitlines()[0].strip() == receivers
