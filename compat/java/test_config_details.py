"""Config details where Kafka 4.4's answer is the expectation (COMPAT_TARGET=kafka runs
the same cases against it), with librdkafka's admin client and kafka-configs: APPEND to a list config that is still at its default, and
the per-broker dynamic configs Kafka accepts at run time.
"""

from __future__ import annotations

import time

import confluent_kafka
import pytest
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

import clients
import kafka_tools


def alter(admin, resource: ConfigResource):
    (future,) = admin.incremental_alter_configs([resource]).values()
    return future.result(timeout=30)


def described(admin, resource: ConfigResource) -> dict:
    (future,) = admin.describe_configs([resource]).values()
    return future.result(timeout=30)


def test_append_to_a_list_at_its_default(broker, topic):
    clients.create_topic(broker, topic, 1)
    admin = clients.ck_admin(broker)
    entry = ConfigEntry("cleanup.policy", "compact",
                        incremental_operation=AlterConfigOpType.APPEND)
    alter(admin, ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry]))
    configs = described(admin, ConfigResource(ResourceType.TOPIC, topic))
    assert configs["cleanup.policy"].value == "delete,compact"


def test_per_broker_dynamic_configs(broker):
    admin = clients.ck_admin(broker)
    key = "sasl.kerberos.min.time.before.relogin"
    one = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry(key, "70000", incremental_operation=AlterConfigOpType.SET)])
    alter(admin, one)
    try:
        # Described as set for this broker. (The value shown differs: Kafka keeps showing
        # the value in force, its default, for a key only a SASL/GSSAPI listener reads.)
        entry = described(admin, ConfigResource(ResourceType.BROKER, "1"))[key]
        assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value

        # A per-broker key cannot be the cluster-wide default (librdkafka cannot name the
        # default resource; kafka-configs can).
        r = kafka_tools.run("kafka-configs", "--bootstrap-server", broker.bootstrap, "--alter",
                            "--entity-type", "brokers", "--entity-default",
                            "--add-config", f"{key}=70000")
        assert r.code != 0, str(r)
        assert ("InvalidRequestException: Cannot update these configs at default cluster level, "
                f"broker id must be specified: [{key}]" in r.stderr), str(r)

        # A key that cannot change at run time is refused by name.
        fixed = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
            ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(confluent_kafka.KafkaException) as refused:
            alter(admin, fixed)
        assert "log.dirs" in refused.value.args[0].str()
    finally:
        alter(admin, ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
            ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE)]))


def test_list_config_resources(broker, topic):
    """ListConfigResources v1 (KIP-1142): topics and brokers by type; v0 (client metrics
    only) lists no subscriptions on a broker that has none."""
    from kafka.protocol.admin.configs import ListConfigResourcesRequest

    clients.create_topic(broker, topic, 1)
    raw = clients.RawGroupClient(broker)
    try:
        r = raw.call(ListConfigResourcesRequest(resource_types=[2, 4]), version=1)
        assert r.error_code == 0, r
        listed = {(c.resource_type, c.resource_name) for c in r.config_resources}
        assert (2, topic) in listed and (4, "1") in listed, listed
        assert {t for t, _ in listed} == {2, 4}

        r = raw.call(ListConfigResourcesRequest(resource_types=[4]), version=1)
        assert [(c.resource_type, c.resource_name) for c in r.config_resources] == [(4, "1")]

        r = raw.call(ListConfigResourcesRequest(), version=0)
        assert (r.error_code, list(r.config_resources)) == (0, [])
    finally:
        raw.close()


def test_group_configs(broker):
    """Group configs (resource type GROUP, kafka-configs --entity-type groups): Kafka 4.4's
    names, defaults and synonyms, its checks and messages, listed by ListConfigResources,
    and applied: a consumer group member is told the group's heartbeat interval."""
    import uuid

    from kafka.protocol.admin.configs import ListConfigResourcesRequest

    from kafka44 import ConsumerGroupHeartbeatRequest

    group = clients.unique_name("configured-group")

    def configs(*extra: str) -> dict:
        r = kafka_tools.run("kafka-configs", "--bootstrap-server", broker.bootstrap,
                            "--entity-type", "groups", "--entity-name", group, "--describe", *extra)
        assert r.code == 0, str(r)
        return kafka_tools.parse_configs(r.stdout)

    def alter(*args: str):
        return kafka_tools.run("kafka-configs", "--bootstrap-server", broker.bootstrap,
                               "--entity-type", "groups", "--entity-name", group, "--alter", *args)

    def heartbeat_interval() -> int:
        raw = clients.RawGroupClient(broker)
        try:
            raw.find_coordinator(group)
            deadline = time.monotonic() + 30
            while True:  # the coordinator may still be loading its new partition
                r = raw.call(ConsumerGroupHeartbeatRequest(
                    group_id=group, member_id=str(uuid.uuid4()), member_epoch=0,
                    rebalance_timeout_ms=30000, subscribed_topic_names=["none-such"],
                    topic_partitions=[]), version=1)
                if r.error_code not in (14, 16) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert r.error_code == 0, r
            return r.heartbeat_interval_ms
        finally:
            raw.close()

    every = configs("--all")
    assert every["consumer.session.timeout.ms"] == (
        "45000", "DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000")
    assert every["share.auto.offset.reset"] == ("latest", "DEFAULT_CONFIG:share.auto.offset.reset=latest")
    assert every["streams.assignor.name"] == ("sticky", "DEFAULT_CONFIG:group.streams.assignors=sticky")
    assert "streams.num.warmup.replicas" not in every  # internal: shown only when set
    assert len(every) == 21, sorted(every)
    assert configs() == {}

    r = alter("--add-config", "consumer.heartbeat.interval.ms=6000,streams.num.warmup.replicas=3")
    assert r.code == 0, str(r)
    assert configs() == {
        "consumer.heartbeat.interval.ms": (
            "6000", "DYNAMIC_GROUP_CONFIG:consumer.heartbeat.interval.ms=6000, "
                    "DEFAULT_CONFIG:group.consumer.heartbeat.interval.ms=5000"),
        "streams.num.warmup.replicas": (
            "3", "DYNAMIC_GROUP_CONFIG:streams.num.warmup.replicas=3, "
                 "DEFAULT_CONFIG:group.streams.num.warmup.replicas=2"),
    }
    assert heartbeat_interval() == 6000

    raw = clients.RawGroupClient(broker)
    try:
        r = raw.call(ListConfigResourcesRequest(resource_types=[32]), version=1)
        assert (32, group) in {(c.resource_type, c.resource_name) for c in r.config_resources}, r
    finally:
        raw.close()

    refused = {
        "consumer.session.timeout.ms=10000":
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive.",
        "nosuch.config=1": "Unknown group config name: nosuch.config",
        "consumer.heartbeat.interval.ms=abc":
            "Invalid value abc for configuration consumer.heartbeat.interval.ms: "
            "Not a number of type INT",
        "streams.num.standby.replicas=5": "streams.num.standby.replicas must be less than or equal to 2",
    }
    for setting, message in refused.items():
        r = alter("--add-config", setting)
        assert r.code != 0, str(r)
        assert f"InvalidConfigurationException: {message}" in r.stderr, str(r)

    r = alter("--delete-config", "consumer.heartbeat.interval.ms,streams.num.warmup.replicas")
    assert r.code == 0, str(r)
    assert configs() == {}
    assert heartbeat_interval() == 5000
