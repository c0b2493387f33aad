"""/healthz readiness: partitions held, recovery over, and progress whenever input waits."""

from finsentry.streams.liveness import Liveness


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def started(stall_after_s=120.0):
    clock = Clock()
    live = Liveness(stall_after_s, clock=clock)
    live.started = True
    return live, clock


def test_ready_only_with_partitions_and_after_recovery():
    live, _ = started()
    assert not live.ready() and "holds no partitions" in " ".join(live.reasons())
    live.observe(partitions=4, recovering=True, lag=0, committed={"p0": 1})
    assert not live.ready() and "recovering" in " ".join(live.reasons())
    live.observe(partitions=4, recovering=False, lag=0, committed={"p0": 1})
    assert live.ready() and live.report()["status"] == "ok"


def test_waiting_input_with_no_committed_progress_turns_not_ready_after_the_bound():
    live, clock = started(stall_after_s=120.0)
    live.observe(partitions=4, recovering=False, lag=600, committed={"p0": 134})
    for _ in range(23):  # every 5 s, nothing committed
        clock.now += 5
        live.observe(partitions=4, recovering=False, lag=600, committed={"p0": 134})
    assert live.ready() and live.stalled_s() == 115
    clock.now += 5
    live.observe(partitions=4, recovering=False, lag=600, committed={"p0": 134})
    assert not live.ready()
    assert live.report()["reasons"] == ["600 records wait and no offset was committed for 120s"]
    clock.now += 5
    live.observe(partitions=4, recovering=False, lag=590, committed={"p0": 144})  # it moves again
    assert live.ready() and live.stalled_s() == 0


def test_no_input_waiting_is_never_a_stall():
    live, clock = started(stall_after_s=10.0)
    for _ in range(10):
        clock.now += 5
        live.observe(partitions=4, recovering=False, lag=0, committed={"p0": 738})
    assert live.ready() and live.stalled_s() == 0
