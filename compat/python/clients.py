"""Small helpers over the real clients, so tests read as what a user does.

Everything here uses the clients' public APIs unchanged. Reading back always goes up
to the end offsets the broker reports at the start of the read, and every wait is
bounded by a deadline.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import confluent_kafka
import kafka
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

READ_TIMEOUT = 30.0


class Rec(NamedTuple):
    """One record as a consumer sees it, the same shape for every client."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int | None = None

    def content(self):
        """What the producer chose (not where the broker put it)."""
        return (self.key, self.value, self.headers)


# ---------------------------------------------------------------- admin / setup

def unique_name(prefix: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in prefix)
    return f"{safe[:150]}-{uuid.uuid4().hex[:8]}"


def kp_admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="compat-admin",
                            request_timeout_ms=20000)


def ck_admin(broker) -> confluent_kafka.admin.AdminClient:
    return confluent_kafka.admin.AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name: str, partitions: int = 1) -> str:
    """Create a topic (kafka-python admin); wait until every partition has a leader and serves."""
    admin = kp_admin(broker)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
        wait_for_leaders(admin, name, partitions)
    finally:
        admin.close()
    wait_for_serving(broker, name, partitions)
    return name


def wait_for_serving(broker, name: str, partitions: int, timeout: float = READ_TIMEOUT) -> None:
    """Wait until every partition answers ListOffsets.

    Kafka's metadata names a leader a moment before that leader serves the partition:
    a Produce in between fails with NOT_LEADER_OR_FOLLOWER, which acks=0 never reports
    (the broker just closes the connection and the records are gone).
    """
    consumer = kp_consumer(broker)
    tps = [KpTopicPartition(name, p) for p in range(partitions)]
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                consumer.end_offsets(tps)
                return
            except kafka.errors.KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def wait_for_leaders(admin: KafkaAdminClient, name: str, partitions: int,
                     timeout: float = READ_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            (last,) = admin.describe_topics([name])
            if (last["error_code"] == 0 and len(last["partitions"]) == partitions
                    and all(p["leader_id"] >= 0 for p in last["partitions"])):
                return
        except kafka.errors.KafkaError as e:  # e.g. UnknownTopicOrPartition just after create
            last = e
        time.sleep(0.1)
    raise AssertionError(f"topic {name} never got {partitions} partitions with leaders: {last}")


# ---------------------------------------------------------------- producers

def kp_producer(broker, **config) -> kafka.KafkaProducer:
    config.setdefault("request_timeout_ms", 20000)
    return kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, client_id="compat-kp", **config)


def ck_producer(broker, **config) -> confluent_kafka.Producer:
    return confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap,
                                     "client.id": "compat-ck", **config})


def ck_produce_all(producer: confluent_kafka.Producer, topic: str, messages, timeout=READ_TIMEOUT):
    """Produce dicts of produce() kwargs in order; return one delivery report per message:
    (error, partition, offset), in the order the messages were given."""
    reports: list = [None] * len(messages)

    def on_delivery(index):
        def cb(err, msg):
            reports[index] = (err, msg.partition(), msg.offset())
        return cb

    for i, m in enumerate(messages):
        producer.produce(topic, on_delivery=on_delivery(i), **m)
        producer.poll(0)
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    return reports


class Msg(NamedTuple):
    """One message to produce, independent of the client. partition/timestamp None =
    let the client choose. headers: tuple of (str, bytes)."""
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    partition: int | None = None
    timestamp: int | None = None

    def content(self):
        return (self.key, self.value, tuple(self.headers))


def send_kp(broker, topic: str, messages: list[Msg], **config) -> list[tuple[int, int | None]]:
    """Produce in order with kafka-python; (partition, offset) of each as acknowledged.
    The offset is None with acks=0: the broker sends no answer to report one."""
    producer = kp_producer(broker, **config)
    try:
        futures = [producer.send(topic, key=m.key, value=m.value, headers=list(m.headers),
                                 partition=m.partition, timestamp_ms=m.timestamp)
                   for m in messages]
        producer.flush(timeout=READ_TIMEOUT)
        metadata = [f.get(timeout=READ_TIMEOUT) for f in futures]
    finally:
        producer.close(timeout=10)
    no_offsets = config.get("acks") == 0
    return [(md.partition, None if no_offsets else md.offset) for md in metadata]


def send_ck(broker, topic: str, messages: list[Msg], **config) -> list[tuple[int, int | None]]:
    """Produce in order with confluent-kafka; (partition, offset) of each from its
    delivery report. The offset is None with acks=0."""
    producer = ck_producer(broker, **config)
    kwargs = []
    for m in messages:
        k = {"key": m.key, "value": m.value}
        if m.headers:
            k["headers"] = list(m.headers)
        if m.partition is not None:
            k["partition"] = m.partition
        if m.timestamp is not None:
            k["timestamp"] = m.timestamp
        kwargs.append(k)
    try:
        reports = ck_produce_all(producer, topic, kwargs)
    finally:
        producer.close()
    errors = [err for err, _, _ in reports if err is not None]
    assert not errors, f"{len(errors)} deliveries failed, first: {errors[0]}"
    return [(p, o if o is not None and o >= 0 else None) for _, p, o in reports]


SENDERS = {"kafka-python": send_kp, "confluent-kafka": send_ck}


def wait_end_offsets(broker, topic: str, expected: dict[int, int], timeout=READ_TIMEOUT):
    """Wait until each partition's end offset is expected[p]: with acks=0 the producer
    cannot know when the broker has appended."""
    consumer = kp_consumer(broker)
    try:
        tps = {p: KpTopicPartition(topic, p) for p in expected}
        deadline = time.monotonic() + timeout
        while True:
            end = {p: o for p, o in ((tp.partition, o) for tp, o in
                                     consumer.end_offsets(list(tps.values())).items())}
            if end == expected or time.monotonic() > deadline:
                return end
            time.sleep(0.2)
    finally:
        consumer.close()


# ---------------------------------------------------------------- consumers

def kp_consumer(broker, **config) -> kafka.KafkaConsumer:
    # group_id=None: plain assign/seek, no group coordinator involved.
    config.setdefault("request_timeout_ms", 20000)
    return kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                               enable_auto_commit=False, client_id="compat-kp", **config)


def ck_consumer(broker, **config) -> confluent_kafka.Consumer:
    # confluent-kafka insists on a group.id even for assign(); nothing is committed or
    # subscribed, so no group is ever joined.
    return confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap,
                                     "group.id": unique_name("compat-unused-group"),
                                     "enable.auto.commit": False,
                                     "enable.auto.offset.store": False,
                                     "client.id": "compat-ck", **config})


def kp_record(r) -> Rec:
    return Rec(r.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp)


def ck_record(m) -> Rec:
    return Rec(m.partition(), m.offset(), m.key(), m.value(), tuple(m.headers() or ()),
               m.timestamp()[1])


def kp_poll_until(consumer: kafka.KafkaConsumer, done, timeout=READ_TIMEOUT) -> list[Rec]:
    """Poll, collecting records, until done(records) is true or the deadline passes."""
    out: list[Rec] = []
    deadline = time.monotonic() + timeout
    while not done(out) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            out.extend(kp_record(r) for r in records)
    return out


def ck_poll_until(consumer: confluent_kafka.Consumer, done, timeout=READ_TIMEOUT) -> list[Rec]:
    out: list[Rec] = []
    deadline = time.monotonic() + timeout
    while not done(out) and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                continue
            raise confluent_kafka.KafkaException(m.error())
        out.append(ck_record(m))
    return out


def read_kp(broker, topic: str, partitions: int = 1) -> list[Rec]:
    """Every record of the topic, read with kafka-python, sorted by (partition, offset)."""
    consumer = kp_consumer(broker)
    try:
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)

        def done(_):
            return all(consumer.position(tp) >= end[tp] for tp in tps)

        out = kp_poll_until(consumer, done)
        assert done(out), f"read {len(out)} records, never reached end offsets {end}"
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def read_ck(broker, topic: str, partitions: int = 1) -> list[Rec]:
    """Every record of the topic, read with confluent-kafka, sorted by (partition, offset)."""
    consumer = ck_consumer(broker)
    try:
        end = {p: consumer.get_watermark_offsets(CkTopicPartition(topic, p), timeout=10)[1]
               for p in range(partitions)}
        consumer.assign([CkTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

        def done(records):
            last = {}
            for r in records:
                last[r.partition] = r.offset
            return all(last.get(p, -1) + 1 >= end[p] for p in range(partitions) if end[p] > 0)

        out = ck_poll_until(consumer, done)
        assert done(out), f"read {len(out)} records, never reached high watermarks {end}"
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


READERS = {"kafka-python": read_kp, "confluent-kafka": read_ck}


# ---------------------------------------------------------------- kcat

def kcat(broker, *args: str, input: bytes | None = None, timeout: float = 60.0) -> str:
    """Run kcat against the broker; fail the test with its stderr if it fails."""
    exe = shutil.which("kcat") or shutil.which("kafkacat")
    assert exe, "kcat is not installed (compat/run installs it)"
    result = subprocess.run([exe, "-b", broker.bootstrap, *args], input=input,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, (
        f"kcat {' '.join(args)} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


# ---------------------------------------------------------------- the log on disk

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class StoredBatch(NamedTuple):
    base_offset: int
    last_offset: int
    codec: str


def stored_batches(broker, topic: str, partition: int) -> list[StoredBatch]:
    """The record batches in the partition's segment files, read from the v2 headers.

    Both Kafka and Sluice keep Kafka's on-disk layout (`<log.dirs>/<topic>-<p>/*.log`,
    batches as on the wire), and neither re-compresses with compression.type=producer,
    so this shows the codec the client really used: clients that cannot compress
    silently send uncompressed batches, and a read-back would not notice.
    """
    out = []
    for segment in sorted((Path(broker.log_dir) / f"{topic}-{partition}").glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            out.append(StoredBatch(base_offset, base_offset + last_delta,
                                   CODECS.get(attributes & 0x07, f"codec-{attributes & 0x07}")))
            pos += 12 + length
    return out
