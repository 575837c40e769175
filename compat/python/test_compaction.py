"""Compacted topics (cleanup.policy=compact) as users see them: once the cleaner has
run, a consumer reading from the beginning gets the latest record of every key, at
the offset it was written at, and nothing it replaced; a delete (null value) stays as
the latest record of its key (for delete.retention.ms, a day by default); the log's
start and end offsets do not move; the segment still being written is not cleaned.

The topic rolls its segment every 200 ms (segment.ms) so that there is a closed
segment to clean, asks for cleaning at any dirty share (min.cleanable.dirty.ratio),
and both targets' cleaners look every second (log.cleaner.backoff.ms, in the
fixtures). The wait for the cleaner is bounded."""

from __future__ import annotations

import time

import confluent_kafka.admin
import pytest

import clients
from clients import Msg
from test_transactions import (READ_COMMITTED, READ_UNCOMMITTED, assert_both_read, txn_name,
                               wait_no_open_transaction)
from test_transactions import producers  # noqa: F401  (a fixture, found by its name)

KEYS = 10
VERSIONS = 20
DELETED = b"k3"


def create_compacted(broker, name: str) -> None:
    admin = clients.ck_admin(broker)
    admin.create_topics([confluent_kafka.admin.NewTopic(name, 1, 1, config={
        "cleanup.policy": "compact",
        "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.01",
    })])[name].result(timeout=30)
    clients.wait_for_serving(broker, name, 1)


@pytest.mark.parametrize("codec", ["none", "lz4", "gzip"])
def test_consumers_read_the_latest_record_of_each_key_after_cleaning(broker, codec):
    topic = clients.unique_name(f"compacted-{codec}")
    create_compacted(broker, topic)
    versions = [Msg(f"k{k}".encode(), f"k{k}-v{v}".encode())
                for v in range(VERSIONS) for k in range(KEYS)]
    placed = clients.send_ck(broker, topic, versions + [Msg(DELETED, None)],
                             acks=-1, **{"compression.codec": codec, "linger.ms": 5})
    latest = {}  # key -> (offset, value)
    for (_, offset), m in zip(placed, versions + [Msg(DELETED, None)]):
        latest[m.key] = (offset, m.value)
    # Later than segment.ms: the next record rolls the segment, which closes the ones above.
    time.sleep(0.5)
    (_, last_offset), = clients.send_ck(broker, topic, [Msg(b"after", b"roll")], acks=-1)
    assert last_offset == KEYS * VERSIONS + 1
    expected = sorted([(o, k, v) for k, (o, v) in latest.items()] + [(last_offset, b"after", b"roll")])

    def cleaned():
        seen = [(r.offset, r.key, r.value) for r in clients.read_ck(broker, topic)]
        return seen if len(seen) == len(expected) else None

    seen = clients.wait_until(cleaned, "the cleaner to compact the closed segment", timeout=90, interval=1)
    assert seen == expected
    assert [(r.offset, r.key, r.value) for r in clients.read_kp(broker, topic)] == expected
    # The delete is still there, as the latest record of its key.
    assert (latest[DELETED][0], DELETED, None) in seen
    assert clients.end_offsets(broker, topic, 1) == {0: last_offset + 1}
    consumer = clients.ck_consumer(broker)
    try:
        low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert (low, high) == (0, last_offset + 1)


def test_a_consumer_at_a_removed_offset_continues_at_the_next_record_kept(broker):
    """Offsets of replaced records are gone: seeking to one continues at the next
    record that is still there."""
    topic = clients.unique_name("compacted-seek")
    create_compacted(broker, topic)
    clients.send_ck(broker, topic, [Msg(b"a", b"a1"), Msg(b"b", b"b1"), Msg(b"a", b"a2"),
                                    Msg(b"b", b"b2")], acks=-1)
    time.sleep(0.5)
    clients.send_ck(broker, topic, [Msg(b"c", b"c1")], acks=-1)
    clients.wait_until(lambda: len(clients.read_ck(broker, topic)) == 3, "the cleaner", timeout=90, interval=1)

    consumer = clients.ck_consumer(broker)
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, 1)])
        got = clients.ck_poll_until(consumer, lambda rs: len(rs) >= 3)
    finally:
        consumer.close()
    assert [(r.offset, r.key, r.value) for r in got] == [(2, b"a", b"a2"), (3, b"b", b"b2"), (4, b"c", b"c1")]


def test_compaction_with_transactions(broker, producers):
    """A committed transaction's records count as their keys' latest; an aborted
    transaction's records are removed and never replace what was committed before;
    read_committed and read_uncommitted consumers of both clients read the same."""
    topic = clients.unique_name("compacted-txn")
    create_compacted(broker, topic)
    producer = producers("confluent-kafka", broker, txn_name("compacted"))
    producer.begin()
    producer.send(topic, [Msg(b"a", b"a1"), Msg(b"b", b"b1")])          # 0, 1
    producer.commit()                                                    # marker at 2
    wait_no_open_transaction(broker, topic, 1)
    producer.begin()
    producer.send(topic, [Msg(b"a", b"a-aborted")])                      # 3
    producer.abort()                                                     # marker at 4
    wait_no_open_transaction(broker, topic, 1)
    producer.begin()
    producer.send(topic, [Msg(b"b", b"b2")])                             # 5
    producer.commit()                                                    # marker at 6
    assert wait_no_open_transaction(broker, topic, 1) == {0: 7}
    time.sleep(0.5)
    clients.send_ck(broker, topic, [Msg(b"z", b"roll")], acks=-1)        # 7, rolls the segment

    expected = [(0, 0, b"a", b"a1"), (0, 5, b"b", b"b2"), (0, 7, b"z", b"roll")]

    def cleaned():
        return len(clients.read_kp(broker, topic)) == len(expected)

    clients.wait_until(cleaned, "the cleaner to compact the closed segment", timeout=90, interval=1)
    for isolation in (READ_COMMITTED, READ_UNCOMMITTED):
        assert_both_read(broker, topic, 1, isolation, expected)
