"""Config details where Kafka 4.4's answer is the expectation (COMPAT_TARGET=kafka runs
the same cases against it), with librdkafka's admin client and kafka-configs: APPEND to a list config that is still at its default, and
the per-broker dynamic configs Kafka accepts at run time.
"""

from __future__ import annotations

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
