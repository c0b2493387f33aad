from finsentry.streams.flow_control import FlowControl


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_partition_ahead_in_event_time_waits_until_the_slowest_catches_up():
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=Clock())
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({0, 1}) == ({1}, set())
    assert flow.decide({0, 1}) == (set(), set())  # still ahead: stays paused
    flow.saw(0, 1400.0)
    assert flow.decide({0, 1}) == (set(), {1})


def test_a_partition_with_nothing_waiting_holds_nobody_back():
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=Clock())
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({1}) == (set(), set())  # 0 is caught up: its old time is no reason to wait


def test_a_stuck_partition_stalls_the_others_for_at_most_the_bound():
    clock = Clock()
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=clock)
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({0, 1}) == ({1}, set())
    clock.now = 59.0
    assert flow.decide({0, 1}) == (set(), set())
    clock.now = 61.0
    assert flow.decide({0, 1}) == (set(), {1})  # 0 made no progress: 1 goes on
    clock.now = 200.0
    assert flow.decide({0, 1}) == (set(), set())  # and is not paused again for the same stall
    flow.saw(0, 1010.0)  # the slow one moves: the bound applies afresh
    assert flow.decide({0, 1}) == ({1}, set())


def test_progress_of_the_slow_partition_restarts_the_bound():
    clock = Clock()
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=clock)
    flow.saw(0, 1000.0)
    flow.saw(1, 5000.0)
    flow.decide({0, 1})
    for step in range(1, 6):
        clock.now = 50.0 * step
        flow.saw(0, 1000.0 + 10 * step)
        assert flow.decide({0, 1}) == (set(), set())
    assert 1 in flow.paused


def test_a_partition_with_work_that_was_never_read_is_waited_for_within_the_bound():
    clock = Clock()
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=clock)
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({0, 1, 2}) == ({0, 1}, set())
    clock.now = 61.0
    assert flow.decide({0, 1, 2}) == (set(), {0, 1})  # 2 still unread: the others go on
    flow.saw(2, 900.0)
    assert flow.decide({0, 1, 2}) == ({1}, set())  # 2 is read now: only what is far ahead waits
