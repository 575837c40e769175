"""Consume by assigning partitions (no group): seek to beginning, end, an offset, a time.

Each test gets a topic with 2 partitions: partition 1 holds 50 records with timestamps
one second apart, partition 0 holds 5 others (to notice a read from the wrong one).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from confluent_kafka import TopicPartition as CkTP
from kafka import TopicPartition as KpTP

import clients
from clients import Msg

N = 50


@pytest.fixture
def filled(broker, topic):
    """(topic, base timestamp); partition 1 value i at offset i with timestamp base + i s."""
    clients.create_topic(broker, topic, 2)
    base = (int(time.time()) - 3600) * 1000
    messages = [Msg(f"k{i}".encode(), f"v{i}".encode(), partition=1, timestamp=base + i * 1000)
                for i in range(N)]
    messages += [Msg(b"other", f"p0-{i}".encode(), partition=0, timestamp=base + i)
                 for i in range(5)]
    acked = clients.send_kp(broker, topic, messages, acks="all")
    assert acked[:N] == [(1, i) for i in range(N)]
    return topic, base


def values(records):
    return [(r.partition, r.offset, r.value) for r in records]


def expected(start, stop=N):
    return [(1, i, f"v{i}".encode()) for i in range(start, stop)]


def until_count(n):
    return lambda records: len(records) >= n


# ------------------------------------------------------------------ kafka-python

@pytest.fixture
def kp(broker):
    consumer = clients.kp_consumer(broker)
    yield consumer
    consumer.close()


def test_kp_seek_to_beginning(broker, filled, kp):
    topic, base = filled
    tp = KpTP(topic, 1)
    kp.assign([tp])
    kp.seek_to_beginning(tp)
    assert kp.position(tp) == 0
    records = clients.kp_poll_until(kp, until_count(N))
    assert values(records) == expected(0)
    assert [r.timestamp for r in records] == [base + i * 1000 for i in range(N)]
    assert kp.beginning_offsets([tp]) == {tp: 0}
    assert kp.end_offsets([tp, KpTP(topic, 0)]) == {tp: N, KpTP(topic, 0): 5}


def test_kp_seek_to_end_sees_only_new(broker, filled, kp):
    topic, _ = filled
    tp = KpTP(topic, 1)
    kp.assign([tp])
    kp.seek_to_end(tp)
    assert kp.position(tp) == N
    assert clients.kp_poll_until(kp, until_count(1), timeout=1.0) == []
    clients.send_kp(broker, topic, [Msg(b"n", f"new{i}".encode(), partition=1) for i in range(3)],
                    acks="all")
    records = clients.kp_poll_until(kp, until_count(3))
    assert values(records) == [(1, N + i, f"new{i}".encode()) for i in range(3)]


def test_kp_seek_to_offset(broker, filled, kp):
    topic, _ = filled
    tp = KpTP(topic, 1)
    kp.assign([tp])
    kp.seek(tp, 37)
    assert values(clients.kp_poll_until(kp, until_count(N - 37))) == expected(37)
    # Seeking backwards after reading re-reads.
    kp.seek(tp, 5)
    records = clients.kp_poll_until(kp, until_count(3))
    assert values(records[:3]) == expected(5, 8)


def test_kp_seek_to_timestamp(broker, filled, kp):
    topic, base = filled
    tp = KpTP(topic, 1)
    kp.assign([tp])
    # Between records 20 and 21: the first record at or after it is 21.
    found = kp.offsets_for_times({tp: base + 20_500})[tp]
    assert (found.offset, found.timestamp) == (21, base + 21_000)
    exact = kp.offsets_for_times({tp: base + 30_000})[tp]
    assert (exact.offset, exact.timestamp) == (30, base + 30_000)
    before_all = kp.offsets_for_times({tp: base - 10_000})[tp]
    assert (before_all.offset, before_all.timestamp) == (0, base)
    # After the last record there is no such offset.
    assert kp.offsets_for_times({tp: base + N * 1000 + 1})[tp] is None

    kp.seek(tp, found.offset)
    assert values(clients.kp_poll_until(kp, until_count(N - 21))) == expected(21)


# ------------------------------------------------------------------ confluent-kafka

@pytest.fixture
def ck(broker):
    consumer = clients.ck_consumer(broker)
    yield consumer
    consumer.close()


def test_ck_seek_to_beginning(broker, filled, ck):
    topic, base = filled
    ck.assign([CkTP(topic, 1, OFFSET_BEGINNING)])
    records = clients.ck_poll_until(ck, until_count(N))
    assert values(records) == expected(0)
    assert [r.timestamp for r in records] == [base + i * 1000 for i in range(N)]
    assert ck.get_watermark_offsets(CkTP(topic, 1), timeout=10) == (0, N)
    assert ck.get_watermark_offsets(CkTP(topic, 0), timeout=10) == (0, 5)


def test_ck_seek_to_end_sees_only_new(broker, filled, ck):
    topic, _ = filled
    ck.assign([CkTP(topic, 1, OFFSET_END)])
    # Let the consumer resolve "end" (ListOffsets) before anything new is produced.
    assert clients.ck_poll_until(ck, until_count(1), timeout=2.0) == []
    clients.send_ck(broker, topic, [Msg(b"n", f"new{i}".encode(), partition=1) for i in range(3)],
                    acks=-1)
    records = clients.ck_poll_until(ck, until_count(3))
    assert values(records) == [(1, N + i, f"new{i}".encode()) for i in range(3)]


def test_ck_seek_to_offset(broker, filled, ck):
    topic, _ = filled
    ck.assign([CkTP(topic, 1, 37)])
    assert values(clients.ck_poll_until(ck, until_count(N - 37))) == expected(37)
    # seek() on an assigned partition moves the fetch position back.
    ck.seek(CkTP(topic, 1, 5))
    records = clients.ck_poll_until(ck, until_count(3))
    assert values(records[:3]) == expected(5, 8)


def test_ck_seek_to_timestamp(broker, filled, ck):
    topic, base = filled
    # One partition per query: librdkafka merges repeated partitions in one request.
    found = ck.offsets_for_times([CkTP(topic, 1, base + 20_500), CkTP(topic, 0, base + 2)],
                                 timeout=10)
    assert [(t.partition, t.offset, t.error) for t in found] == [(1, 21, None), (0, 2, None)]
    (before_all,) = ck.offsets_for_times([CkTP(topic, 1, base - 10_000)], timeout=10)
    assert (before_all.offset, before_all.error) == (0, None)
    (after_last,) = ck.offsets_for_times([CkTP(topic, 1, base + N * 1000 + 1)], timeout=10)
    assert after_last.offset == OFFSET_END  # -1: no record at or after that time

    ck.assign([found[0]])
    assert values(clients.ck_poll_until(ck, until_count(N - 21))) == expected(21)
