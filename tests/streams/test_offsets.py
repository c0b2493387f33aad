"""The commit point of a partition: never past a record that was delivered and not processed."""

from finsentry.streams.offsets import InFlight


def deliver(flight, offsets, tp="t/0", generation=1):
    for offset in offsets:
        flight.delivered(tp, offset, generation)


def test_the_commit_waits_for_the_oldest_record_in_flight():
    flight = InFlight()
    deliver(flight, range(10, 20))
    for offset in range(12, 20):  # a later batch finishes first
        flight.acknowledged("t/0", offset, 1, processed=True)
    assert flight.commit_point("t/0", committed=10) is None
    flight.acknowledged("t/0", 10, 1, processed=True)
    assert flight.commit_point("t/0", committed=10) == 11
    flight.acknowledged("t/0", 11, 1, processed=True)
    assert flight.commit_point("t/0", committed=11) == 20


def test_a_record_acknowledged_unprocessed_caps_the_commit_until_the_partition_is_revoked():
    flight = InFlight()
    deliver(flight, range(5))
    flight.acknowledged("t/0", 2, 1, processed=False)  # skipped while the flow was stopped
    for offset in (0, 1, 3, 4):
        flight.acknowledged("t/0", offset, 1, processed=True)
    assert flight.commit_point("t/0", committed=None) == 2
    flight.forget(["t/0"])
    assert flight.commit_point("t/0", committed=2) is None


def test_a_record_of_an_older_delivery_does_not_release_the_new_one():
    flight = InFlight()
    deliver(flight, [7], generation=1)
    flight.forget(["t/0"])
    deliver(flight, [7], generation=2)
    flight.acknowledged("t/0", 7, 1, processed=True)  # the copy from before the rebalance
    assert flight.commit_point("t/0", committed=7) is None
    flight.acknowledged("t/0", 7, 2, processed=True)
    assert flight.commit_point("t/0", committed=7) == 8


def test_offsets_missing_mid_stream_do_not_hold_the_commit():
    flight = InFlight()
    deliver(flight, [3, 4, 9, 10])  # 5-8: compacted away or transaction markers
    for offset in (3, 4, 9, 10):
        flight.acknowledged("t/0", offset, 1, processed=True)
    assert flight.commit_point("t/0", committed=3) == 11


def test_a_head_gap_holds_the_commit_until_the_broker_shows_those_offsets_are_gone():
    flight = InFlight()
    deliver(flight, [15, 16])
    for offset in (15, 16):
        flight.acknowledged("t/0", offset, 1, processed=True)
    assert flight.head_gaps({"t/0": 10}) == ["t/0"]
    assert flight.commit_point("t/0", committed=10) is None
    flight.set_log_start("t/0", 12)  # 12-14 still exist: they were skipped, not deleted
    assert flight.commit_point("t/0", committed=10) is None and flight.head_gap("t/0", 10)
    flight.set_log_start("t/0", 15)  # retention removed everything before 15
    assert flight.commit_point("t/0", committed=10) == 17


def test_a_skipped_record_read_again_holds_the_commit_until_it_is_processed():
    flight = InFlight()
    deliver(flight, range(3))
    flight.acknowledged("t/0", 1, 1, processed=False)
    flight.acknowledged("t/0", 0, 1, processed=True)
    flight.acknowledged("t/0", 2, 1, processed=True)
    assert flight.capped() == {"t/0": 1} and flight.commit_point("t/0", committed=0) == 1
    flight.redeliver_from("t/0", 1)  # the consumer seeks back to 1
    assert flight.capped() == {} and flight.commit_point("t/0", committed=1) is None
    deliver(flight, [1, 2])
    flight.acknowledged("t/0", 1, 1, processed=True)
    flight.acknowledged("t/0", 2, 1, processed=True)
    assert flight.commit_point("t/0", committed=1) == 3
