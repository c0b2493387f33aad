"""`finsentry trainer`: retrain on a cron schedule and when drift is detected.

The service wakes for whichever comes first, the next cron time or the next drift check.
A drift check reads the recent scored documents and fresh analyst labels from the store
and compares them with the serving model's reference profile. Every trigger is logged
with its evidence and counted; a run takes an exclusive lock file, so a second trigger —
from this process or another trainer — while one runs is counted as `busy` and dropped.
Cron times missed while the service was down are not caught up: the next one counts.

Time comes from an injected clock, so tests drive the schedule without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from croniter import croniter

from finsentry.errors import FinsentryError
from finsentry.models.registry import Registry
from finsentry.store import open_store
from finsentry.training import telemetry
from finsentry.training.drift import DriftReport, check_drift, reference_profile, window_from_store
from finsentry.training.pipeline import RunResult, retrain

log = logging.getLogger("finsentry.trainer")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Busy(FinsentryError):
    """Another training run holds the lock."""


class RunLock:
    """An exclusive, non-blocking lock file (flock): released by the kernel if the holder
    dies, so a crashed run never blocks the next one."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                raise Busy(f"a training run holds {self.path}: {fh.read().strip() or 'unknown'}") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid={os.getpid()} {what} since={utc_now().isoformat(timespec='seconds')}\n")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)
        finally:
            fh.close()


def run_lock(settings) -> RunLock:
    return RunLock(Path(settings.data_dir) / "trainer.lock")


class Trainer:
    """The trainer service. `run` does one training run (the real pipeline by default)."""

    def __init__(
        self,
        settings,
        registry: Registry,
        store=None,
        clock: Clock = utc_now,
        run: Callable[..., RunResult] | None = None,
        **train_overrides: Any,
    ):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.clock = clock
        self.run = run or retrain
        self.train_overrides = train_overrides
        self.lock = run_lock(settings)
        now = clock()
        self.schedule = croniter(settings.train_schedule, now)
        self.next_run: datetime = self.schedule.get_next(datetime)
        self.next_drift_check: datetime = now + timedelta(seconds=settings.drift_check_interval_s)
        self.last_drift: DriftReport | None = None

    # --- triggers ---------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[RunResult]:
        """Do whatever is due at `now`: a scheduled run, a drift check (and its run)."""
        now = now or self.clock()
        results = []
        if now >= self.next_run:
            due = self.next_run
            self.next_run = croniter(self.settings.train_schedule, now).get_next(datetime)
            results.append(
                await self.trigger(
                    "schedule",
                    {"cron": self.settings.train_schedule, "due": due.isoformat(), "next": self.next_run.isoformat()},
                )
            )
        if now >= self.next_drift_check:
            self.next_drift_check = now + timedelta(seconds=self.settings.drift_check_interval_s)
            report = await self.check_drift()
            if report is not None and report.drifted:
                results.append(await self.trigger("drift", report.to_dict()))
        return results

    async def check_drift(self) -> DriftReport | None:
        if self.store is None:
            return None
        serving = self.registry.serving()
        if serving is None:
            log.info("drift check skipped: no model is serving")
            return None
        loop = asyncio.get_running_loop()
        try:
            reference = await loop.run_in_executor(
                None,
                lambda: reference_profile(
                    serving.path, self.settings.train_data_dir, Path(self.settings.data_dir) / "drift"
                ),
            )
        except Exception as exc:  # no reference, no drift check; the schedule still runs
            log.error("drift check skipped: no reference profile for %s: %s", serving.name, exc)
            return None
        records, pairs = await window_from_store(self.store, self.settings, promoted_at(serving))
        report = check_drift(reference, records, self.settings, pairs, version=serving.name)
        self.last_drift = report
        log.info(
            "drift check version=%s window=%d labels=%d drifted=%s measurements=%s",
            serving.name,
            report.window,
            report.labels,
            report.drifted,
            json.dumps(report.measurements),
        )
        return report

    async def trigger(self, trigger: str, evidence: dict[str, Any]) -> RunResult:
        """Run once for `trigger` unless a run is in progress; logged and counted either way."""
        log.info("retrain trigger=%s evidence=%s", trigger, json.dumps(evidence, default=str))
        loop = asyncio.get_running_loop()
        try:
            labels = await self.store.labels() if self.store is not None else []
            result = await loop.run_in_executor(None, self._locked_run, trigger, evidence, labels)
        except Busy as exc:
            log.warning("retrain not started trigger=%s: %s", trigger, exc)
            result = RunResult(trigger, "busy", reasons=[str(exc)], evidence=evidence)
        except Exception as exc:  # a failed run is reported and the service goes on
            log.exception("retrain failed trigger=%s", trigger)
            result = RunResult(trigger, "failed", reasons=[f"{type(exc).__name__}: {exc}"], evidence=evidence)
        telemetry.RETRAIN_RUNS.labels(trigger=trigger, result=result.result).inc()
        log.info("retrain finished %s", json.dumps(asdict(result), default=str))
        return result

    def _locked_run(self, trigger: str, evidence: dict[str, Any], labels: list) -> RunResult:
        with self.lock.hold(f"trigger={trigger}"):
            return self.run(self.settings, self.registry, labels, trigger, evidence, **self.train_overrides)

    # --- the service ------------------------------------------------------------------------

    def seconds_until_due(self, now: datetime) -> float:
        return max(0.0, (min(self.next_run, self.next_drift_check) - now).total_seconds())

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        log.info(
            "trainer started schedule=%r next_run=%s drift_check_every=%ss",
            self.settings.train_schedule,
            self.next_run.isoformat(),
            self.settings.drift_check_interval_s,
        )
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(asyncio.TimeoutError):
                # Wake at least once a minute: a wall clock can jump (suspend, NTP).
                await asyncio.wait_for(stop.wait(), timeout=min(60.0, self.seconds_until_due(self.clock())) or 0.01)


def promoted_at(version) -> datetime | None:
    """When `version` last became the serving one (fresh labels are those after it)."""
    for event in reversed(version.manifest.events):
        if event.get("action") in ("promote", "rollback") and event.get("status") == "promoted":
            return datetime.fromisoformat(event["at"])
    return None


async def run_service(settings, stop: asyncio.Event | None = None) -> None:
    """`finsentry trainer`: /metrics, the store, the registry, then the loop until SIGTERM
    (or `stop`)."""
    import signal

    from prometheus_client import start_http_server

    server, _thread = start_http_server(settings.trainer_metrics_port, addr=settings.trainer_metrics_host)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_store(settings.store, settings) as store:
            await Trainer(settings, Registry.from_settings(settings), store).serve(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        server.shutdown()
        server.server_close()
        log.info("trainer stopped")
