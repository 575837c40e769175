"""The same key always lands in the same partition.

The partitioner runs in the client, over the partition count the broker reports; the
broker must put each record where the client said, and report the same count each time.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

import clients
from clients import Msg

KEYS = [f"user-{i}".encode() for i in range(200)]
PARTITIONS = 6


def produce_keys(broker, topic, client, round_no, **config):
    messages = [Msg(k, f"round{round_no}-{k.decode()}".encode()) for k in KEYS]
    acked = clients.SENDERS[client](broker, topic, messages, **config)
    return {k: p for k, (p, _) in zip(KEYS, acked)}


def assert_stored_where_acknowledged(broker, topic, *rounds):
    records = clients.read_kp(broker, topic, PARTITIONS)
    assert len(records) == len(KEYS) * len(rounds)
    partitions_of = defaultdict(set)
    for r in records:
        partitions_of[r.key].add(r.partition)
    assert {k: ps for k, ps in partitions_of.items()} == {k: {rounds[0][k]} for k in KEYS}


@pytest.mark.parametrize("client", list(clients.SENDERS))
def test_same_key_same_partition(broker, topic, client):
    clients.create_topic(broker, topic, PARTITIONS)
    config = {"acks": "all"} if client == "kafka-python" else {"acks": -1}
    # Two producers, one after the other: nothing is cached between the rounds.
    first = produce_keys(broker, topic, client, 1, **config)
    second = produce_keys(broker, topic, client, 2, **config)
    assert second == first
    # 200 keys over 6 partitions use all of them (else the count was not honoured).
    assert set(first.values()) == set(range(PARTITIONS))
    assert_stored_where_acknowledged(broker, topic, first, second)


def test_java_compatible_partitioning_agrees(broker, topic):
    """kafka-python's default and librdkafka's murmur2 both follow the Java client."""
    clients.create_topic(broker, topic, PARTITIONS)
    by_kp = produce_keys(broker, topic, "kafka-python", 1, acks="all")
    by_ck = produce_keys(broker, topic, "confluent-kafka", 2, acks=-1, partitioner="murmur2_random")
    assert by_ck == by_kp
    assert_stored_where_acknowledged(broker, topic, by_kp, by_ck)
