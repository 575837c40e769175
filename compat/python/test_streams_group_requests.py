"""The streams group APIs of KIP-1071 by hand, for what the Kafka Streams client never
sends on purpose: StreamsGroupHeartbeat requests Kafka refuses (and its messages for
them), a new group's first answer (its statuses, the internal topics the broker makes),
and StreamsGroupTopologyDescriptionUpdate, which Kafka 4.4 refuses without a
topology-description plugin. Raw requests built from Kafka's message definitions
(compat/python/kafka44); compat/java/test_streams_group_protocol.py runs a real
Kafka Streams app.
"""

from __future__ import annotations

import uuid

import confluent_kafka.admin  # noqa: F401 (clients.ck_admin needs the submodule)
import pytest

import clients
from kafka44 import StreamsGroupHeartbeatRequest as Heartbeat
from kafka44 import StreamsGroupTopologyDescriptionUpdateRequest as DescriptionUpdate

INVALID_REQUEST, UNSUPPORTED_VERSION, GROUP_ID_NOT_FOUND = 42, 35, 69
STREAMS_INVALID_TOPOLOGY = 130
ASSIGNMENT_DELAYED, MISSING_INTERNAL_TOPICS = 5, 3


def topic_info(name: str, partitions: int = 0):
    configs = [Heartbeat.KeyValue(key="cleanup.policy", value="compact")]
    return Heartbeat.Topology.Subtopology.TopicInfo(name=name, partitions=partitions,
                                                    replication_factor=0, topic_configs=configs)


def topology(source: str, changelog: str, changelog_partitions: int = 0):
    return Heartbeat.Topology(epoch=0, subtopologies=[Heartbeat.Topology.Subtopology(
        subtopology_id="0", source_topics=[source], source_topic_regex=[],
        state_changelog_topics=[topic_info(changelog, changelog_partitions)],
        repartition_sink_topics=[], repartition_source_topics=[], copartition_groups=[])])


def join(group: str, member: str, **overrides):
    fields = dict(group_id=group, member_id=member, member_epoch=0, endpoint_information_epoch=-1,
                  rebalance_timeout_ms=30000, topology=None, active_tasks=[], standby_tasks=[],
                  warmup_tasks=[], process_id=member)
    fields.update(overrides)
    return Heartbeat(**fields)


def partitions(broker, topic: str) -> int | None:
    """The topic's partition count, None while it does not exist (never auto-created here)."""
    found = clients.ck_admin(broker).list_topics(timeout=20).topics.get(topic)
    return len(found.partitions) if found is not None and found.error is None else None


@pytest.fixture
def raw(broker):
    client = clients.RawGroupClient(broker)
    yield client
    client.close()


def test_heartbeats_kafka_refuses(raw, topic):
    group = clients.unique_name("streams-refused")
    raw.find_coordinator(group)
    member = uuid.uuid4().hex[:22]

    r = raw.call(join(group, member), version=1)
    assert (r.error_code, r.error_message) == (INVALID_REQUEST, "Topology must be non-null when (re-)joining.")
    r = raw.call(join(group, member, topology=topology(topic, f"{group}-store-changelog", 3)), version=1)
    assert (r.error_code, r.error_message) == (
        STREAMS_INVALID_TOPOLOGY,
        f"Changelog topic {group}-store-changelog must have an undefined partition count, but it is set to 3.")
    r = raw.call(join(group, "", topology=topology(topic, "c")), version=1)
    assert (r.error_code, r.error_message) == (INVALID_REQUEST, "MemberId can't be empty.")
    r = raw.call(join(group, member, member_epoch=3, topology=None, active_tasks=[],
                      standby_tasks=None, warmup_tasks=None), version=1)
    assert (r.error_code, r.error_message) == (
        INVALID_REQUEST, "If one task-type is non-null, all must be non-null.")
    r = raw.call(join(group, member, member_epoch=3, active_tasks=None, standby_tasks=None,
                      warmup_tasks=None), version=1)
    assert r.error_code == GROUP_ID_NOT_FOUND, r


def test_a_new_group_waits_and_asks_for_its_internal_topics(broker, raw, topic):
    clients.create_topic(broker, topic, 2)
    group = clients.unique_name("streams-first")
    raw.find_coordinator(group)
    member = uuid.uuid4().hex[:22]
    changelog = f"{group}-store-changelog"
    r = raw.call(join(group, member, topology=topology(topic, changelog)), version=1)
    assert (r.error_code, r.member_epoch, r.heartbeat_interval_ms) == (0, 1, 5000), r
    assert [(s.status_code, s.status_detail) for s in r.status] == [
        (ASSIGNMENT_DELAYED, "Assignment delayed due to the configured initial rebalance delay."),
        (MISSING_INTERNAL_TOPICS, f"Internal topics are missing: {changelog}")]
    assert (r.active_tasks, r.standby_tasks, r.warmup_tasks) == ([], [], [])
    # The broker makes the changelog topic itself: one partition per task, the topology's configs.
    clients.wait_until(lambda: partitions(broker, changelog) == 2,
                       f"{changelog} created with 2 partitions", 10)
    r = raw.call(join(group, member, member_epoch=-1, topology=None, active_tasks=None,
                      standby_tasks=None, warmup_tasks=None, process_id=None), version=1)
    assert (r.error_code, r.member_epoch) == (0, -1), r


def test_topology_descriptions_are_refused_without_a_plugin(raw):
    group = clients.unique_name("streams-description")
    raw.find_coordinator(group)
    request = DescriptionUpdate(
        group_id=group, member_id=uuid.uuid4().hex[:22], topology_epoch=0,
        topology_description=DescriptionUpdate.TopologyDescription(subtopologies=[], global_stores=[]))
    r = raw.call(request, version=0)
    assert (r.error_code, r.error_message) == (
        UNSUPPORTED_VERSION, "The broker has no streams group topology description plugin configured.")
