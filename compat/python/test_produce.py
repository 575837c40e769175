"""Produce with each client, read everything back with both consumers, compare.

What the user sees: each message comes back once, in the partition the producer was
told, at the offset the producer was told, with its key, value (null stays null, empty
stays empty), headers (order and duplicates kept) and timestamp; offsets in a partition
are 0, 1, 2, ... in send order.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
import confluent_kafka
import confluent_kafka.admin

import clients
from clients import Msg

PRODUCERS = list(clients.SENDERS)
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = [0, 1, "all"]


def producer_config(client: str, codec: str = "none", acks=1) -> dict:
    if client == "kafka-python":
        # kafka-python is idempotent by default, which requires acks=all.
        return {"acks": acks, "compression_type": None if codec == "none" else codec,
                "enable_idempotence": acks == "all", "linger_ms": 20}
    # librdkafka: idempotence is opt-in; turn it on with acks=all, as users usually do,
    # so that InitProducerId and sequence numbers are exercised too.
    return {"acks": {"all": -1}.get(acks, acks), "compression.type": codec,
            "enable.idempotence": acks == "all", "linger.ms": 20}


def produce_and_read_back(broker, topic, client, messages, partitions, **config):
    """Send, wait for the log to hold them, read with both consumers; check everything.
    Returns the records as read by kafka-python."""
    acked = clients.SENDERS[client](broker, topic, messages, **config)
    offsets_known = all(o is not None for _, o in acked)

    expected_counts = defaultdict(int)
    for p, _ in acked:
        expected_counts[p] += 1
    end = clients.wait_end_offsets(
        broker, topic, {p: expected_counts.get(p, 0) for p in range(partitions)})
    assert end == {p: expected_counts.get(p, 0) for p in range(partitions)}, \
        f"end offsets {end} after producing {dict(expected_counts)} per partition"

    result = None
    for reader_name, read in clients.READERS.items():
        records = read(broker, topic, partitions)
        assert_round_trip(messages, acked, records, offsets_known, reader_name)
        result = result or records
    return acked, result


def assert_round_trip(messages, acked, records, offsets_known, reader):
    assert len(records) == len(messages), f"{reader}: read {len(records)} of {len(messages)}"

    sent_by_partition = defaultdict(list)
    for m, (p, _) in zip(messages, acked):
        if m.partition is not None:
            assert p == m.partition, f"asked for partition {m.partition}, acknowledged in {p}"
        sent_by_partition[p].append(m)
    read_by_partition = defaultdict(list)
    for r in records:
        read_by_partition[r.partition].append(r)

    assert sorted(read_by_partition) == sorted(sent_by_partition), reader
    for p, sent in sent_by_partition.items():
        got = read_by_partition[p]
        assert [r.offset for r in got] == list(range(len(sent))), f"{reader}: offsets in {p}"
        assert [r.content() for r in got] == [m.content() for m in sent], f"{reader}: partition {p}"
        stamped = [(m.timestamp, r.timestamp) for m, r in zip(sent, got) if m.timestamp is not None]
        assert [r for _, r in stamped] == [m for m, _ in stamped], f"{reader}: timestamps in {p}"

    if offsets_known:
        at = {(r.partition, r.offset): r for r in records}
        for m, position in zip(messages, acked):
            assert position in at, f"{reader}: nothing at acknowledged {position}"
            assert at[position].content() == m.content(), f"{reader}: at {position}"


# ------------------------------------------------------------------ one feature each

@pytest.mark.parametrize("client", PRODUCERS)
def test_produce_with_keys(broker, topic, client):
    clients.create_topic(broker, topic, 3)
    messages = [Msg(f"key-{i % 7}".encode(), f"value-{i}".encode()) for i in range(42)]
    acked, records = produce_and_read_back(broker, topic, client, messages, 3,
                                           **producer_config(client))
    # One key, one partition.
    partitions_of = defaultdict(set)
    for r in records:
        partitions_of[r.key].add(r.partition)
    assert all(len(ps) == 1 for ps in partitions_of.values()), dict(partitions_of)
    assert len(partitions_of) == 7


@pytest.mark.parametrize("client", PRODUCERS)
def test_produce_without_keys(broker, topic, client):
    clients.create_topic(broker, topic, 3)
    messages = [Msg(None, f"unkeyed-{i}".encode()) for i in range(30)]
    _, records = produce_and_read_back(broker, topic, client, messages, 3, **producer_config(client))
    assert all(r.key is None for r in records)
    assert sorted(r.value for r in records) == sorted(m.value for m in messages)


@pytest.mark.parametrize("client", PRODUCERS)
def test_produce_to_explicit_partition(broker, topic, client):
    clients.create_topic(broker, topic, 4)
    messages = [Msg(f"k{i}".encode(), f"v{i}".encode(), partition=2) for i in range(10)]
    messages += [Msg(None, b"to-zero", partition=0), Msg(b"k", b"to-three", partition=3)]
    acked, records = produce_and_read_back(broker, topic, client, messages, 4,
                                           **producer_config(client))
    assert [(r.partition, r.offset, r.value) for r in records] == (
        [(0, 0, b"to-zero")] + [(2, i, f"v{i}".encode()) for i in range(10)] + [(3, 0, b"to-three")])


@pytest.mark.parametrize("client", PRODUCERS)
def test_produce_with_headers(broker, topic, client):
    clients.create_topic(broker, topic, 1)
    messages = [
        Msg(b"a", b"one header", headers=(("trace-id", b"abc123"),)),
        # Order and duplicate names are part of the record: both must survive.
        Msg(b"b", b"several", headers=(("x", b"1"), ("y", b"2"), ("x", b"3"))),
        Msg(b"c", b"binary and empty", headers=(("bin", bytes(range(256))), ("empty", b""))),
        Msg(b"d", b"none", headers=()),
        Msg(b"t", None, headers=(("on-a-tombstone", b"yes"),)),
        Msg(b"e", b"unicode name", headers=(("h\u00e9ader-\u2603", "caf\u00e9".encode()),)),
    ]
    _, records = produce_and_read_back(broker, topic, client, messages, 1, **producer_config(client))
    assert records[2].headers == (("bin", bytes(range(256))), ("empty", b""))


@pytest.mark.parametrize("client", PRODUCERS)
def test_produce_null_and_empty_values(broker, topic, client):
    clients.create_topic(broker, topic, 1)
    messages = [
        Msg(b"k1", b"v1"),
        Msg(b"k1", None),          # a tombstone: value null
        Msg(b"k2", b""),           # empty, not null
        Msg(b"", b"empty key"),    # empty key, not null
        Msg(None, b"null key"),
        Msg(b"k3", b"x" * 100_000),  # one large value among small ones
    ]
    if client == "confluent-kafka":
        messages.append(Msg(None, None))  # kafka-python refuses to send null key and value
    _, records = produce_and_read_back(broker, topic, client, messages, 1, **producer_config(client))
    assert [(r.key, r.value) for r in records[:5]] == [
        (b"k1", b"v1"), (b"k1", None), (b"k2", b""), (b"", b"empty key"), (None, b"null key")]


# ------------------------------------------------------------------ codecs x acks

def mixed_messages(n: int, partitions: int) -> list[Msg]:
    """Keyed and unkeyed, headers, (keyed) tombstones, compressible values, explicit timestamps
    (in the past, inside Kafka's default accepted window)."""
    base = int(time.time() * 1000) - 600_000
    out = []
    for i in range(n):
        key = None if i % 4 == 1 else f"key-{i}".encode()
        value = None if i % 4 == 2 else (f"value {i} " * (1 + i % 30)).encode()
        headers = (("seq", str(i).encode()), ("kind", b"mixed")) if i % 3 == 0 else ()
        out.append(Msg(key, value, headers, partition=i % partitions, timestamp=base + i * 7))
    return out


@pytest.mark.parametrize("acks", ACKS, ids=lambda a: f"acks={a}")
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", PRODUCERS)
def test_produce_codec_and_acks(broker, topic, client, codec, acks):
    clients.create_topic(broker, topic, 3)
    messages = mixed_messages(120, 3)
    acked, records = produce_and_read_back(broker, topic, client, messages, 3,
                                           **producer_config(client, codec, acks))
    if acks != 0:
        assert all(o is not None and o >= 0 for _, o in acked)

    # The batches on disk carry the codec: proves the client really compressed (and the
    # broker did not silently store something else), and that they cover every offset.
    for p in range(3):
        batches = clients.stored_batches(broker, topic, p)
        assert batches, f"no batches on disk for partition {p}"
        codecs = {b.codec for b in batches}
        if client == "confluent-kafka":
            # librdkafka sends a batch uncompressed when compressing would not make it
            # smaller (a lone short record: a loaded machine keeps batches small).
            assert codec in codecs and codecs <= {codec, "none"}, batches
        else:
            assert codecs == {codec}, batches
        assert batches[0].base_offset == 0 and batches[-1].last_offset == 39
        assert all(a.last_offset + 1 == b.base_offset for a, b in zip(batches, batches[1:]))


def test_compacted_topic_refuses_records_without_key(broker):
    """cleanup.policy=compact needs a key on every record: Kafka refuses the batch with
    INVALID_RECORD and the producer reports it; keyed records still go in."""
    name = clients.unique_name("compact")
    admin = clients.ck_admin(broker)
    futures = admin.create_topics([confluent_kafka.admin.NewTopic(
        name, 1, 1, config={"cleanup.policy": "compact"})])
    futures[name].result(timeout=30)
    clients.wait_for_serving(broker, name, 1)

    outcomes = []
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                                         "retries": 0})
    producer.produce(name, value=b"no key", on_delivery=lambda err, msg: outcomes.append(err))
    producer.flush(30)
    producer.produce(name, key=b"k", value=b"keyed", on_delivery=lambda err, msg: outcomes.append(err))
    producer.flush(30)
    assert len(outcomes) == 2
    assert outcomes[0] is not None and outcomes[0].code() == confluent_kafka.KafkaError.INVALID_RECORD, \
        outcomes[0]
    assert outcomes[1] is None, outcomes[1]
    assert clients.wait_end_offsets(broker, name, {0: 1}) == {0: 1}


@pytest.mark.parametrize("topic_codec,sent", [("gzip", "none"), ("zstd", "lz4"), ("uncompressed", "snappy"),
                                              ("lz4", "lz4")])
def test_topic_compression_type_recompresses_batches(broker, topic_codec, sent):
    """A topic's compression.type (other than "producer") is the codec its batches are
    stored in: batches sent in another are recompressed by the broker, with the same
    records at the same offsets; consumers of both clients read them as sent."""
    name = clients.unique_name(f"codec-{topic_codec}")
    admin = clients.ck_admin(broker)
    admin.create_topics([confluent_kafka.admin.NewTopic(
        name, 1, 1, config={"compression.type": topic_codec})])[name].result(timeout=30)
    clients.wait_for_serving(broker, name, 1)
    messages = mixed_messages(60, 1)
    acked, records = produce_and_read_back(broker, name, "confluent-kafka", messages, 1,
                                           **producer_config("confluent-kafka", sent, "all"))
    assert [o for _, o in acked] == list(range(60))
    assert [r.offset for r in clients.read_kp(broker, name)] == list(range(60))
    batches = clients.stored_batches(broker, name, 0)
    stored = "none" if topic_codec == "uncompressed" else topic_codec
    assert {b.codec for b in batches} == {stored}, batches
    assert batches[0].base_offset == 0 and batches[-1].last_offset == 59


def test_min_insync_replicas_counts_up_to_the_replication_factor(broker):
    """min.insync.replicas above a topic's replication factor: Kafka counts it only up to
    the replicas there are (its effective min ISR), so acks=all writes to a single replica
    succeed with min.insync.replicas=2 — from both clients."""
    name = clients.unique_name("min-isr")
    admin = clients.ck_admin(broker)
    admin.create_topics([confluent_kafka.admin.NewTopic(
        name, 1, 1, config={"min.insync.replicas": "2"})])[name].result(timeout=30)
    clients.wait_for_serving(broker, name, 1)
    acked = clients.send_ck(broker, name, [Msg(b"k", b"confluent")], acks="all")
    acked += clients.send_kp(broker, name, [Msg(b"k", b"kafka-python")], acks="all")
    assert [o for _, o in acked] == [0, 1], acked
    assert [r.value for r in clients.read_kp(broker, name)] == [b"confluent", b"kafka-python"]
