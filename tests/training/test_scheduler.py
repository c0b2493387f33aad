"""The trainer service: cron times from an injected clock, one run at a time, every trigger
counted. Most tests give it a stand-in for the training run (the run itself is tested in
test_retrain.py) so that a run can be held open while a second trigger arrives."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from finsentry.models.registry import Registry
from finsentry.training.pipeline import RunResult
from finsentry.training.scheduler import Trainer

SAT_NOON = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)  # a Saturday


def runs_total(trigger: str, result: str) -> float:
    return REGISTRY.get_sample_value("finsentry_retrain_runs_total", {"trigger": trigger, "result": result}) or 0.0


class Recorder:
    """A training run that records its calls and can be held open."""

    def __init__(self, hold: bool = False, fail: bool = False):
        self.calls: list[tuple[str, dict]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    def __call__(self, settings, registry, labels, trigger, evidence):
        self.calls.append((trigger, evidence))
        self.started.set()
        self.release.wait(30)
        if self.fail:
            raise RuntimeError("out of memory")
        return RunResult(trigger, "promoted", "m2")


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry", shipped=None)


async def test_runs_at_the_cron_time_and_then_waits_for_the_next(training_settings, registry):
    settings = training_settings(train_schedule="0 3 * * 0", drift_check_interval_s=10**7)
    run = Recorder()
    trainer = Trainer(settings, registry, clock=lambda: SAT_NOON, run=run)
    assert trainer.next_run == datetime(2025, 3, 2, 3, 0, tzinfo=timezone.utc)
    before = runs_total("schedule", "promoted")
    assert await trainer.tick(datetime(2025, 3, 2, 2, 59, tzinfo=timezone.utc)) == []
    results = await trainer.tick(datetime(2025, 3, 2, 3, 0, 5, tzinfo=timezone.utc))
    assert [(r.trigger, r.result) for r in results] == [("schedule", "promoted")]
    assert run.calls[0][1]["due"] == "2025-03-02T03:00:00+00:00"
    assert trainer.next_run == datetime(2025, 3, 9, 3, 0, tzinfo=timezone.utc)
    assert await trainer.tick(datetime(2025, 3, 2, 3, 30, tzinfo=timezone.utc)) == []
    assert len(run.calls) == 1 and runs_total("schedule", "promoted") == before + 1


async def test_only_one_run_at_a_time(training_settings, registry):
    settings = training_settings(drift_check_interval_s=10**7)
    run = Recorder(hold=True)
    trainer = Trainer(settings, registry, clock=lambda: SAT_NOON, run=run)
    other = Trainer(settings, registry, clock=lambda: SAT_NOON, run=Recorder())  # a second trainer, same lock file
    busy_before = runs_total("drift", "busy")
    first = asyncio.create_task(trainer.trigger("schedule", {}))
    assert await asyncio.to_thread(run.started.wait, 10)
    lock_text = (Path(settings.data_dir) / "trainer.lock").read_text()
    assert "pid=" in lock_text and "trigger=schedule" in lock_text
    same = await trainer.trigger("drift", {"psi_topic": 0.5})
    elsewhere = await other.trigger("drift", {"psi_topic": 0.5})
    assert same.result == "busy" and elsewhere.result == "busy"
    assert "trigger=schedule" in same.reasons[0]
    run.release.set()
    assert (await first).result == "promoted"
    assert len(run.calls) == 1 and runs_total("drift", "busy") == busy_before + 2
    # The lock is free again once the run ended.
    assert (await other.trigger("drift", {})).result == "promoted"


async def test_a_failed_run_is_counted_and_the_service_goes_on(training_settings, registry):
    settings = training_settings(drift_check_interval_s=10**7)
    before = runs_total("schedule", "failed")
    trainer = Trainer(settings, registry, clock=lambda: SAT_NOON, run=Recorder(fail=True))
    result = await trainer.trigger("schedule", {})
    assert result.result == "failed" and "out of memory" in result.reasons[0]
    assert runs_total("schedule", "failed") == before + 1
    trainer.run = Recorder()
    assert (await trainer.trigger("schedule", {})).result == "promoted"


async def test_real_run_without_new_data_is_skipped(training_settings, registry, tmp_path: Path):
    """The real pipeline: a serving model and no new labels → nothing to learn, no training."""
    art = tmp_path / "art"
    art.mkdir()
    (art / "card.json").write_text(json.dumps({"version": "m1", "data": {}}))
    (art / "weights.safetensors").write_bytes(b"opaque")
    registry.register(art, {})
    registry.promote("m1")
    settings = training_settings(drift_check_interval_s=10**7)
    before = runs_total("schedule", "skipped")
    result = await Trainer(settings, registry, clock=lambda: SAT_NOON).trigger("schedule", {})
    assert result.result == "skipped" and "0 new labelled examples" in result.reasons[0]
    assert runs_total("schedule", "skipped") == before + 1
    assert not (Path(settings.data_dir) / "runs").exists()


async def test_serve_loops_on_the_injected_clock_until_stopped(training_settings, registry):
    settings = training_settings(train_schedule="*/5 * * * *", drift_check_interval_s=10**7)
    now = {"t": SAT_NOON}
    stop = asyncio.Event()

    def run(settings_, registry_, labels, trigger, evidence):
        now["t"] = now["t"].replace(minute=now["t"].minute + 5)  # time passes during a run
        if now["t"].minute >= 15:
            stop.set()
        return RunResult(trigger, "rejected", None, ["control"])

    trainer = Trainer(settings, registry, clock=lambda: now["t"], run=run)
    now["t"] = trainer.next_run  # 12:05
    await asyncio.wait_for(trainer.serve(stop), timeout=30)
    assert now["t"].minute == 15 and trainer.next_run.minute == 15


async def test_service_serves_metrics_until_stopped(training_settings):
    import urllib.request

    from finsentry.streams.broker import free_port
    from finsentry.training.scheduler import run_service

    port = free_port()
    settings = training_settings(trainer_metrics_port=port, drift_check_interval_s=10**7)
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, stop))

    def scrape() -> str:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    return resp.read().decode()
            except OSError:
                threading.Event().wait(0.1)
        raise AssertionError("no /metrics")

    text = await asyncio.to_thread(scrape)
    assert "finsentry_retrain_runs_total" in text and "finsentry_drift_psi" in text
    stop.set()
    await asyncio.wait_for(service, timeout=10)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
