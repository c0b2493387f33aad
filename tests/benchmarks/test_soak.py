"""benchmarks/soak.py: its verdict against the budgets, the shape of the JSON line it ends
with, and one short real run (embedded broker, `finsentry worker`, SQLite) that must report
throughput, p99 latency and worker RSS samples."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("finsentry_soak_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


soak = load_soak()


def samples(*rss: float) -> list:
    return [soak.Sample(t=5.0 * i, rss_mb=mb, stored=10.0 * i) for i, mb in enumerate(rss)]


FLAT = samples(700, 702, 701, 703, 702, 704)
FAST = [0.2] * 98 + [0.5] * 2  # p99 of 100 latencies (nearest rank, the 99th): 0.5 s


# --- verdict -----------------------------------------------------------------------------------


def test_flat_memory_and_fast_latency_at_half_peak_pass():
    result = soak.verdict(peak=100.0, rate=50.0, soak_lat=FAST, samples=FLAT)
    assert result["rss_below_budget"] and result["rss_flat"] and result["p99_below_budget"]
    assert result["p99_measured_at_half_peak"]
    assert (result["rss_first_third_mb"], result["rss_last_third_mb"], result["rss_max_mb"]) == (701.0, 703.0, 704.0)


def test_memory_over_the_budget_fails():
    result = soak.verdict(peak=None, rate=20.0, soak_lat=FAST, samples=samples(900, 950, 1000, 1030, 1020, 1025))
    assert not result["rss_below_budget"] and result["rss_max_mb"] == 1030.0


def test_memory_growth_fails_only_past_both_the_ratio_and_the_floor():
    grows = soak.verdict(peak=None, rate=20.0, soak_lat=FAST, samples=samples(500, 500, 540, 560, 600, 600))
    assert not grows["rss_flat"]  # +100 MB: over 10 % and over 32 MB
    small = soak.verdict(peak=None, rate=20.0, soak_lat=FAST, samples=samples(100, 100, 110, 120, 125, 125))
    assert small["rss_flat"]  # +25 %, but only 25 MB: within the floor


def test_slow_tail_fails_the_p99_budget():
    slow = [0.2] * 97 + [2.5] * 3  # the 99th percentile is one of the 2.5 s
    assert not soak.verdict(peak=None, rate=20.0, soak_lat=slow, samples=FLAT)["p99_below_budget"]
    just_under = [0.2] * 97 + [1.99] * 3
    assert soak.verdict(peak=None, rate=20.0, soak_lat=just_under, samples=FLAT)["p99_below_budget"]


@pytest.mark.parametrize("peak, rate, at_half", [(None, 20.0, False), (100.0, 30.0, False), (100.0, 52.0, True)])
def test_p99_counts_as_at_half_peak_only_near_half_the_measured_peak(peak, rate, at_half):
    assert soak.verdict(peak=peak, rate=rate, soak_lat=FAST, samples=FLAT)["p99_measured_at_half_peak"] is at_half


# --- the JSON line -----------------------------------------------------------------------------

KEYS = {
    "peak_docs_per_s",
    "rate_docs_per_s",
    "duration_s",
    "documents",
    "stored_docs_per_s",
    "p50_ms",
    "p99_ms",
    "p99_ms_by_third",
    "rss_mb",
    "rss_below_budget",
    "rss_flat",
    "p99_below_budget",
    "p99_measured_at_half_peak",
    "rss_first_third_mb",
    "rss_last_third_mb",
    "rss_max_mb",
    "pass",
}


def test_report_holds_every_number_and_passes_only_when_every_budget_is_met():
    thirds = [FAST[:33], FAST[33:66], FAST[66:]]
    result = soak.verdict(peak=100.0, rate=50.0, soak_lat=FAST, samples=FLAT)
    line = json.loads(json.dumps(soak.report(100.04, 50.0, 60.0, 3000, 49.96, FAST, thirds, FLAT, result)))
    assert set(line) == KEYS
    assert (line["peak_docs_per_s"], line["rate_docs_per_s"], line["stored_docs_per_s"]) == (100.0, 50.0, 50.0)
    assert (line["duration_s"], line["documents"]) == (60.0, 3000)
    assert (line["p50_ms"], line["p99_ms"], line["p99_ms_by_third"]) == (200.0, 500.0, [200.0, 200.0, 500.0])
    assert line["rss_mb"] == [[5.0 * i, mb] for i, mb in enumerate([700, 702, 701, 703, 702, 704])]
    assert line["pass"] is True

    growing = samples(500, 500, 540, 560, 600, 600)
    failed = soak.report(
        None,
        20.0,
        60.0,
        1200,
        20.0,
        FAST,
        thirds,
        growing,
        soak.verdict(peak=None, rate=20.0, soak_lat=FAST, samples=growing),
    )
    assert failed["peak_docs_per_s"] is None and failed["rss_flat"] is False and failed["pass"] is False


# --- one short real run --------------------------------------------------------------------------


def test_a_short_soak_reports_throughput_latency_and_memory(tmp_path):
    """The smallest run that still goes through a real worker: ten warm-up documents, then
    4 s at 5 docs/s, memory sampled every half second. Speed is not asserted."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--duration",
            "4",
            "--rate",
            "5",
            "--warm-docs",
            "10",
            "--sample-every",
            "0.5",
            "--backend",
            "torch",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a budget missed on a busy machine
    line = json.loads(result.stdout.splitlines()[-1])
    assert set(line) == KEYS
    assert result.returncode == (0 if line["pass"] else 1)
    assert 15 <= line["documents"] <= 25  # 4 s at 5 docs/s
    assert 0 < line["stored_docs_per_s"] and 0 < line["p50_ms"] <= line["p99_ms"] and math.isfinite(line["p99_ms"])
    assert len(line["rss_mb"]) >= 4
    assert all(100 < mb < 8000 for _t, mb in line["rss_mb"])  # a worker with the model loaded
    assert [t for t, _mb in line["rss_mb"]] == sorted(t for t, _mb in line["rss_mb"])
    assert "verdict:" in result.stdout and "worker RSS" in result.stdout
