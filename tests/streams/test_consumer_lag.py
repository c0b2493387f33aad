"""Consumer lag arithmetic. The collector in a running worker is tested end to end in
tests/dashboards/test_store_outage.py (a store outage makes the lag grow, recovery clears it)."""

from __future__ import annotations

from faust.types import TP

from finsentry import metrics
from finsentry.streams.consumer_lag import lag_by_topic, publish_lag


def test_lag_is_end_minus_committed_summed_per_topic():
    a0, a1, b0 = TP("a", 0), TP("a", 1), TP("b", 0)
    assert lag_by_topic({a0: 10, a1: 5, b0: 7}, {a0: 4, a1: 5, b0: 9}, {}) == {"a": 6, "b": 0}


def test_without_a_commit_the_lag_counts_from_the_earliest_offset():
    a0, a1 = TP("a", 0), TP("a", 1)
    assert lag_by_topic({a0: 10, a1: 3}, {a0: None}, {a0: 2, a1: 0}) == {"a": 11}


def test_partitions_without_an_end_offset_are_skipped():
    assert lag_by_topic({TP("a", 0): None}, {}, {}) == {}


def test_topics_no_longer_assigned_leave_the_gauge():
    publish_lag({"x.one": 3, "x.two": 1})
    publish_lag({"x.two": 0})
    samples = {s.labels["topic"]: s.value for m in metrics.CONSUMER_LAG.collect() for s in m.samples}
    assert "x.one" not in samples and samples["x.two"] == 0
    publish_lag({})
