"""Share groups (KIP-932, queues for Kafka): the Java KafkaShareConsumer in Kafka's
console share consumer reads records handed out by the broker (ShareGroupHeartbeat,
ShareFetch, ShareAcknowledge), accepting, releasing or rejecting them, with delivery
counts and the group's configs; kafka-share-groups lists and describes the groups.

Expectations are Apache Kafka 4.4's (COMPAT_TARGET=kafka runs the same cases against it,
where share groups are on by default: share.version=2).
"""

from __future__ import annotations

import time

import pytest

import clients
import kafka_tools
from kafka_tools import parse_table

pytestmark = pytest.mark.skipif(not kafka_tools.jars_present(), reason="Kafka jars not fetched")


def set_group_configs(broker, group: str, configs: str) -> None:
    r = kafka_tools.run("kafka-configs", "--bootstrap-server", broker.bootstrap, "--alter",
                        "--entity-type", "groups", "--entity-name", group, "--add-config", configs)
    assert r.code == 0, str(r)


def share_consume(broker, topic: str, group: str, *extra: str, max_messages: int | None = None,
                  timeout_ms: int = 15000) -> list[str]:
    """Runs kafka-console-share-consumer until it has printed max_messages (or nothing
    came for timeout_ms); the values it printed."""
    args = ["--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
            "--timeout-ms", str(timeout_ms), *extra]
    if max_messages is not None:
        args += ["--max-messages", str(max_messages)]
    r = kafka_tools.run("kafka-console-share-consumer", *args, timeout=120)
    assert r.code == 0, str(r)
    return [line for line in r.stdout.splitlines() if line]


def share_groups(broker, *args: str) -> kafka_tools.Result:
    r = kafka_tools.run("kafka-share-groups", "--bootstrap-server", broker.bootstrap, *args)
    assert r.code == 0, str(r)
    return r


def described_offsets(broker, group: str, column: str) -> dict[int, int]:
    """kafka-share-groups --describe: partition -> START-OFFSET or LAG."""
    rows = parse_table(share_groups(broker, "--describe", "--group", group).stdout)
    return {int(r["PARTITION"]): int(r[column]) for r in rows if r[column] != "-"}


def lags(broker, group: str) -> dict[int, int]:
    # Not the start offsets: Kafka describes the start offset it last persisted,
    # which trails the acknowledgements by one round.
    return described_offsets(broker, group, "LAG")


def test_console_share_consumer_reads_every_record_once(broker, tool_topic):
    clients.create_topic(broker, tool_topic, 2)
    group = clients.unique_name("share-group")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest")
    values = clients.produce_counts(broker, tool_topic, {0: 30, 1: 20}, "q")

    got = share_consume(broker, tool_topic, group, max_messages=50)
    assert sorted(got) == sorted(values)

    # Accepted: nothing is delivered again, and nothing is left to read.
    assert share_consume(broker, tool_topic, group, timeout_ms=5000) == []
    assert lags(broker, group) == {0: 0, 1: 0}

    listed = share_groups(broker, "--list").stdout.split()
    assert group in listed
    state = parse_table(share_groups(broker, "--describe", "--group", group, "--state").stdout)
    assert [(r["STATE"], r["#MEMBERS"]) for r in state] == [("Empty", "0")]

    r = share_groups(broker, "--delete", "--group", group)
    assert f"Deletion of requested share groups ('{group}') was successful." in r.stdout, str(r)
    assert group not in share_groups(broker, "--list").stdout.split()


def test_released_records_come_back_until_the_delivery_limit(broker, tool_topic):
    clients.create_topic(broker, tool_topic, 1)
    group = clients.unique_name("share-release")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest,share.delivery.count.limit=2")
    values = clients.produce_counts(broker, tool_topic, {0: 5}, "r")

    # Every record released: delivered twice (the limit), then archived.
    got = share_consume(broker, tool_topic, group, "--release", max_messages=10)
    assert sorted(got) == sorted(values * 2)
    assert share_consume(broker, tool_topic, group, timeout_ms=5000) == []
    assert lags(broker, group) == {0: 0}


def test_rejected_records_are_never_delivered_again(broker, tool_topic):
    clients.create_topic(broker, tool_topic, 1)
    group = clients.unique_name("share-reject")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest")
    values = clients.produce_counts(broker, tool_topic, {0: 4}, "x")
    assert sorted(share_consume(broker, tool_topic, group, "--reject", max_messages=4)) == sorted(values)
    assert share_consume(broker, tool_topic, group, timeout_ms=5000) == []
    assert lags(broker, group) == {0: 0}


def test_members_share_the_records_of_a_topic(broker, tool_topic):
    """Two members of one group read disjoint records; a group of its own reads them all
    again; by default (latest) a new group starts at the end."""
    clients.create_topic(broker, tool_topic, 2)
    group = clients.unique_name("share-two")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest")
    values = clients.produce_counts(broker, tool_topic, {0: 40, 1: 40}, "s")

    started = time.monotonic()
    procs = [kafka_tools.start("kafka-console-share-consumer", "--bootstrap-server", broker.bootstrap,
                               "--topic", tool_topic, "--group", group, "--timeout-ms", "8000",
                               stdin=None, text=True)
             for _ in range(2)]
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            outputs.append([line for line in out.splitlines() if line])
    finally:
        for p in procs:
            kafka_tools.kill(p)
    print(f"two share consumers: {time.monotonic() - started:.1f} s")
    everything = outputs[0] + outputs[1]
    assert sorted(everything) == sorted(values), "each record exactly once across the members"

    other = clients.unique_name("share-other")
    set_group_configs(broker, other, "share.auto.offset.reset=earliest")
    assert sorted(share_consume(broker, tool_topic, other, max_messages=80)) == sorted(values)

    latest = clients.unique_name("share-latest")
    assert share_consume(broker, tool_topic, latest, timeout_ms=5000) == []
    # Nothing acknowledged yet: no state written, described without offsets.
    rows = parse_table(share_groups(broker, "--describe", "--group", latest).stdout)
    assert sorted((r["PARTITION"], r["START-OFFSET"], r["LAG"]) for r in rows) == [
        ("0", "-", "-"), ("1", "-", "-")]


def status_rows(stdout: str) -> list[tuple[str, str]]:
    """kafka-share-groups --delete-offsets prints TOPIC and STATUS (which may hold spaces)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.split() == ["TOPIC", "STATUS"]) + 1
    return [tuple(line.split(None, 1)) for line in lines[start:]]


def reset_offsets(broker, group: str, *scope: str) -> dict[tuple[str, int], int]:
    """kafka-share-groups --reset-offsets: (topic, partition) -> NEW-OFFSET as printed."""
    rows = parse_table(share_groups(broker, "--reset-offsets", "--group", group, *scope).stdout)
    return {(r["TOPIC"], int(r["PARTITION"])): int(r["NEW-OFFSET"]) for r in rows}


def test_reset_offsets_of_an_inactive_group(broker, tool_topic):
    """--reset-offsets (AlterShareGroupOffsets): a dry run changes nothing; --execute
    makes the group read again from the offsets given, per topic or per partition."""
    clients.create_topic(broker, tool_topic, 2)
    group = clients.unique_name("share-reset")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest")
    values = clients.produce_counts(broker, tool_topic, {0: 6, 1: 4}, "z")
    assert sorted(share_consume(broker, tool_topic, group, max_messages=10)) == sorted(values)

    planned = reset_offsets(broker, group, "--topic", tool_topic, "--to-earliest", "--dry-run")
    assert planned == {(tool_topic, 0): 0, (tool_topic, 1): 0}
    assert share_consume(broker, tool_topic, group, timeout_ms=5000) == []

    done = reset_offsets(broker, group, "--topic", tool_topic, "--to-earliest", "--execute")
    assert done == planned
    assert lags(broker, group) == {0: 6, 1: 4}
    assert described_offsets(broker, group, "START-OFFSET") == {0: 0, 1: 0}
    assert sorted(share_consume(broker, tool_topic, group, max_messages=10)) == sorted(values)

    one = reset_offsets(broker, group, "--topic", f"{tool_topic}:0", "--to-offset", "4", "--execute")
    assert one == {(tool_topic, 0): 4}
    assert sorted(share_consume(broker, tool_topic, group, max_messages=2)) == ["z-p0-4", "z-p0-5"]
    assert share_consume(broker, tool_topic, group, timeout_ms=4000) == []

    # A group never seen before gets its offsets too (and exists from then on).
    fresh = clients.unique_name("share-fresh")
    assert reset_offsets(broker, fresh, "--topic", f"{tool_topic}:1", "--to-offset", "1", "--execute") == {
        (tool_topic, 1): 1}
    assert fresh in share_groups(broker, "--list").stdout.split()
    assert sorted(share_consume(broker, tool_topic, fresh, max_messages=3)) == ["z-p1-1", "z-p1-2", "z-p1-3"]


def test_offsets_of_a_group_with_members_cannot_change(broker, tool_topic):
    clients.create_topic(broker, tool_topic, 1)
    group = clients.unique_name("share-busy")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest")
    clients.produce_counts(broker, tool_topic, {0: 3}, "b")
    member = kafka_tools.start("kafka-console-share-consumer", "--bootstrap-server", broker.bootstrap,
                               "--topic", tool_topic, "--group", group, "--timeout-ms", "60000",
                               stdin=None, text=True)
    try:
        def has_member():
            rows = parse_table(share_groups(broker, "--describe", "--group", group, "--state").stdout)
            return [r for r in rows if r["#MEMBERS"] == "1"]
        clients.wait_until(has_member, "a member in the share group", 60)
        reset = kafka_tools.run("kafka-share-groups", "--bootstrap-server", broker.bootstrap, "--reset-offsets",
                                "--group", group, "--topic", tool_topic, "--to-earliest", "--execute")
        assert reset.code == 1 and f"Share group '{group}' is not empty." in reset.stdout + reset.stderr, str(reset)
        delete = kafka_tools.run("kafka-share-groups", "--bootstrap-server", broker.bootstrap, "--delete-offsets",
                                 "--group", group, "--topic", tool_topic)
        assert status_rows(delete.stdout) == [(tool_topic, "Error: The group is not empty.")], str(delete)
    finally:
        kafka_tools.kill(member)


def test_delete_offsets_forgets_a_topic(broker, tool_topic):
    """--delete-offsets (DeleteShareGroupOffsets): the group's state for the topic is gone
    (described no more); read again, it starts afresh at share.auto.offset.reset."""
    clients.create_topic(broker, tool_topic, 2)
    group = clients.unique_name("share-forget")
    set_group_configs(broker, group, "share.auto.offset.reset=earliest")
    values = clients.produce_counts(broker, tool_topic, {0: 3, 1: 2}, "d")
    assert sorted(share_consume(broker, tool_topic, group, max_messages=5)) == sorted(values)
    assert lags(broker, group) == {0: 0, 1: 0}

    r = share_groups(broker, "--delete-offsets", "--group", group, "--topic", tool_topic)
    assert status_rows(r.stdout) == [(tool_topic, "Successful")], str(r)
    described = share_groups(broker, "--describe", "--group", group).stdout
    assert f"Share group '{group}' has no offset information." in described, described
    assert sorted(share_consume(broker, tool_topic, group, max_messages=5)) == sorted(values)

    def delete_offsets(group: str, topic: str) -> list[tuple[str, str]]:
        return status_rows(share_groups(broker, "--delete-offsets", "--group", group, "--topic", topic).stdout)
    missing = clients.unique_name("share-none")
    assert delete_offsets(missing, tool_topic) == [(tool_topic, f"Error: Group {missing} not found.")]
    other = clients.unique_name("other-topic")
    clients.create_topic(broker, other, 1)
    assert delete_offsets(group, other) == [(other, "Error: There is no offset information to delete.")]
    assert delete_offsets(group, "no-such-topic") == [
        ("no-such-topic", "Error: This server does not host this topic-partition.")]


@pytest.mark.restart
def test_delivery_state_survives_a_broker_restart(restartable, tool_topic):
    """Share groups' delivery state is durable (`__share_group_state`): after the broker
    stops and starts again, a group that accepted its records gets none of them again,
    and records a group released come back with their delivery counts kept, so that
    they reach the group's delivery limit (2) and are archived."""
    broker = restartable
    clients.create_topic(broker, tool_topic, 1)
    accepting, releasing = clients.unique_name("share-kept"), clients.unique_name("share-counted")
    set_group_configs(broker, accepting, "share.auto.offset.reset=earliest")
    set_group_configs(broker, releasing, "share.auto.offset.reset=earliest,share.delivery.count.limit=2")
    values = clients.produce_counts(broker, tool_topic, {0: 5}, "k")
    assert sorted(share_consume(broker, tool_topic, accepting, max_messages=5)) == sorted(values)
    assert sorted(share_consume(broker, tool_topic, releasing, "--release", max_messages=5)) == sorted(values)

    broker.stop()
    broker.restart()

    # The groups are still there (empty), with the offsets they had.
    listed = share_groups(broker, "--list").stdout.split()
    assert accepting in listed and releasing in listed, listed
    state = parse_table(share_groups(broker, "--describe", "--group", accepting, "--state").stdout)
    assert [(r["STATE"], r["#MEMBERS"]) for r in state] == [("Empty", "0")]
    assert lags(broker, accepting) == {0: 0}
    assert share_consume(broker, tool_topic, accepting, timeout_ms=5000) == []
    # The second delivery is the last: released again, the records are archived.
    assert sorted(share_consume(broker, tool_topic, releasing, "--release", max_messages=5)) == sorted(values)
    assert share_consume(broker, tool_topic, releasing, timeout_ms=5000) == []
    more = clients.produce_counts(broker, tool_topic, {0: 3}, "m")
    assert sorted(share_consume(broker, tool_topic, accepting, max_messages=3)) == sorted(more)
    assert lags(broker, accepting) == {0: 0}
