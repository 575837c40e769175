"""Fetch long-poll: a consumer waiting on an empty partition gets a new record promptly.

The consumers wait up to FETCH_WAIT in the broker; the test gives the record DEADLINE
(shorter) to arrive. A broker that parks the Fetch must answer it when data comes in,
not when the wait expires. Nothing is timed: the record arrives or it does not.
"""

from __future__ import annotations

from confluent_kafka import OFFSET_END
from confluent_kafka import TopicPartition as CkTP
from kafka import TopicPartition as KpTP

import clients
from clients import Msg

FETCH_WAIT_MS = 40_000
DEADLINE = 20.0


def test_kp_long_poll_wakes_on_produce(broker, topic):
    clients.create_topic(broker, topic, 1)
    clients.send_kp(broker, topic, [Msg(b"old", b"before")], acks="all")
    consumer = clients.kp_consumer(broker, fetch_max_wait_ms=FETCH_WAIT_MS,
                                   request_timeout_ms=FETCH_WAIT_MS + 15_000)
    try:
        tp = KpTP(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_end(tp)
        assert consumer.position(tp) == 1
        # Nothing to read: the Fetch now sent stays parked in the broker.
        assert clients.kp_poll_until(consumer, lambda r: len(r) > 0, timeout=2.0) == []
        clients.send_ck(broker, topic, [Msg(b"new", b"after")], acks=-1)
        records = clients.kp_poll_until(consumer, lambda r: len(r) > 0, timeout=DEADLINE)
        assert [(r.offset, r.key, r.value) for r in records] == [(1, b"new", b"after")]
    finally:
        consumer.close()


def test_ck_long_poll_wakes_on_produce(broker, topic):
    clients.create_topic(broker, topic, 1)
    clients.send_ck(broker, topic, [Msg(b"old", b"before")], acks=-1)
    consumer = clients.ck_consumer(broker, **{"fetch.wait.max.ms": FETCH_WAIT_MS,
                                              "socket.timeout.ms": FETCH_WAIT_MS + 15_000})
    try:
        consumer.assign([CkTP(topic, 0, OFFSET_END)])
        assert clients.ck_poll_until(consumer, lambda r: len(r) > 0, timeout=2.0) == []
        clients.send_kp(broker, topic, [Msg(b"new", b"after")], acks="all")
        records = clients.ck_poll_until(consumer, lambda r: len(r) > 0, timeout=DEADLINE)
        assert [(r.offset, r.key, r.value) for r in records] == [(1, b"new", b"after")]
    finally:
        consumer.close()
