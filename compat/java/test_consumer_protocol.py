"""The consumer group protocol of KIP-848 (`group.protocol=consumer`): the coordinator
assigns partitions itself and members move to it heartbeat by heartbeat
(ConsumerGroupHeartbeat), described by ConsumerGroupDescribe.

Real clients: librdkafka (confluent-kafka) and the Java consumer in Kafka's console
consumer, with kafka-consumer-groups describing the group. The expectations are Apache
Kafka 4.4's (COMPAT_TARGET=kafka runs the same cases against it).
"""

from __future__ import annotations

import time

import confluent_kafka
import pytest

import clients
import kafka_tools
from clients import wait_until
from kafka_tools import parse_table

pytestmark = pytest.mark.skipif(not kafka_tools.jars_present(), reason="Kafka jars not fetched")

# A member sees its new assignment at its next heartbeat (5 s apart by default).
SETTLE = 40.0


class Member:
    """A librdkafka consumer of the new protocol, recording what it is given and loses."""

    def __init__(self, broker, group: str, **config):
        self.assigned: set[int] = set()
        self.revoked: set[int] = set()
        self.consumed = 0
        self.consumer = confluent_kafka.Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": group,
            "group.protocol": "consumer", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, **config})

    def subscribe(self, topics: list[str]) -> None:
        def on_assign(_, partitions):
            self.assigned |= {p.partition for p in partitions}

        def on_revoke(_, partitions):
            gone = {p.partition for p in partitions}
            self.revoked |= gone
            self.assigned -= gone

        self.consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)

    def poll(self) -> None:
        m = self.consumer.poll(0.1)
        if m is not None and not m.error():
            self.consumed += 1

    def owned(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}


def poll_until(members: list[Member], done, what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.poll()
        if done():
            return
    raise AssertionError(f"timed out waiting for {what}: " +
                         ", ".join(f"{sorted(m.owned())}" for m in members))


def groups_tool(broker, *args) -> kafka_tools.Result:
    return kafka_tools.run("kafka-consumer-groups", "--bootstrap-server", broker.bootstrap, *args)


def test_members_rebalance_incrementally_and_commit(broker, topic):
    clients.create_topic(broker, topic, 6)
    clients.produce_counts(broker, topic, {p: 10 for p in range(6)}, "before")
    group = clients.unique_name("kip848")
    first = Member(broker, group)
    first.subscribe([topic])
    poll_until([first], lambda: len(first.owned()) == 6 and first.consumed == 60, "one member with all")
    before = first.owned()
    first.consumer.commit(asynchronous=False)

    second = Member(broker, group)
    second.subscribe([topic])
    poll_until([first, second], lambda: len(first.owned()) == 3 and len(second.owned()) == 3,
               "three partitions each")
    # Incremental: the first member gave up exactly what the second took, and kept the rest
    # throughout (never revoked, so it went on consuming them).
    assert first.owned() | second.owned() == before
    assert first.revoked == {p for _, p in second.owned()}
    assert first.owned() <= before

    clients.produce_counts(broker, topic, {p: 5 for p in range(6)}, "after")
    # The second member starts where the first committed: every record once.
    poll_until([first, second], lambda: first.consumed + second.consumed >= 90, "every record")
    assert first.consumed + second.consumed == 90
    first.consumer.commit(asynchronous=False)
    second.consumer.commit(asynchronous=False)
    first.consumer.close()
    second.consumer.close()

    r = groups_tool(broker, "--describe", "--group", group)
    assert r.code == 0, str(r)
    rows = {int(row["PARTITION"]): row for row in parse_table(r.stdout)}
    assert {p: (row["CURRENT-OFFSET"], row["LAG"]) for p, row in rows.items()} == {
        p: ("15", "0") for p in range(6)}


def test_java_consumer_and_kafka_consumer_groups(broker, topic):
    clients.create_topic(broker, topic, 3)
    clients.produce_counts(broker, topic, {p: 4 for p in range(3)}, "java")
    group = clients.unique_name("kip848-java")
    consumer = kafka_tools.start(
        "kafka-console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--group", group, "--consumer-property", "group.protocol=consumer",
        "--from-beginning", "--timeout-ms", "60000", stdin=None)
    try:
        def members():
            r = groups_tool(broker, "--describe", "--group", group, "--members", "--verbose")
            rows = parse_table(r.stdout) if r.code == 0 else []
            return rows if rows and rows[0].get("#PARTITIONS") == "3" else None
        rows = wait_until(members, "the Java member holding all three partitions", timeout=SETTLE)
        assert len(rows) == 1
        row = rows[0]
        assert row["CLIENT-ID"] == "console-consumer"
        assert row["CURRENT-EPOCH"] == row["TARGET-EPOCH"] and int(row["CURRENT-EPOCH"]) >= 1
        assert row["CURRENT-ASSIGNMENT"] == f"{topic}:0,1,2"

        r = groups_tool(broker, "--describe", "--group", group, "--state", "--verbose")
        state = parse_table(r.stdout)[0]
        assert (state["ASSIGNMENT-STRATEGY"], state["STATE"], state["#MEMBERS"]) == (
            "uniform", "Stable", "1")
        assert state["GROUP-EPOCH"] == state["TARGET-ASSIGNMENT-EPOCH"]

        r = groups_tool(broker, "--list", "--type", "--state")
        listed = {row["GROUP"]: row for row in parse_table(r.stdout)}
        assert (listed[group]["TYPE"], listed[group]["STATE"]) == ("Consumer", "Stable")
    finally:
        kafka_tools.kill(consumer)


def test_regex_subscription(broker):
    prefix = clients.unique_name("kip848re")
    for name, n in ((f"{prefix}-a", 2), (f"{prefix}-b", 1)):
        clients.create_topic(broker, name, n)
    member = Member(broker, clients.unique_name("kip848-regex"))
    member.subscribe([f"^{prefix}-.*"])
    poll_until([member], lambda: len(member.owned()) == 3, "partitions of both topics")
    assert member.owned() == {(f"{prefix}-a", 0), (f"{prefix}-a", 1), (f"{prefix}-b", 0)}
    member.consumer.close()


def test_static_member_gets_its_partitions_back(broker, topic):
    clients.create_topic(broker, topic, 4)
    group = clients.unique_name("kip848-static")
    one = Member(broker, group, **{"group.instance.id": "one"})
    two = Member(broker, group, **{"group.instance.id": "two"})
    one.subscribe([topic])
    two.subscribe([topic])
    poll_until([one, two], lambda: len(one.owned()) == 2 and len(two.owned()) == 2, "two each")
    held, others, revoked = one.owned(), two.owned(), set(two.revoked)
    one.consumer.close()
    # Back within the session: the same instance id gets the same partitions, and the
    # other member is not disturbed.
    again = Member(broker, group, **{"group.instance.id": "one"})
    again.subscribe([topic])
    poll_until([again, two], lambda: again.owned() == held, "the partitions back")
    assert two.owned() == others and two.revoked == revoked
    again.consumer.close()
    two.consumer.close()


def test_unknown_server_assignor_is_refused(broker, topic):
    clients.create_topic(broker, topic, 1)
    r = kafka_tools.run(
        "kafka-console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--group", clients.unique_name("kip848-assignor"),
        "--consumer-property", "group.protocol=consumer",
        "--consumer-property", "group.remote.assignor=nosuch", "--timeout-ms", "20000")
    # The console consumer reports the error and ends having consumed nothing.
    assert "UnsupportedAssignorException: ServerAssignor nosuch is not supported." in r.stderr, str(r)
    assert "Processed a total of 0 messages" in r.stderr, str(r)


@pytest.mark.restart
def test_the_group_survives_a_broker_restart(restartable, topic):
    """KIP-848 group state is durable in `__consumer_offsets`: when the broker stops and
    starts again, the members carry on at the epochs they had, with the partitions they
    had — no member loses a partition and the group epoch does not move."""
    broker = restartable
    clients.create_topic(broker, topic, 4)
    group = clients.unique_name("kip848-restart")
    members = [Member(broker, group), Member(broker, group)]
    for m in members:
        m.subscribe([topic])
    poll_until(members, lambda: all(len(m.owned()) == 2 for m in members), "two partitions each")

    def state() -> dict:
        r = groups_tool(broker, "--describe", "--group", group, "--state", "--verbose")
        assert r.code == 0, str(r)
        return parse_table(r.stdout)[0]

    def epochs() -> dict:
        r = groups_tool(broker, "--describe", "--group", group, "--members", "--verbose")
        assert r.code == 0, str(r)
        return {row["CONSUMER-ID"]: (row["CURRENT-EPOCH"], row["CURRENT-ASSIGNMENT"])
                for row in parse_table(r.stdout)}

    poll_until(members, lambda: state()["STATE"] == "Stable", "a stable group")
    before, member_epochs, owned = state(), epochs(), [m.owned() for m in members]
    for m in members:
        m.revoked.clear()

    broker.stop()
    broker.restart()

    # The members reach the broker again (each polls through the restart).
    poll_until(members, lambda: state()["STATE"] == "Stable" and len(epochs()) == 2,
               "the group stable again")
    after = state()
    assert (after["GROUP-EPOCH"], after["TARGET-ASSIGNMENT-EPOCH"], after["#MEMBERS"]) == (
        before["GROUP-EPOCH"], before["TARGET-ASSIGNMENT-EPOCH"], "2"), (before, after)
    assert epochs() == member_epochs
    assert [m.owned() for m in members] == owned
    assert all(not m.revoked for m in members), [m.revoked for m in members]
    for m in members:
        m.consumer.close()


def test_a_classic_group_moves_to_the_consumer_protocol_and_back(broker, topic):
    """KIP-848's online migration (group.consumer.migration.policy, bidirectional by
    default): a consumer-protocol member joining a classic group with a member turns it
    into a consumer group; the classic member keeps consuming and gives up half of its
    partitions through JoinGroup/SyncGroup; when the consumer-protocol member leaves, the
    group is classic again and the classic member takes everything back."""
    clients.create_topic(broker, topic, 4)
    clients.produce_counts(broker, topic, {p: 10 for p in range(4)}, "before")
    group = clients.unique_name("migration")
    classic = Member(broker, group, **{"group.protocol": "classic", "session.timeout.ms": 10000,
                                       "heartbeat.interval.ms": 500})
    classic.subscribe([topic])
    poll_until([classic], lambda: len(classic.owned()) == 4 and classic.consumed == 40, "the classic member with all")
    classic.consumer.commit(asynchronous=False)
    everything = classic.owned()

    modern = Member(broker, group)
    modern.subscribe([topic])
    poll_until([classic, modern], lambda: len(classic.owned()) == 2 and len(modern.owned()) == 2,
               "two partitions each")
    assert classic.owned() | modern.owned() == everything
    r = groups_tool(broker, "--describe", "--group", group, "--members")
    assert r.code == 0, str(r)
    assert len(parse_table(r.stdout)) == 2, r.stdout

    clients.produce_counts(broker, topic, {p: 5 for p in range(4)}, "after")
    poll_until([classic, modern], lambda: classic.consumed + modern.consumed >= 60, "every new record")
    assert classic.consumed + modern.consumed == 60
    classic.consumer.commit(asynchronous=False)

    modern.consumer.close()
    poll_until([classic], lambda: classic.owned() == everything, "the classic member with all again")
    r = groups_tool(broker, "--describe", "--group", group, "--state")
    assert r.code == 0, str(r)
    state = parse_table(r.stdout)[0]
    # A classic group again: the client's own assignor, one member.
    assert (state["ASSIGNMENT-STRATEGY"], state["#MEMBERS"]) == ("range", "1"), r.stdout
    classic.consumer.close()


def test_a_java_classic_member_rebalances_inside_a_consumer_group(broker, topic):
    """The Java consumer of the classic protocol (its default eager range assignor) in a
    group a consumer-protocol member upgrades: it gives up half of its partitions through
    JoinGroup/SyncGroup, and takes them all back when the group is classic again."""
    clients.create_topic(broker, topic, 4)
    clients.produce_counts(broker, topic, {p: 5 for p in range(4)}, "java-classic")
    group = clients.unique_name("migration-java")
    java = kafka_tools.start(
        "kafka-console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--group", group, "--consumer-property", "group.protocol=classic",
        "--from-beginning", "--timeout-ms", "90000", stdin=None)
    try:
        def partitions_per_member(expected: list[int]):
            def check():
                r = groups_tool(broker, "--describe", "--group", group, "--members")
                rows = parse_table(r.stdout) if r.code == 0 else []
                counts = sorted(int(row["#PARTITIONS"]) for row in rows)
                return rows if counts == expected else None
            return check
        wait_until(partitions_per_member([4]), "the Java member holding all four partitions", timeout=SETTLE)

        modern = Member(broker, group)
        modern.subscribe([topic])
        poll_until([modern], lambda: len(modern.owned()) == 2, "two partitions for the consumer-protocol member")
        rows = wait_until(partitions_per_member([2, 2]), "the Java member down to two", timeout=SETTLE)
        assert {row["CLIENT-ID"] for row in rows} >= {"console-consumer"}, rows

        modern.consumer.close()
        wait_until(partitions_per_member([4]), "the Java member with all four again", timeout=SETTLE)
        r = groups_tool(broker, "--describe", "--group", group, "--state")
        state = parse_table(r.stdout)[0]
        assert (state["ASSIGNMENT-STRATEGY"], state["#MEMBERS"]) == ("range", "1"), r.stdout
    finally:
        kafka_tools.kill(java)
