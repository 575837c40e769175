"""The official Apache Kafka 4.4 command-line tools (and so the Java client) against the
broker, each case checking what the user of the tool sees: kafka-topics,
kafka-console-producer/-consumer, kafka-consumer-groups, kafka-configs, kafka-dump-log,
kafka-producer-perf-test and kafka-consumer-perf-test. See kafka_tools.py for how they run.

The expectations are Apache Kafka 4.4's own output (COMPAT_TARGET=kafka runs the same
cases against it).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from kafka.partitioner import murmur2

import clients
import kafka_tools
from kafka_tools import Result, parse_configs, parse_dump_log, parse_table, parse_topic_description

DEADLINE = 30.0  # seconds, for anything the broker does asynchronously


def tool(command: str, *args, input: str | None = None, timeout: float = 60.0) -> Result:
    return kafka_tools.run(command, *args, input=input, timeout=timeout)


def ok(command: str, *args, **kw) -> Result:
    """Run a tool that must succeed and print no error."""
    r = tool(command, *args, **kw)
    assert r.code == 0, f"{command} {' '.join(map(str, args))} failed: {r}"
    assert "ERROR" not in r.stderr and "Exception" not in r.stderr, f"{command} reported an error: {r}"
    return r


def java_partition(key: str, partitions: int) -> int:
    """Where the Java producer's default partitioner puts a keyed record (murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def wait_for(check, what: str, timeout: float = DEADLINE):
    """Retry `check` (which returns a truthy result when done, and may fail an assertion
    while the broker is not there yet) until a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result, last = check(), None
        except (AssertionError, ValueError) as e:
            result, last = None, e
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last}") from last
        time.sleep(0.2)


# ------------------------------------------------------------------ tool wrappers

def topics(broker, *args, **kw) -> Result:
    return tool("kafka-topics", "--bootstrap-server", broker.bootstrap, *args, **kw)


def create(broker, topic: str, partitions: int = 1, *config: str) -> None:
    cfg = [a for c in config for a in ("--config", c)]
    r = topics(broker, "--create", "--topic", topic, "--partitions", partitions,
               "--replication-factor", 1, *cfg)
    assert (r.code, r.stdout) == (0, f"Created topic {topic}.\n"), str(r)


def topic_list(broker) -> list[str]:
    r = topics(broker, "--list")
    assert r.code == 0, str(r)
    return r.stdout.splitlines()


def produce(broker, topic: str, lines: list[str], *extra: str, keyed: bool = True) -> Result:
    """kafka-console-producer fed the lines on stdin ("key:value" when keyed)."""
    parse = (["--reader-property", "parse.key=true", "--reader-property", "key.separator=:"]
             if keyed else [])
    return tool("kafka-console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                *parse, *extra, input="".join(f"{line}\n" for line in lines))


def consume(broker, topic: str, count: int, *extra: str, group: str | None = None,
            timeout_ms: int = 20000) -> list[tuple]:
    """kafka-console-consumer from the beginning: (partition, offset, key, value) of
    `count` records, in the order printed, with print.timestamp's field first when asked."""
    grp = ["--group", group] if group else []
    r = tool("kafka-console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
             "--from-beginning", *grp, "--max-messages", count, "--timeout-ms", timeout_ms,
             "--formatter-property", "print.key=true",
             "--formatter-property", "print.partition=true",
             "--formatter-property", "print.offset=true", *extra,
             timeout=timeout_ms / 1000 + 40)
    assert f"Processed a total of {count} messages" in r.stderr, str(r)
    out = []
    for line in r.stdout.splitlines():
        fields = line.split("\t")
        meta = {}
        while fields and re.match(r"^(Partition|Offset|CreateTime|LogAppendTime|NO_TIMESTAMP):", fields[0]):
            k, _, v = fields.pop(0).partition(":")
            meta[k] = v
        assert len(fields) == 2, f"unexpected line {line!r}"
        rec = (int(meta["Partition"]), int(meta["Offset"]), fields[0], fields[1])
        ts = {k: v for k, v in meta.items() if k not in ("Partition", "Offset")}
        out.append(rec + tuple(ts.items()) if ts else rec)
    assert len(out) == count, str(r)
    return out


def groups(broker, *args, **kw) -> Result:
    return tool("kafka-consumer-groups", "--bootstrap-server", broker.bootstrap, *args, **kw)


def group_offsets(broker, group: str) -> dict[int, tuple[int, int, int, str]]:
    """kafka-consumer-groups --describe: partition -> (CURRENT-OFFSET, LOG-END-OFFSET, LAG,
    CONSUMER-ID), all as printed."""
    r = groups(broker, "--describe", "--group", group)
    assert r.code == 0, str(r)
    rows = parse_table(r.stdout)
    assert rows and all(row["GROUP"] == group for row in rows), str(r)
    return {int(row["PARTITION"]): (int(row["CURRENT-OFFSET"]), int(row["LOG-END-OFFSET"]),
                                    int(row["LAG"]), row["CONSUMER-ID"]) for row in rows}


def configs(broker, entity: list, *args, **kw) -> Result:
    return tool("kafka-configs", "--bootstrap-server", broker.bootstrap, *entity, *args, **kw)


def topic_entity(topic: str) -> list[str]:
    return ["--entity-type", "topics", "--entity-name", topic]


BROKER_1 = ["--entity-type", "brokers", "--entity-name", "1"]
BROKER_DEFAULT = ["--entity-type", "brokers", "--entity-default"]


def dump_log(*args) -> Result:
    return ok("kafka-dump-log", *args)


# ------------------------------------------------------------------ kafka-topics

def test_topics_create_list_describe_alter_delete(broker, tool_topic):
    topic = tool_topic
    create(broker, topic, 3, "retention.ms=3600000", "cleanup.policy=compact")
    assert topic in topic_list(broker)

    r = topics(broker, "--describe", "--topic", topic)
    assert r.code == 0, str(r)
    header, partitions = parse_topic_description(r.stdout)
    assert (header["Topic"], header["PartitionCount"], header["ReplicationFactor"]) == (topic, "3", "1")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", header["TopicId"]), header
    # Kafka 4.4 (eligible leader replicas on) keeps min.insync.replicas as a cluster-wide
    # dynamic default, and describe lists it with the topic's own configs.
    assert header["Configs"] == {"cleanup.policy": "compact", "retention.ms": "3600000",
                                 "min.insync.replicas": "1"}
    assert [(p["Topic"], p["Partition"], p["Leader"], p["Replicas"], p["Isr"]) for p in partitions] == [
        (topic, str(i), "1", "1", "1") for i in range(3)]

    # Creating it again fails and says why.
    r = topics(broker, "--create", "--topic", topic, "--partitions", 1)
    assert r.code == 1 and f"Topic '{topic}' already exists." in r.stdout, str(r)

    r = topics(broker, "--alter", "--topic", topic, "--partitions", 5)
    assert (r.code, r.stdout) == (0, ""), str(r)

    def five():
        r = topics(broker, "--describe", "--topic", topic)
        h, ps = parse_topic_description(r.stdout)
        return h.get("PartitionCount") == "5" and (h, ps)
    header, partitions = wait_for(five, "5 partitions")
    assert [(p["Partition"], p["Leader"], p["Replicas"], p["Isr"]) for p in partitions] == [
        (str(i), "1", "1", "1") for i in range(5)]
    assert header["Configs"]["retention.ms"] == "3600000"

    # Partitions can only be added.
    r = topics(broker, "--alter", "--topic", topic, "--partitions", 2)
    assert r.code == 1, str(r)
    assert f"The topic {topic} currently has 5 partition(s); 2 would not be an increase." in r.stdout, str(r)

    r = topics(broker, "--delete", "--topic", topic)
    assert (r.code, r.stdout) == (0, ""), str(r)
    wait_for(lambda: topic not in topic_list(broker), f"{topic} to leave --list")
    r = topics(broker, "--describe", "--topic", topic)
    assert r.code == 1 and f"Topic '{topic}' does not exist as expected" in r.stdout, str(r)


# ------------------------------------------------------------------ console producer / consumer

def test_console_producer_and_consumer_round_trip_keys_and_values(broker, tool_topic):
    topic = tool_topic
    create(broker, topic, 3)
    pairs = [(f"key-{i}", f"value-{i}") for i in range(20)] + [
        ("key with spaces", "value with spaces"),
        ("k", "value:with:the:separator"),  # only the first ':' separates the key
        ("ключ", "значение ✓"),
        ("empty-value", ""),
    ]
    r = produce(broker, topic, [f"{k}:{v}" for k, v in pairs])
    assert r.code == 0 and "ERROR" not in r.stderr, str(r)

    group = clients.unique_name("console")
    records = consume(broker, topic, len(pairs), group=group)
    assert Counter((k, v) for _, _, k, v in records) == Counter(pairs)
    # Each key in the partition the Java partitioner picks, in the order produced there,
    # at offsets 0, 1, 2, ...
    by_partition = defaultdict(list)
    for p, o, k, v in sorted(records):
        by_partition[p].append((o, k, v))
    expected = defaultdict(list)
    for k, v in pairs:
        expected[java_partition(k, 3)].append((len(expected[java_partition(k, 3)]), k, v))
    assert dict(by_partition) == dict(expected)

    # The group committed what it consumed.
    assert group_offsets(broker, group) == {
        p: (len(rs), len(rs), 0, "-") for p, rs in expected.items()}


# ------------------------------------------------------------------ kafka-consumer-groups

def test_consumer_groups_list_describe_reset_delete(broker, tool_topic):
    topic = tool_topic
    create(broker, topic, 2)
    keys = [f"key{i}" for i in range(10)]
    produce(broker, topic, [f"{k}:value-{k}" for k in keys])
    end = Counter(java_partition(k, 2) for k in keys)  # log-end offset of each partition
    assert sum(end.values()) == 10 and all(end.values())

    group = clients.unique_name("groups")
    # One record per poll, so that what the consumer commits on exit is exactly what it printed.
    consumed = consume(broker, topic, 4, "--command-property", "max.poll.records=1", group=group)
    current = Counter(p for p, _, _, _ in consumed)
    for p in (0, 1):
        assert sorted(o for pp, o, _, _ in consumed if pp == p) == list(range(current[p]))

    r = groups(broker, "--list")
    assert r.code == 0 and group in r.stdout.splitlines(), str(r)
    assert group_offsets(broker, group) == {
        p: (current[p], end[p], end[p] - current[p], "-") for p in (0, 1)}
    assert sum(current.values()) == 4

    r = groups(broker, "--describe", "--group", group, "--state")
    (state,) = parse_table(r.stdout)
    assert (state["STATE"], state["#MEMBERS"]) == ("Empty", "0"), str(r)

    # Reset an inactive group to the earliest offsets.
    r = groups(broker, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
    assert r.code == 0, str(r)
    assert sorted((row["TOPIC"], row["PARTITION"], row["NEW-OFFSET"]) for row in parse_table(r.stdout)) == [
        (topic, "0", "0"), (topic, "1", "0")]
    assert group_offsets(broker, group) == {p: (0, end[p], end[p], "-") for p in (0, 1)}

    # An active member: the group can neither be reset nor deleted.
    member = kafka_tools.start("kafka-console-consumer", "--bootstrap-server", broker.bootstrap,
                               "--topic", topic, "--group", group, "--timeout-ms", 60000,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        def stable():
            r = groups(broker, "--describe", "--group", group, "--state")
            rows = parse_table(r.stdout)
            return rows and rows[0]["STATE"] == "Stable" and rows[0]
        state = wait_for(stable, f"{group} to become Stable with the console consumer in it")
        assert (state["ASSIGNMENT-STRATEGY"], state["#MEMBERS"]) == ("range", "1")

        r = groups(broker, "--describe", "--group", group, "--members")
        (row,) = parse_table(r.stdout)
        assert (row["CLIENT-ID"], row["HOST"], row["#PARTITIONS"]) == ("console-consumer", "/127.0.0.1", "2")
        assert row["CONSUMER-ID"].startswith("console-consumer-"), row

        r = groups(broker, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
        assert (f"Error: Assignments can only be reset if the group '{group}' is inactive, "
                f"but the current state is Stable.") in r.stdout, str(r)
        r = groups(broker, "--delete", "--group", group)
        assert (f"* Group '{group}' could not be deleted due to: "
                f"org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty.") in r.stdout, str(r)
    finally:
        # SIGTERM: the console consumer's shutdown hook commits and leaves the group.
        member.terminate()
        try:
            member.wait(timeout=30)
        finally:
            kafka_tools.kill(member)
    err = member.stderr.read().decode()
    member.stderr.close()
    assert "Processed a total of 10 messages" in err, err

    # It consumed everything from offset 0 and committed it on the way out.
    assert wait_for(lambda: group_offsets(broker, group) == {p: (end[p], end[p], 0, "-") for p in (0, 1)},
                    "the member's final commit and departure")

    r = groups(broker, "--delete", "--group", group)
    assert (r.code, r.stdout.strip()) == (0, f"Deletion of requested consumer groups ('{group}') was successful."), str(r)
    r = groups(broker, "--list")
    assert r.code == 0 and group not in r.stdout.splitlines(), str(r)
    r = groups(broker, "--describe", "--group", group)
    assert f"Error: Executing consumer group command failed due to org.apache.kafka.common.errors.GroupIdNotFoundException: Group {group} not found." in r.stdout, str(r)


# ------------------------------------------------------------------ kafka-configs

TOPIC_CONFIGS = {
    "retention.ms": "86400000",
    "cleanup.policy": "compact",
    "max.message.bytes": "2000",
    "segment.bytes": "1048576",
    "message.timestamp.type": "LogAppendTime",
}

# What kafka-configs --describe prints for each of them, as Kafka 4.4 (default broker
# config) prints it: value and synonyms.
TOPIC_CONFIG_LINES = {
    "cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, DEFAULT_CONFIG:log.cleanup.policy=delete"),
    "max.message.bytes": ("2000", "DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000, DEFAULT_CONFIG:message.max.bytes=1048588"),
    "message.timestamp.type": ("LogAppendTime", "DYNAMIC_TOPIC_CONFIG:message.timestamp.type=LogAppendTime, DEFAULT_CONFIG:log.message.timestamp.type=CreateTime"),
    # Kafka lists retention.ms's broker-side synonyms (log.retention.ms/minutes/hours)
    # depending on the broker's history: none on a fresh broker, ", DEFAULT_CONFIG:
    # log.retention.hours=168" once a dynamic broker config was set. Only the topic's own
    # synonym is compared (see without_broker_synonyms).
    "retention.ms": ("86400000", "DYNAMIC_TOPIC_CONFIG:retention.ms=86400000"),
    "segment.bytes": ("1048576", "DYNAMIC_TOPIC_CONFIG:segment.bytes=1048576, DEFAULT_CONFIG:log.segment.bytes=1073741824"),
}


# Every topic config Kafka 4.4 lists for kafka-configs --describe --all.
ALL_TOPIC_CONFIGS = sorted("""
    cleanup.policy compression.gzip.level compression.lz4.level compression.type
    compression.zstd.level delete.retention.ms errors.deadletterqueue.group.enable
    file.delete.delay.ms flush.messages flush.ms follower.replication.throttled.replicas
    index.interval.bytes leader.replication.throttled.replicas local.retention.bytes
    local.retention.ms max.compaction.lag.ms max.decompressed.message.bytes max.message.bytes
    message.timestamp.after.max.ms message.timestamp.before.max.ms message.timestamp.type
    min.cleanable.dirty.ratio min.compaction.lag.ms min.insync.replicas preallocate
    remote.copy.lag.bytes remote.copy.lag.ms remote.log.copy.disable remote.log.delete.on.disable
    remote.storage.enable retention.bytes retention.ms segment.bytes segment.index.bytes
    segment.jitter.ms segment.ms unclean.leader.election.enable
""".split())


def without_broker_synonyms(described: dict) -> dict:
    """retention.ms with its DYNAMIC_TOPIC_CONFIG synonym alone (see TOPIC_CONFIG_LINES)."""
    out = dict(described)
    if "retention.ms" in out:
        value, synonyms = out["retention.ms"]
        out["retention.ms"] = (value, synonyms.split(", ")[0])
    return out


def describe_topic_configs(broker, topic: str) -> dict:
    r = configs(broker, topic_entity(topic), "--describe")
    assert r.code == 0 and r.stdout.startswith(f"Dynamic configs for topic {topic} are:\n"), str(r)
    return without_broker_synonyms(parse_configs(r.stdout))


def alter_topic_configs(broker, topic: str, *args) -> None:
    r = configs(broker, topic_entity(topic), "--alter", *args)
    assert (r.code, r.stdout) == (0, f"Completed updating config for topic {topic}.\n"), str(r)


def check_max_message_bytes(broker, topic: str, stored_before: int) -> None:
    """max.message.bytes=2000: a 3000-byte record is refused, a 1000-byte one is stored."""
    r = produce(broker, topic, ["big:" + "x" * 3000])
    assert ("org.apache.kafka.common.errors.RecordTooLargeException: The request included a message "
            "larger than the max message size the server will accept.") in r.stderr, str(r)
    r = produce(broker, topic, ["small:" + "y" * 1000])
    assert r.code == 0 and "ERROR" not in r.stderr, str(r)
    assert clients.end_offsets(broker, topic, 1) == {0: stored_before + 1}


def test_configs_alter_and_describe_topic_configs(broker, tool_topic):
    topic = tool_topic
    create(broker, topic, 1)
    r = configs(broker, topic_entity(topic), "--describe")
    assert (r.code, r.stdout) == (0, f"Dynamic configs for topic {topic} are:\n"), str(r)

    alter_topic_configs(broker, topic, "--add-config", ",".join(f"{k}={v}" for k, v in TOPIC_CONFIGS.items()))
    assert describe_topic_configs(broker, topic) == TOPIC_CONFIG_LINES

    # They take effect: LogAppendTime stamps records with the broker's clock ...
    before = int(time.time() * 1000)
    r = produce(broker, topic, ["k:stamped"])
    assert r.code == 0, str(r)
    after = int(time.time() * 1000)
    ((p, o, k, v, (kind, stamp)),) = consume(broker, topic, 1, "--formatter-property", "print.timestamp=true")
    assert (p, o, k, v, kind) == (0, 0, "k", "stamped", "LogAppendTime")
    assert before <= int(stamp) <= after
    # ... max.message.bytes refuses bigger records ...
    check_max_message_bytes(broker, topic, stored_before=1)
    # ... and cleanup.policy=compact records without a key.
    r = produce(broker, topic, ["no key"], keyed=False)
    assert ("org.apache.kafka.common.InvalidRecordException: Compacted topic cannot accept message "
            f"without key in topic partition {topic}-0") in r.stderr, str(r)
    assert clients.end_offsets(broker, topic, 1) == {0: 2}
    # Several in one batch: each is named (RecordError per record), none is reported as
    # only "part of a batch which had one or more invalid records".
    r = produce(broker, topic, ["a", "b", "c"], "--producer-property", "linger.ms=1000", keyed=False)
    assert r.stderr.count("Compacted topic cannot accept message without key") == 3, str(r)
    assert "part of a batch" not in r.stderr, str(r)
    assert clients.end_offsets(broker, topic, 1) == {0: 2}

    # --delete-config: back to the default, which --describe --all shows.
    alter_topic_configs(broker, topic, "--delete-config", "cleanup.policy,max.message.bytes")
    assert describe_topic_configs(broker, topic) == {
        k: v for k, v in TOPIC_CONFIG_LINES.items() if k not in ("cleanup.policy", "max.message.bytes")}
    r = configs(broker, topic_entity(topic), "--describe", "--all")
    assert r.code == 0 and r.stdout.startswith(f"All configs for topic {topic} are:\n"), str(r)
    all_configs = without_broker_synonyms(parse_configs(r.stdout))
    assert sorted(all_configs) == ALL_TOPIC_CONFIGS, str(r)
    assert all_configs["cleanup.policy"] == ("delete", "DEFAULT_CONFIG:log.cleanup.policy=delete")
    assert all_configs["max.message.bytes"] == ("1048588", "DEFAULT_CONFIG:message.max.bytes=1048588")
    assert all_configs["retention.ms"] == TOPIC_CONFIG_LINES["retention.ms"]
    assert all_configs["compression.type"] == ("producer", "DEFAULT_CONFIG:compression.type=producer")
    assert all_configs["min.insync.replicas"] == (
        "1", "DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1, DEFAULT_CONFIG:min.insync.replicas=1")
    r = produce(broker, topic, ["z" * 3000], keyed=False)  # neither too big nor refused for no key
    assert r.code == 0 and "ERROR" not in r.stderr, str(r)
    assert clients.end_offsets(broker, topic, 1) == {0: 3}

    # An invalid value is refused with the broker's reason.
    r = configs(broker, topic_entity(topic), "--alter", "--add-config", "segment.bytes=1000")
    assert r.code == 1, str(r)
    assert ("InvalidConfigurationException: Invalid value 1000 for configuration segment.bytes: "
            "Value must be at least 1048576") in r.stdout + r.stderr, str(r)
    assert describe_topic_configs(broker, topic)["segment.bytes"] == TOPIC_CONFIG_LINES["segment.bytes"]


@pytest.mark.restart
def test_configs_survive_broker_restart(restartable, tool_topic):
    topic = tool_topic
    broker = restartable
    create(broker, topic, 1)
    alter_topic_configs(broker, topic, "--add-config", ",".join(f"{k}={v}" for k, v in TOPIC_CONFIGS.items()))
    alter_topic_configs(broker, topic, "--delete-config", "cleanup.policy")
    expected = {k: v for k, v in TOPIC_CONFIG_LINES.items() if k != "cleanup.policy"}
    assert describe_topic_configs(broker, topic) == expected

    broker.stop()
    broker.restart()
    clients.wait_for_serving(broker, topic, 1)
    assert describe_topic_configs(broker, topic) == expected
    check_max_message_bytes(broker, topic, stored_before=0)


def test_configs_broker_describe_and_alter(broker, tool_topic):
    topic = tool_topic
    r = configs(broker, BROKER_1, "--describe")
    assert (r.code, r.stdout) == (0, "Dynamic configs for broker 1 are:\n"), str(r)
    r = configs(broker, BROKER_DEFAULT, "--describe")
    assert r.code == 0 and r.stdout.startswith("Default configs for brokers in the cluster are:\n"), str(r)
    assert parse_configs(r.stdout) == {
        "min.insync.replicas": ("1", "DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1")}

    create(broker, topic, 1)
    r = configs(broker, BROKER_1, "--alter", "--add-config", "log.retention.ms=3600000")
    try:
        assert (r.code, r.stdout) == (0, "Completed updating config for broker 1.\n"), str(r)
        r = configs(broker, BROKER_1, "--describe")
        assert r.code == 0 and r.stdout.startswith("Dynamic configs for broker 1 are:\n"), str(r)
        assert parse_configs(r.stdout) == {"log.retention.ms": (
            "3600000", "DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000, DEFAULT_CONFIG:log.retention.hours=168")}
        # A topic without its own retention.ms now inherits the broker's.
        r = configs(broker, topic_entity(topic), "--describe", "--all")
        assert parse_configs(r.stdout)["retention.ms"] == (
            "3600000", "DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000, DEFAULT_CONFIG:log.retention.hours=168"), str(r)
    finally:
        r = configs(broker, BROKER_1, "--alter", "--delete-config", "log.retention.ms")
    assert (r.code, r.stdout) == (0, "Completed updating config for broker 1.\n"), str(r)
    r = configs(broker, BROKER_1, "--describe")
    assert (r.code, r.stdout) == (0, "Dynamic configs for broker 1 are:\n"), str(r)
    # The broker's default again (Kafka now names no synonym for it at all).
    r = configs(broker, topic_entity(topic), "--describe", "--all")
    value, synonyms = parse_configs(r.stdout)["retention.ms"]
    assert value == "604800000" and "DYNAMIC_BROKER_CONFIG" not in synonyms, str(r)


# ------------------------------------------------------------------ kafka-dump-log

def test_dump_log_reads_the_segment(broker, tool_topic):
    topic = tool_topic
    create(broker, topic, 1)
    plain = [("a", "first"), ("b", "second record"), ("c", "3")]
    gzipped = [("d", "fourth"), ("e", "fifth " * 20), ("f", "ünïcødé")]
    for pairs, extra in ((plain, []), (gzipped, ["--compression-codec", "gzip"])):
        r = produce(broker, topic, [f"{k}:{v}" for k, v in pairs], *extra)
        assert r.code == 0 and "ERROR" not in r.stderr, str(r)
    assert clients.end_offsets(broker, topic, 1) == {0: 6}

    segment = Path(broker.log_dir) / f"{topic}-0" / "00000000000000000000.log"
    assert segment.is_file(), f"no segment at {segment}"
    r = dump_log("--files", segment, "--print-data-log")
    assert r.stdout.startswith(f"Dumping {segment}\nLog starting offset: 0\n"), str(r)
    batches = parse_dump_log(r.stdout)
    # One batch per console-producer run (everything is read before linger.ms expires).
    assert [(b["baseOffset"], b["lastOffset"], b["count"], b["compresscodec"], b["isvalid"], b["magic"])
            for b in batches] == [("0", "2", "3", "none", "true", "2"), ("3", "5", "3", "gzip", "true", "2")]
    assert [rec for b in batches for rec in b["records"]] == [
        (i, k, v) for i, (k, v) in enumerate(plain + gzipped)]
    # Positions and sizes chain up to the end of the file.
    assert [int(b["position"]) for b in batches] == [0, int(batches[0]["size"])]
    assert sum(int(b["size"]) for b in batches) == segment.stat().st_size
    # The idempotent console producer: its own producer id, sequences from 0.
    assert [(b["baseSequence"], b["lastSequence"], b["producerEpoch"], b["isTransactional"]) for b in batches] == [
        ("0", "2", "0", "false"), ("0", "2", "0", "false")]
    assert int(batches[0]["producerId"]) >= 0 and batches[0]["producerId"] != batches[1]["producerId"]

    # Without --print-data-log: the batches alone.
    r = dump_log("--files", segment)
    assert "| offset:" not in r.stdout and [b["baseOffset"] for b in parse_dump_log(r.stdout)] == ["0", "3"]


# ------------------------------------------------------------------ perf tools

PERF_RESULT = re.compile(
    r"^(\d+) records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
    r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99.9th\.$", re.M)


def test_producer_and_consumer_perf_tools(broker, tool_topic):
    topic = tool_topic
    create(broker, topic, 2)
    # Default producer config: idempotent, acks=all.
    r = ok("kafka-producer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
           "--num-records", 20000, "--record-size", 100, "--throughput", -1, timeout=120)
    assert [int(n) for n in PERF_RESULT.findall(r.stdout)] == [20000], str(r)
    end = clients.end_offsets(broker, topic, 2)
    assert sum(end.values()) == 20000 and all(end.values()), end

    group = clients.unique_name("perf")
    r = ok("kafka-consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
           "--num-records", 20000, "--group", group, "--timeout", 30000, timeout=120)
    header, row = r.stdout.strip().splitlines()
    stats = dict(zip([h.strip() for h in header.split(",")], [c.strip() for c in row.split(",")]))
    assert (stats["data.consumed.in.nMsg"], stats["data.consumed.in.MB"]) == ("20000", "1.9073"), str(r)
    # ... and it committed them all.
    assert group_offsets(broker, group) == {p: (end[p], end[p], 0, "-") for p in (0, 1)}

    # The segment's offset and time indexes, as kafka-dump-log reads and checks them
    # against the log (it reports entries that point at the wrong batch).
    partition_dir = Path(broker.log_dir) / f"{topic}-0"
    log = partition_dir / "00000000000000000000.log"
    batches = parse_dump_log(dump_log("--files", log).stdout)
    assert int(batches[0]["baseOffset"]) == 0 and int(batches[-1]["lastOffset"]) == end[0] - 1
    assert sum(int(b["count"]) for b in batches) == end[0]
    last_offset_at = {int(b["position"]): int(b["lastOffset"]) for b in batches}
    for index in ("00000000000000000000.index", "00000000000000000000.timeindex"):
        r = dump_log("--files", partition_dir / index)
        assert "Mismatches" not in r.stdout and "not found" not in r.stdout, str(r)
    r = dump_log("--files", partition_dir / "00000000000000000000.index")
    entries = [(int(o), int(p)) for o, p in re.findall(r"^offset: (\d+) position: (\d+)$", r.stdout, re.M)]
    # ~2 MB of 100-byte records with one entry per index.interval.bytes (4096) at most.
    assert entries, f"empty offset index: {r}"
    for offset, position in entries:
        assert last_offset_at.get(position) == offset, f"index entry {offset}@{position} names no batch ending there"


# ------------------------------------------------------------------ the Java producer across a restart

def records_landed(broker, topic: str, partitions: int) -> int:
    try:
        return sum(clients.end_offsets(broker, topic, partitions).values())
    except Exception:  # the broker may be coming back
        return 0


def assert_exactly_once_in_order(records, n: int) -> None:
    """Values 0..n-1 each stored once; in each partition in the order they were sent."""
    values = [int(r.value) for r in records]
    duplicates = [v for v, c in Counter(values).items() if c > 1]
    assert not duplicates, f"{len(duplicates)} values stored twice, e.g. {sorted(duplicates)[:5]}"
    missing = sorted(set(range(n)) - set(values))
    assert not missing, f"{len(missing)} values lost, e.g. {missing[:5]}"
    assert len(values) == n
    by_partition = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r)
    for p, rs in by_partition.items():
        assert [r.offset for r in rs] == list(range(len(rs))), f"partition {p} has offset gaps"
        numbers = [int(r.value) for r in rs]
        assert numbers == sorted(numbers), f"partition {p} out of order"


@pytest.mark.restart
def test_java_producer_default_config_across_broker_restart(restartable, tool_topic, tmp_path):
    """kafka-producer-perf-test with the producer's defaults (idempotent, acks=all) and
    payloads 0, 1, 2, ... while the broker is stopped and started again mid-stream:
    every record is stored exactly once, in order."""
    topic = tool_topic
    broker = restartable
    n, partitions = 5000, 2
    create(broker, topic, partitions)
    out, err = tmp_path / "perf.stdout", tmp_path / "perf.stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        perf = kafka_tools.start(
            "kafka-producer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
            "--num-records", n, "--payload-monotonic", "--throughput", 500,
            "--command-property", "linger.ms=5",
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    try:
        wait_for(lambda: records_landed(broker, topic, partitions) >= 500, "500 records stored")
        assert perf.poll() is None, "the producer finished before the restart"
        broker.stop()
        # Still running once the broker is gone: records were left to send across the
        # restart (Kafka's controlled shutdown takes seconds and serves meanwhile).
        assert perf.poll() is None, "the producer was done before the broker stopped"
        broker.restart()
        perf.wait(timeout=120)
    finally:
        kafka_tools.kill(perf)
    result = Result(perf.returncode, out.read_text(), err.read_text())
    # The producer may warn while the broker is away (retries, reconnects); a failed send
    # would print an ERROR or a stack trace.
    not_warnings = [line for line in result.stderr.splitlines() if not re.match(r"^\[[^]]+\] WARN ", line)]
    assert result.code == 0 and not not_warnings, str(result)
    assert [int(c) for c in PERF_RESULT.findall(result.stdout)] == [n], str(result)

    assert_exactly_once_in_order(clients.read_ck(broker, topic, partitions), n)
