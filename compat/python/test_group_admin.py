"""Consumer-group administration as users do it, with kafka-python's KafkaAdminClient and
confluent-kafka's AdminClient: list and describe groups, read committed offsets and
lag, delete groups and offsets, reset offsets; the group members run as their own
processes (group_worker.py).

The broker answers ListGroups, DescribeGroups (state, protocol type and name, members
with client id, host, subscription and assignment bytes), OffsetFetch (every committed
partition, or -1 for one asked for and never committed), DeleteGroups (NON_EMPTY_GROUP,
GROUP_ID_NOT_FOUND), OffsetDelete (GROUP_SUBSCRIBED_TO_TOPIC while a member subscribes
to the topic) and admin OffsetCommits (generation -1, no member id; UNKNOWN_MEMBER_ID
while the group has members).
"""

from __future__ import annotations

import time

import confluent_kafka
import confluent_kafka.admin
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException
from confluent_kafka import TopicPartition as CkTP
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import OffsetSpec as CkOffsetSpec
from kafka import TopicPartition as KpTP
from kafka.admin import OffsetSpec as KpOffsetSpec
from kafka.errors import GroupSubscribedToTopicError, NoError, UnknownMemberIdError

import clients
from clients import wait_until

TIMEOUT = 20  # seconds, for each admin request


@pytest.fixture
def members(tmp_path):
    started = clients.GroupMembers(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
def kp_admin(broker):
    admin = clients.kp_admin(broker)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def ck_admin(broker):
    return clients.ck_admin(broker)


def consume_all_and_commit(broker, members, group, topics, client_id, values, client="kp"):
    """A member that consumes `values`, commits them, and leaves the group."""
    member = members.start(broker, client, group, topics, client_id)
    clients.wait_consumed([member], values)
    wait_until(lambda: sum(len(e["records"]) for e in member.of("records")) == len(values)
               and sum(1 for e in member.of("commit") if e["ok"]) == len(member.of("records")),
               f"{client_id} to commit what it consumed")
    member.stop()
    return member


def offsets_of(records, topic) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for t, p, o, _ in records:
        if t == topic:
            out.setdefault(p, []).append(o)
    return out


# ------------------------------------------------------------------ list / describe

def test_list_and_describe_groups(broker, topic, members, kp_admin, ck_admin):
    group = clients.unique_name("g-describe")
    clients.create_topic(broker, topic, 4)
    ms = [members.start(broker, "kp", group, [topic], "describe-kp", strategies=["range"]),
          members.start(broker, "ck", group, [topic], "describe-ck", strategies=["range"])]
    split = clients.wait_split(broker, group, ms, topic, 4)
    expected = {cid: {(topic, p) for p in ps} for cid, ps in split.items()}

    # kafka-python
    listed = {g["group_id"]: g for g in kp_admin.list_groups()}
    assert (listed[group]["protocol_type"], listed[group]["group_state"]) == ("consumer", "Stable")
    d = kp_admin.describe_groups([group])[group]
    assert d["error"] is None
    assert (d["group_state"], d["protocol_type"], d["protocol_data"]) == ("Stable", "consumer", "range")
    assert sorted(m["client_id"] for m in d["members"]) == ["describe-ck", "describe-kp"]
    assert clients.described_assignments(d) == expected
    for m in d["members"]:
        assert m["member_id"].startswith(m["client_id"] + "-"), m  # Kafka: <client id>-<uuid>
        assert m["client_host"].endswith("127.0.0.1"), m
        assert m["group_instance_id"] is None
        assert m["member_metadata"]["topics"] == [topic]

    # confluent-kafka
    listing = {g.group_id: g for g in ck_admin.list_consumer_groups(request_timeout=TIMEOUT).result().valid}
    assert listing[group].state == ConsumerGroupState.STABLE
    assert listing[group].is_simple_consumer_group is False
    desc = ck_admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result()
    assert (desc.group_id, desc.state, desc.partition_assignor, desc.is_simple_consumer_group) == (
        group, ConsumerGroupState.STABLE, "range", False)
    assert desc.coordinator.port == broker.port
    assert {m.client_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
            for m in desc.members} == expected
    assert {m.member_id for m in desc.members} == {m["member_id"] for m in d["members"]}

    for m in ms:
        m.stop()
    listed = {g["group_id"]: g for g in kp_admin.list_groups()}
    assert (listed[group]["protocol_type"], listed[group]["group_state"]) == ("consumer", "Empty")
    d = kp_admin.describe_groups([group])[group]
    assert (d["group_state"], d["protocol_type"], d["members"]) == ("Empty", "consumer", [])
    desc = ck_admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result()
    assert (desc.state, desc.members) == (ConsumerGroupState.EMPTY, [])


def test_describe_unknown_group(broker, kp_admin, ck_admin):
    group = clients.unique_name("g-never")
    d = kp_admin.describe_groups([group])[group]
    # DescribeGroups v6+ (KIP-1043) answers GROUP_ID_NOT_FOUND; older versions a Dead group.
    assert (d["group_state"], d["members"]) == ("Dead", [])
    assert d["error"] is None or "GroupIdNotFound" in d["error"], d
    assert group not in {g["group_id"] for g in kp_admin.list_groups()}
    assert kp_admin.list_group_offsets(group) == {group: {}}
    future = ck_admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group]
    try:
        desc = future.result()
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e
    else:
        assert (desc.state, desc.members) == (ConsumerGroupState.DEAD, []), vars(desc)


def test_describe_groups_of_a_consumer_protocol_group(broker):
    """DescribeGroups is the classic groups' API: a KIP-848 consumer group is answered as
    a dead group, from v6 with GROUP_ID_NOT_FOUND and Kafka's message naming why."""
    import uuid

    from kafka.protocol.admin.groups import DescribeGroupsRequest

    from kafka44 import ConsumerGroupHeartbeatRequest

    group = clients.unique_name("g-848")
    raw = clients.RawGroupClient(broker)
    try:
        raw.find_coordinator(group)
        deadline = time.monotonic() + 30
        while True:  # the coordinator may still be loading its partition
            r = raw.call(ConsumerGroupHeartbeatRequest(
                group_id=group, member_id=str(uuid.uuid4()), member_epoch=0, rebalance_timeout_ms=30000,
                subscribed_topic_names=["none-such"], topic_partitions=[]), version=1)
            if r.error_code not in (14, 16) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.error_code == 0, r
        described = {}
        for version in (5, 6):
            (g,) = raw.call(DescribeGroupsRequest(groups=[group], include_authorized_operations=False),
                            version=version).groups
            described[version] = (g.group_state, g.error_code, getattr(g, "error_message", None), g.members)
    finally:
        raw.close()
    assert described == {5: ("Dead", 0, None, []),
                         6: ("Dead", 69, f"Group {group} is not a classic group.", [])}


# ------------------------------------------------------------------ offsets and lag

def test_committed_offsets_and_lag(broker, topic, members, kp_admin, ck_admin):
    group = clients.unique_name("g-lag")
    clients.create_topic(broker, topic, 4)
    clients.produce_counts(broker, topic, {0: 10, 1: 20, 2: 30, 3: 5}, "lag")
    # A member commits 4 of p0, all 20 of p1, 0 of p2 and nothing for p3, then leaves.
    member = members.start(broker, "ck", group, [topic], "lag-ck", commit=False,
                           commit_at_start=[[topic, 0, 4, "four"], [topic, 1, 20, ""],
                                            [topic, 2, 0, ""]])
    member.wait_for(lambda m: m.of("commit"), "its commit")
    assert [e["ok"] for e in member.of("commit")] == [True], member.of("commit")
    member.stop()

    committed = kp_admin.list_group_offsets(group)[group]
    assert {tp.partition: (om.offset, om.metadata.rstrip("\x00")) for tp, om in committed.items()} == {
        0: (4, "four"), 1: (20, ""), 2: (0, "")}
    ends = clients.end_offsets(broker, topic, 4)
    assert ends == {0: 10, 1: 20, 2: 30, 3: 5}
    lag = {tp.partition: ends[tp.partition] - om.offset for tp, om in committed.items()}
    assert lag == {0: 6, 1: 0, 2: 30}
    # Asked for explicitly, a partition never committed has offset -1.
    (only,) = kp_admin.list_group_offsets({group: [KpTP(topic, 3)]})[group].values()
    assert only.offset == -1

    # confluent-kafka, with ListOffsets for the log ends: the same lag.
    request = ConsumerGroupTopicPartitions(group, [CkTP(topic, p) for p in range(4)])
    result = ck_admin.list_consumer_group_offsets([request], request_timeout=TIMEOUT)[group].result()
    ck_committed = {tp.partition: tp.offset for tp in result.topic_partitions}
    assert ck_committed == {0: 4, 1: 20, 2: 0, 3: confluent_kafka.OFFSET_INVALID}
    assert all(tp.error is None for tp in result.topic_partitions)
    latest = ck_admin.list_offsets({CkTP(topic, p): CkOffsetSpec.latest() for p in range(4)},
                                   request_timeout=TIMEOUT)
    ck_ends = {tp.partition: f.result().offset for tp, f in latest.items()}
    assert {p: ck_ends[p] - o for p, o in ck_committed.items() if o >= 0} == {0: 6, 1: 0, 2: 30}

    # More records: the lag grows, the commits stay.
    clients.produce_counts(broker, topic, {1: 5}, "more")
    committed = kp_admin.list_group_offsets(group)[group]
    ends = clients.end_offsets(broker, topic, 4)
    assert {tp.partition: ends[tp.partition] - om.offset for tp, om in committed.items()} == {
        0: 6, 1: 5, 2: 30}


# ------------------------------------------------------------------ delete

def test_delete_group(broker, topic, members, kp_admin, ck_admin):
    clients.create_topic(broker, topic, 2)
    values = clients.produce_counts(broker, topic, {0: 5, 1: 5}, "delete")
    group, other = clients.unique_name("g-delete"), clients.unique_name("g-delete-ck")
    member = members.start(broker, "kp", group, [topic], "delete-kp")
    clients.wait_consumed([member], values)
    consume_all_and_commit(broker, members, other, [topic], "delete-other", values)

    # Not while it has a member.
    assert kp_admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
    with pytest.raises(KafkaException) as e:
        ck_admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result()
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    more = clients.produce_counts(broker, topic, {0: 1, 1: 1}, "still")
    clients.wait_consumed([member], more)  # and the member did not notice
    assert clients.wait_split(broker, group, [member], topic, 2) == {"delete-kp": {0, 1}}
    member.stop()

    assert kp_admin.delete_groups([group]) == {group: "OK"}
    assert ck_admin.delete_consumer_groups([other], request_timeout=TIMEOUT)[other].result() is None
    listed = {g["group_id"] for g in kp_admin.list_groups()}
    assert not {group, other} & listed
    assert kp_admin.list_group_offsets([group, other]) == {group: {}, other: {}}
    assert kp_admin.describe_groups([group])[group]["group_state"] == "Dead"
    assert kp_admin.delete_groups([group]) == {group: "GroupIdNotFoundError"}

    # Its offsets went with it: a new member of that name starts from the beginning.
    again = members.start(broker, "ck", group, [topic], "delete-again")
    clients.wait_consumed([again], values + more)
    assert sorted(clients.consumed_values([again])) == sorted(values + more)


def test_delete_offsets_of_one_topic(broker, topic, members, kp_admin):
    t1, t2 = topic + "-a", topic + "-b"
    clients.create_topic(broker, t1, 2)
    clients.create_topic(broker, t2, 2)
    v1 = clients.produce_counts(broker, t1, {0: 3, 1: 4}, "a")
    v2 = clients.produce_counts(broker, t2, {0: 5, 1: 6}, "b")
    group = clients.unique_name("g-offset-delete")
    both = members.start(broker, "kp", group, [t1, t2], "offset-delete-1")
    clients.wait_consumed([both], v1 + v2)
    wait_until(lambda: clients.group_offsets(broker, group) == {
        (t1, 0): (3, ""), (t1, 1): (4, ""), (t2, 0): (5, ""), (t2, 1): (6, "")},
        "every partition committed to its end")
    t1_parts = [KpTP(t1, 0), KpTP(t1, 1)]

    # Not while a member subscribes to the topic.
    assert kp_admin.delete_group_offsets(group, t1_parts) == {
        tp: GroupSubscribedToTopicError for tp in t1_parts}
    both.stop()
    # A member subscribed to the other topic only does not stand in the way.
    only_b = members.start(broker, "ck", group, [t2], "offset-delete-2")
    clients.wait_split(broker, group, [only_b], t2, 2)
    assert kp_admin.delete_group_offsets(group, t1_parts) == {tp: NoError for tp in t1_parts}
    assert clients.group_offsets(broker, group) == {(t2, 0): (5, ""), (t2, 1): (6, "")}
    only_b.stop()

    # t1 is read from the beginning again, t2 goes on from its commits.
    again = members.start(broker, "kp", group, [t1, t2], "offset-delete-3")
    newer = clients.produce_counts(broker, t2, {1: 1}, "b-new")
    clients.wait_consumed([again], v1 + newer)
    assert sorted(clients.consumed_values([again])) == sorted(v1 + newer)


# ------------------------------------------------------------------ reset

def test_reset_offsets_of_an_inactive_group(broker, topic, members, kp_admin, ck_admin):
    clients.create_topic(broker, topic, 2)
    values = clients.produce_counts(broker, topic, {0: 20, 1: 20}, "reset")
    group = clients.unique_name("g-reset")
    active = members.start(broker, "kp", group, [topic], "reset-1")
    clients.wait_consumed([active], values)
    wait_until(lambda: clients.group_offsets(broker, group) == {(topic, 0): (20, ""), (topic, 1): (20, "")},
               "commits at the log end")
    tp0, tp1 = KpTP(topic, 0), KpTP(topic, 1)

    # While the group has a member, an admin commit is refused (UNKNOWN_MEMBER_ID).
    result = kp_admin.reset_group_offsets(group, {tp0: KpOffsetSpec.EARLIEST})
    assert result[tp0]["error"] is UnknownMemberIdError, result
    active.stop()
    assert clients.group_offsets(broker, group) == {(topic, 0): (20, ""), (topic, 1): (20, "")}

    # Earliest for p0, offset 7 for p1 (kafka-python).
    result = kp_admin.reset_group_offsets(group, {tp0: KpOffsetSpec.EARLIEST, tp1: 7})
    assert result == {tp0: {"error": NoError, "offset": 0}, tp1: {"error": NoError, "offset": 7}}
    assert clients.group_offsets(broker, group) == {(topic, 0): (0, ""), (topic, 1): (7, "")}
    second = consume_all_and_commit(broker, members, group, [topic], "reset-2",
                                    [v for v in values if not v.startswith("reset-p1-")
                                     or int(v.rsplit("-", 1)[1]) >= 7], client="ck")
    assert offsets_of(second.records, topic) == {0: list(range(20)), 1: list(range(7, 20))}

    # Offset 15 for p0, 3 for p1 (confluent-kafka), then latest for p1 (kafka-python).
    request = ConsumerGroupTopicPartitions(group, [CkTP(topic, 0, 15), CkTP(topic, 1, 3)])
    altered = ck_admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT)[group].result()
    assert [(tp.partition, tp.offset, tp.error) for tp in altered.topic_partitions] == [
        (0, 15, None), (1, 3, None)]
    assert clients.group_offsets(broker, group) == {(topic, 0): (15, ""), (topic, 1): (3, "")}
    result = kp_admin.reset_group_offsets(group, {tp1: KpOffsetSpec.LATEST})
    assert result == {tp1: {"error": NoError, "offset": 20}}
    assert clients.group_offsets(broker, group) == {(topic, 0): (15, ""), (topic, 1): (20, "")}

    newer = clients.produce_counts(broker, topic, {0: 2, 1: 2}, "newer")
    third = members.start(broker, "kp", group, [topic], "reset-3")
    clients.wait_consumed([third], newer)
    assert offsets_of(third.records, topic) == {0: list(range(15, 22)), 1: [20, 21]}
