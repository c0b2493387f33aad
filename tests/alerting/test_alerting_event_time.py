"""The detector's clock across partitions: however unevenly the scored partitions are
consumed, the episodes are those of the sorted records (watermarks.py).

The worker's detect agent is simulated without a broker: scored records are spread over
four source partitions by id, and observations over four observations partitions by
scope, as Kafka's key partitioning does; each step consumes a chunk of one source
partition, sends its observation groups to their partitions and then the source's
watermark to every partition — the order the observe agent keeps."""

from __future__ import annotations

import json
import zlib
from itertools import count

import pytest
from alert_scenarios import StreamBuilder

from finsentry.alerting.config import DetectorConfig
from finsentry.alerting.detector import Detector
from finsentry.alerting.observations import Watermark, fan_out, group_by_scope
from finsentry.alerting.replay import replay, to_scored
from finsentry.alerting.watermarks import PartitionClock, is_clock_key, is_scope_key, source_name
from tests.alerting.test_alerting_detector import JsonTable, without_dedup

CONFIG = DetectorConfig()  # the defaults of Settings
PARTITIONS = 4


def hours_with_episodes(seed: int = 3) -> list[dict]:
    """Four hours of background news with three topic surges and a company's burst."""
    b = StreamBuilder(seed)
    b.background(240)
    b.burst(40, 8, 20.0, "Energy / Oil")
    b.burst(115, 6, 20.0, "Macro")
    b.burst(190, 8, 20.0, "Energy / Oil")
    b.burst(160, 6, 8.0, "Earnings", entities=("ACME",))
    return without_dedup(b.sorted_records())


def part(text: str) -> int:
    return zlib.crc32(text.encode()) % PARTITIONS


def episodes(alerts) -> set[tuple]:
    """(scope, key, opening bucket, level) of every episode, at its highest level."""
    out: dict[str, tuple] = {}
    for a in alerts:
        level = (
            "critical" if a.severity == "critical" or out.get(a.id, ("", "", "", ""))[3] == "critical" else "warning"
        )
        out[a.id] = (a.scope, a.key, a.episode_start.isoformat(), level)
    return set(out.values())


class Worker:
    """The detect agent's use of the detector, messages routed by partition."""

    def __init__(self, state):
        self.detector = Detector(CONFIG, state, record_metrics=False)
        self.alerts = []

    def deliver(self, messages_by_partition: dict[int, list]) -> None:
        for q, messages in sorted(messages_by_partition.items()):
            self.alerts += self.detector.apply(messages, lambda key, q=q: q)


def announce(worker: Worker, sources) -> None:
    worker.deliver(
        {q: [Watermark(watermark=None, source=source_name(p), partition=q) for p in sources] for q in range(PARTITIONS)}
    )


def consume(worker: Worker, records: list[dict], schedule) -> None:
    """Consume `records` partition by partition in the order `schedule(partition queues)`
    yields (partition, how many); a source's watermark follows its observations."""
    queues = {p: [r for r in records if part(r["id"]) == p] for p in range(PARTITIONS)}
    newest: dict[int, float] = {}
    for p, n in schedule(queues):
        chunk, queues[p] = queues[p][:n], queues[p][n:]
        if not chunk:
            continue
        observations = [o for r in chunk for o in fan_out(to_scored(r)[0])]
        newest[p] = max(newest.get(p, 0.0), max(o.published_at.timestamp() for o in observations))
        routed: dict[int, list] = {q: [] for q in range(PARTITIONS)}
        for group in group_by_scope(observations):
            routed[part(group.key)].append(group)
        for q in routed:
            routed[q].append(Watermark(watermark=newest[p], source=source_name(p), partition=q))
        worker.deliver(routed)
    assert not any(queues.values())


def all_idle(worker: Worker) -> None:
    worker.deliver(
        {
            q: [Watermark(watermark=None, source=source_name(p), partition=q, idle=True) for p in range(PARTITIONS)]
            for q in range(PARTITIONS)
        }
    )


def one_racing_ahead(queues):
    """Partition 0 is read in large chunks, the others in small ones: 0 runs hours ahead."""
    for _ in count():
        if not any(queues.values()):
            return
        yield 0, 200
        for p in range(1, PARTITIONS):
            yield p, 7


def one_delayed(queues):
    """Partition 3 starts only once the others are twenty minutes of event time ahead."""

    def at(record) -> float:
        return to_scored(record)[0].published_at.timestamp()

    first = min(at(q[0]) for q in queues.values() if q)
    while any(queues.values()):
        for p in range(PARTITIONS - 1):
            yield p, 10
        heads = [at(q[0]) for p, q in queues.items() if p < PARTITIONS - 1 and q]
        if not heads or min(heads) - first > 1200:
            yield PARTITIONS - 1, 10


def test_the_stream_has_the_episodes_the_test_relies_on():
    reference = episodes(replay(hours_with_episodes(), CONFIG))
    assert {(s, k) for s, k, _, _ in reference} >= {("topic", "Energy / Oil"), ("topic", "Macro")}
    assert len([e for e in reference if e[1] == "Energy / Oil"]) >= 2


@pytest.mark.parametrize("schedule", [one_racing_ahead, one_delayed])
def test_uneven_partitions_give_the_episodes_of_the_sorted_records(schedule):
    records = hours_with_episodes()
    reference = episodes(replay(records, CONFIG))
    worker = Worker(JsonTable())
    announce(worker, range(PARTITIONS))
    consume(worker, records, schedule)
    all_idle(worker)
    assert episodes(worker.alerts) == reference
    state = worker.detector.state
    late = {k: state[k]["late"] for k in state if is_scope_key(k) and state[k]["late"]}
    assert late == {}
    assert [k for k in state if not is_scope_key(k) and not is_clock_key(k)] == []  # nothing waits
    assert not any(state[k]["chunks"] for k in state if is_scope_key(k))


def test_a_restart_mid_backfill_resumes_from_the_table():
    """The table (changelog) holds the pending observations and the partition clocks: a
    new detector over it carries on as if nothing happened."""
    records = hours_with_episodes()
    reference = episodes(replay(records, CONFIG))
    table = JsonTable()
    first = Worker(table)
    announce(first, range(PARTITIONS))
    half = len(records) // 2
    consume(first, records[:half], one_racing_ahead)
    second = Worker(JsonTable(table.data))
    consume(second, records[half:], one_racing_ahead)
    all_idle(second)
    assert episodes(first.alerts + second.alerts) == reference


def test_records_behind_an_idle_partition_are_late_and_counted_per_scope():
    """Two sources; one idle; the other moves the clock on. A record then from the idle
    one, from before the lateness bound, is late: counted in its scope and in the alert."""
    records = hours_with_episodes()[:400]
    worker = Worker(JsonTable())
    worker.deliver({0: [Watermark(watermark=None, source="scored:1", partition=0, idle=True)]})
    worker.deliver(
        {
            0: [
                *group_by_scope([o for r in records[1:] for o in fan_out(to_scored(r)[0])]),
                Watermark(watermark=to_scored(records[-1])[0].published_at.timestamp(), source="scored:0", partition=0),
            ]
        }
    )
    worker.deliver({0: [*group_by_scope(fan_out(to_scored(records[0])[0]))]})
    state = worker.detector.state
    assert state["global:all"]["late"] == 1


def test_a_source_with_work_waiting_holds_the_clock_and_an_idle_one_does_not():
    clock = PartitionClock()
    assert clock.update("scored:0", 100.0, idle=False)  # scored:1 not heard of yet: 100
    assert clock.low == 100.0
    clock.update("scored:1", None, idle=False)  # announced, nothing delivered yet
    assert not clock.update("scored:0", 500.0, idle=False) and clock.low == 100.0
    assert clock.update("scored:1", 200.0, idle=False) and clock.low == 200.0
    assert clock.update("scored:1", None, idle=True) and clock.low == 500.0  # idle: excluded
    assert not clock.update("scored:1", 250.0, idle=False) and clock.low == 500.0  # never goes back
    clock.update("scored:1", None, idle=True)
    assert clock.update("scored:0", 600.0, idle=True) and clock.low == 600.0  # all idle: the newest


class TableWithDefault(JsonTable):
    """As the worker's Faust table (default=None): every key is "in" it, a missing one reads None."""

    def __contains__(self, key):
        return True

    def get(self, key, default=None):
        return json.loads(self.data[key]) if key in self.data else None


def test_a_restart_over_a_changelog_that_lost_a_pending_chunk_goes_on():
    """A worker killed between the changelog records of one batch leaves a scope naming a
    chunk of pending observations whose record is gone (taken, or never flushed). The
    restarted detector must go on, not crash on every batch from then on."""
    records = hours_with_episodes()
    table = JsonTable()
    first = Worker(table)
    announce(first, range(PARTITIONS))
    consume(first, records[: len(records) // 2], one_racing_ahead)
    chunks = [k for k in table if not is_scope_key(k) and not is_clock_key(k)]
    assert chunks, "the premise: observations wait in chunks of their own"
    recovered = TableWithDefault({k: v for k, v in table.data.items() if k != chunks[0]})
    second = Worker(recovered)
    consume(second, records[len(records) // 2 :], one_racing_ahead)
    all_idle(second)
    state = second.detector.state
    assert not any(state.get(k)["chunks"] for k in state.data if is_scope_key(k))
