"""Client quotas as users set and feel them: kafka-configs (the Java admin client)
sets, describes and deletes quotas on clients, users, their defaults and IPs, with
Kafka 4.4's own output and refusals; the quotas survive a broker restart; and a
librdkafka producer or consumer over its byte rate is throttled (the broker reports
a throttle time, which librdkafka hands to its throttle callback) while every
record still goes through.

Quotas are cluster-wide state: each case uses its own client ids and users, and
removes what it set."""

from __future__ import annotations

import re
import time

import confluent_kafka
import pytest

import clients
from clients import Msg
from test_tools import configs, ok


def quota_configs(broker, *entity) -> str:
    return ok("kafka-configs", "--bootstrap-server", broker.bootstrap, "--describe", *entity).stdout


def client_entity(name: str) -> list[str]:
    return ["--entity-type", "clients", "--entity-name", name]


def test_configs_set_describe_and_delete_client_quotas(broker):
    app, user = clients.unique_name("app"), clients.unique_name("alice")
    r = configs(broker, client_entity(app), "--alter",
                "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048")
    assert (r.code, r.stdout) == (0, f"Completed updating config for client {app}.\n"), str(r)
    r = configs(broker, ["--entity-type", "users", "--entity-name", user, *client_entity(app)], "--alter",
                "--add-config", "request_percentage=50")
    assert (r.code, r.stdout) == (0, f"Completed updating config for user {user}.\n"), str(r)
    r = configs(broker, ["--entity-type", "ips", "--entity-name", "127.0.0.9"], "--alter",
                "--add-config", "connection_creation_rate=10")
    assert (r.code, r.stdout) == (0, "Completed updating config for ip 127.0.0.9.\n"), str(r)

    assert quota_configs(broker, *client_entity(app)) == (
        f"Quota configs for client-id '{app}' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0\n")
    assert f"Quota configs for client-id '{app}' are" in quota_configs(broker, "--entity-type", "clients")
    assert quota_configs(broker, "--entity-type", "users", "--entity-name", user, *client_entity(app)) == (
        f"Quota configs for user-principal '{user}', client-id '{app}' are request_percentage=50.0\n")
    # The user alone has no quota of its own: it is not listed.
    assert user not in quota_configs(broker, "--entity-type", "users")
    assert "Quota configs for ip '127.0.0.9' are connection_creation_rate=10.0" in quota_configs(
        broker, "--entity-type", "ips")

    # Refused, and nothing changes: a fractional byte rate, a key that is not a quota.
    r = configs(broker, client_entity(app), "--alter", "--add-config", "producer_byte_rate=10.5")
    assert r.code == 1 and "producer_byte_rate cannot be a fractional value." in r.stderr, str(r)
    r = configs(broker, client_entity(app), "--alter", "--add-config", "bogus_rate=10")
    assert r.code == 1 and "Unexpected config names: bogus_rate" in r.stderr, str(r)

    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(app), "--alter",
       "--delete-config", "consumer_byte_rate")
    assert quota_configs(broker, *client_entity(app)) == (
        f"Quota configs for client-id '{app}' are producer_byte_rate=1024.0\n")
    # Deleting the last value forgets the entity.
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(app), "--alter",
       "--delete-config", "producer_byte_rate")
    assert quota_configs(broker, *client_entity(app)) == ""
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "users", "--entity-name", user,
       *client_entity(app), "--alter", "--delete-config", "request_percentage")
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "ips", "--entity-name", "127.0.0.9",
       "--alter", "--delete-config", "connection_creation_rate")


@pytest.mark.restart
def test_quotas_survive_broker_restart(restartable):
    broker = restartable
    app = clients.unique_name("kept")
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(app), "--alter",
       "--add-config", "producer_byte_rate=4096")
    broker.stop()
    broker.restart()
    assert quota_configs(broker, *client_entity(app)) == (
        f"Quota configs for client-id '{app}' are producer_byte_rate=4096.0\n")
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(app), "--alter",
       "--delete-config", "producer_byte_rate")


def set_quota(broker, client_id: str, key: str, value: int) -> None:
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(client_id), "--alter",
       "--add-config", f"{key}={value}")
    # Kafka applies quota changes a moment after the admin call returns.
    time.sleep(1.5)


def test_producer_over_its_byte_rate_is_throttled(broker, tool_topic):
    """producer_byte_rate=1024 and one 60 KB batch: far over the rate, so the produce
    response carries a throttle time, which librdkafka reports; the record is stored."""
    client_id = clients.unique_name("throttled-producer")
    set_quota(broker, client_id, "producer_byte_rate", 1024)
    clients.create_topic(broker, tool_topic, 1)
    throttles = []
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id,
                                         "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    try:
        producer.produce(tool_topic, key=b"k", value=b"x" * 60_000)
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 30
        while not throttles and time.monotonic() < deadline:
            producer.poll(0.2)
    finally:
        producer.flush(30)
    assert throttles and max(throttles) > 0, throttles
    assert clients.end_offsets(broker, tool_topic, 1) == {0: 1}
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(client_id), "--alter",
       "--delete-config", "producer_byte_rate")


def test_consumer_over_its_byte_rate_is_throttled_and_reads_everything(broker, tool_topic):
    """consumer_byte_rate=50 KB/s and 800 KB to read in fetches of at most 100 KB: the
    first ten seconds' worth goes at once, then fetches are throttled (librdkafka
    reports it) until the rate allows more; every record arrives, in order."""
    client_id = clients.unique_name("throttled-consumer")
    clients.create_topic(broker, tool_topic, 1)
    values = [f"{i:06d}".encode() + b"x" * 994 for i in range(800)]
    # Batches of at most 20 KB: a fetch always returns the first batch whole, and one
    # batch over the rate would be throttled again and again.
    clients.send_ck(broker, tool_topic, [Msg(None, v) for v in values], acks=-1, **{"batch.size": 20_000})
    set_quota(broker, client_id, "consumer_byte_rate", 51200)
    throttles = []
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": broker.bootstrap, "client.id": client_id, "group.id": client_id,
        "fetch.max.bytes": 102400, "max.partition.fetch.bytes": 102400, "message.max.bytes": 102400,
        "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    try:
        consumer.assign([confluent_kafka.TopicPartition(tool_topic, 0, 0)])
        got = clients.ck_poll_until(consumer, lambda rs: len(rs) >= len(values), timeout=90)
        deadline = time.monotonic() + 10
        while not throttles and time.monotonic() < deadline:
            consumer.poll(0.2)
    finally:
        consumer.close()
    assert [r.value for r in got] == values
    assert throttles and max(throttles) > 0, throttles
    ok("kafka-configs", "--bootstrap-server", broker.bootstrap, *client_entity(client_id), "--alter",
       "--delete-config", "consumer_byte_rate")
