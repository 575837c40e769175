"""Topic administration as users do it: create, list, describe, delete, and the errors."""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic as CkNewTopic
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import InvalidTopicError, TopicAlreadyExistsError

import clients

DEADLINE = 30.0


def wait_until(predicate, what: str, timeout: float = DEADLINE):
    """Metadata may lag a create or delete by a moment; wait for it, bounded."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = predicate()
    assert value, f"timed out waiting for {what}"
    return value


# ------------------------------------------------------------------ kafka-python

def test_kp_create_list_describe_delete(broker, topic):
    admin = clients.kp_admin(broker)
    try:
        result = admin.create_topics([KpNewTopic(topic, 5, 1)])
        (created,) = result["topics"]
        assert (created["name"], created["error_code"]) == (topic, 0)
        # Kafka answers a created topic with a null message, not "".
        assert created["error_message"] is None

        wait_until(lambda: topic in admin.list_topics(), f"{topic} in list_topics")
        clients.wait_for_leaders(admin, topic, 5)
        (described,) = admin.describe_topics([topic])
        assert described["name"] == topic
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2, 3, 4]
        assert all(p["replica_nodes"] == [p["leader_id"]] for p in described["partitions"])

        result = admin.delete_topics([topic])
        assert [(t["name"], t["error_code"]) for t in result["topics"]] == [(topic, 0)]
        wait_until(lambda: topic not in admin.list_topics(), f"{topic} gone from list_topics")
    finally:
        admin.close()


def test_kp_create_existing_topic_fails(broker, topic):
    clients.create_topic(broker, topic, 2)
    admin = clients.kp_admin(broker)
    try:
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([KpNewTopic(topic, 3, 1)])
        # The failed create changed nothing: still the original two partitions.
        (described,) = admin.describe_topics([topic])
        assert len(described["partitions"]) == 2
    finally:
        admin.close()


def test_kp_create_invalid_name_fails(broker):
    admin = clients.kp_admin(broker)
    try:
        with pytest.raises(InvalidTopicError):
            admin.create_topics([KpNewTopic("bad/name", 1, 1)])
        assert "bad/name" not in admin.list_topics()
    finally:
        admin.close()


# ------------------------------------------------------------------ confluent-kafka

def test_ck_create_list_delete(broker, topic):
    admin = clients.ck_admin(broker)
    futures = admin.create_topics([CkNewTopic(topic, num_partitions=3, replication_factor=1)],
                                  operation_timeout=20)
    assert futures[topic].result(timeout=30) is None

    def listed():
        return admin.list_topics(timeout=10).topics.get(topic)

    metadata = wait_until(lambda: (m := listed()) and len(m.partitions) == 3 and m,
                          f"{topic} listed with 3 partitions")
    assert sorted(metadata.partitions) == [0, 1, 2]
    assert all(p.leader >= 0 and p.error is None for p in metadata.partitions.values())

    futures = admin.delete_topics([topic], operation_timeout=20)
    assert futures[topic].result(timeout=30) is None
    wait_until(lambda: listed() is None, f"{topic} gone from metadata")


def test_ck_create_existing_topic_fails(broker, topic):
    clients.create_topic(broker, topic, 1)
    admin = clients.ck_admin(broker)
    futures = admin.create_topics([CkNewTopic(topic, num_partitions=1, replication_factor=1)],
                                  operation_timeout=20)
    with pytest.raises(KafkaException) as info:
        futures[topic].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_ck_create_invalid_name_fails(broker):
    admin = clients.ck_admin(broker)
    futures = admin.create_topics([CkNewTopic("bad/name", num_partitions=1, replication_factor=1)],
                                  operation_timeout=20)
    with pytest.raises(KafkaException) as info:
        futures["bad/name"].result(timeout=30)
    # Error 17, INVALID_TOPIC_EXCEPTION; librdkafka calls it TOPIC_EXCEPTION.
    assert info.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    assert "bad/name" not in admin.list_topics(timeout=10).topics


def test_ck_list_shows_partition_counts(broker, topic):
    names = {f"{topic}-{n}": n for n in (1, 4, 7)}
    for name, n in names.items():
        clients.create_topic(broker, name, n)
    listed = clients.ck_admin(broker).list_topics(timeout=10).topics
    assert {name: len(listed[name].partitions) for name in names if name in listed} == names


# ------------------------------------------------------------------ Kafka's caps on one request

def _kp_errors(exc) -> list[tuple[str, int, str | None]]:
    """(name, error code, message) of each topic in the response an admin error carries."""
    response = exc.args[0]
    return [tuple(x) for x in re.findall(r"name='([^']*)'[^)]*?error_code=(\d+), error_message=(?:'([^']*)'|None)",
                                         response)]


def test_kp_requests_over_kafka_caps_are_refused_whole(broker, topic):
    """A CreateTopics or CreatePartitions over Kafka's controller caps is refused whole with
    POLICY_VIOLATION (44) and Kafka's words, before anything is created; a count near 2^31
    is refused the same way, not allocated."""
    from kafka.admin import NewPartitions
    from kafka.errors import InvalidReplicationAssignmentError, PolicyViolationError

    admin = clients.kp_admin(broker)
    try:
        cases = [
            ([KpNewTopic(f"{topic}-big", 10_000, 1)], "Unable to perform excessively large batch operation."),
            ([KpNewTopic(f"{topic}-a", 6000, 1), KpNewTopic(f"{topic}-b", 6000, 1), KpNewTopic("bad name", 1, 1)],
             "Excessively large number of partitions per request."),
            ([KpNewTopic(f"{topic}-huge", 2**31 - 1, 1)], "Excessively large number of partitions per request."),
        ]
        for topics, words in cases:
            with pytest.raises(PolicyViolationError) as refused:
                admin.create_topics(topics)
            errors = _kp_errors(refused.value)
            assert [(n, int(c), m) for n, c, m in errors] == [(t.name, 44, words) for t in topics]
        assert not [t for t in admin.list_topics() if t.startswith(topic)], "nothing was created"

        admin.create_topics([KpNewTopic(topic, 1, 1)])
        with pytest.raises(PolicyViolationError, match="Excessively large number of additional partitions"):
            admin.create_partitions({topic: NewPartitions(2**31 - 1)})
        # An empty (not null) assignment list for two new partitions is an assignment of none.
        with pytest.raises(InvalidReplicationAssignmentError,
                           match=r"Attempted to add 2 additional partition\(s\), but only 0 assignment\(s\)"):
            admin.create_partitions({topic: NewPartitions(3, [])})
        (described,) = admin.describe_topics([topic])
        assert len(described["partitions"]) == 1
    finally:
        admin.close()
