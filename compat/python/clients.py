"""Small helpers over the real clients, so tests read as what a user does.

Everything here uses the clients' public APIs unchanged. Reading back always goes up
to the end offsets the broker reports at the start of the read, and every wait is
bounded by a deadline.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
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


def stored_headers(broker, topic: str, partition: int):
    """(base offset, attributes, last offset delta, records count) of each record batch in
    the partition's segment files, read from the v2 headers."""
    for segment in sorted((Path(broker.log_dir) / f"{topic}-{partition}").glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            (count,) = struct.unpack_from(">i", data, pos + 57)
            yield base_offset, attributes, last_delta, count
            pos += 12 + length


def stored_batches(broker, topic: str, partition: int) -> list[StoredBatch]:
    """The record batches in the partition's segment files, read from the v2 headers.

    Both Kafka and Sluice keep Kafka's on-disk layout (`<log.dirs>/<topic>-<p>/*.log`,
    batches as on the wire), and neither re-compresses with compression.type=producer,
    so this shows the codec the client really used: clients that cannot compress
    silently send uncompressed batches, and a read-back would not notice.
    """
    return [StoredBatch(base, base + last_delta, CODECS.get(attributes & 0x07, f"codec-{attributes & 0x07}"))
            for base, attributes, last_delta, _ in stored_headers(broker, topic, partition)]


# ---------------------------------------------------------------- consumer groups

WORKER = Path(__file__).resolve().parent / "group_worker.py"


class GroupMember:
    """One consumer-group member in its own OS process (group_worker.py), as users run
    consumers: a real client, subscribed, polling, committing after each batch.

    Its JSON-line events are read by a thread into `events`; the properties below
    summarise them. Every wait is bounded. stop() closes it cleanly (LeaveGroup),
    kill() is kill -9; the owning fixture kills whatever is still running.
    """

    def __init__(self, broker, client: str, group: str, topics: list[str], client_id: str,
                 log_dir: Path, **config):
        self.client, self.group, self.client_id = client, group, client_id
        self.config = {"client": client, "bootstrap": broker.bootstrap, "group": group,
                       "topics": list(topics), "client_id": client_id, **config}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.stderr_path = Path(log_dir) / f"{client_id}.stderr"
        from brokers import die_with_parent  # the worker must not outlive the test run

        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(self.config)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, cwd=WORKER.parent,
                                         preexec_fn=die_with_parent)

        def read():
            for line in self.proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"ev": "garbage", "line": line.decode(errors="replace")}
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
            with self._cond:
                self.events.append({"ev": "exited"})
                self._cond.notify_all()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def __repr__(self):
        return f"<{self.client} member {self.client_id}>"

    # ---- what it reported

    def of(self, kind: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e["ev"] == kind]

    @property
    def assignment(self) -> set[tuple[str, int]]:
        """The whole assignment after its last rebalance callback."""
        moves = self.of_any("assign", "revoke", "lost")
        return {tuple(x) for x in moves[-1]["assignment"]} if moves else set()

    def of_any(self, *kinds: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e["ev"] in kinds]

    def partitions(self, topic: str) -> set[int]:
        return {p for t, p in self.assignment if t == topic}

    @property
    def records(self) -> list[tuple[str, int, int, str]]:
        return [tuple(r) for e in self.of("records") for r in e["records"]]

    @property
    def committed(self) -> dict[tuple[str, int], int]:
        """The last successfully committed offset of each partition."""
        out = {}
        for e in self.of("commit"):
            if e["ok"]:
                for t, p, o, _ in e["offsets"]:
                    out[(t, p)] = o
        return out

    @property
    def failed_commits(self) -> list[dict]:
        return [e for e in self.of("commit") if not e["ok"]]

    def check_healthy(self) -> None:
        crashed = self.of_any("crashed", "garbage")
        assert not crashed, f"{self} crashed: {crashed}; {self.summary()}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    # ---- waiting

    def wait_for(self, predicate, what: str, timeout: float = READ_TIMEOUT):
        """Wait until predicate(self) is true; fail with what it saw if it never is."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.events and self.events[-1]["ev"] == "exited":
                    # Its output is over: nothing more will come, once it is reaped.
                    self._cond.release()
                    try:
                        self.proc.wait(timeout=10)
                    finally:
                        self._cond.acquire()
                    value = predicate(self)
                    if value:
                        return value
                    break
                self._cond.wait(min(left, 0.5))
        raise AssertionError(f"{self}: gave up waiting for {what} after {timeout}s or its exit; "
                             f"{self.summary()}")

    def summary(self, last: int = 8) -> str:
        """Its last events, record batches shortened, for failure messages."""
        with self._cond:
            events = self.events[-last:]
        brief = []
        for e in events:
            if e["ev"] == "records":
                rs = e["records"]
                brief.append({"ev": "records", "count": len(rs), "first": rs[0], "last": rs[-1]})
            else:
                brief.append(e)
        return f"last events {brief}; stderr in {self.stderr_path}"

    def wait_started(self, timeout: float = READ_TIMEOUT) -> "GroupMember":
        self.wait_for(lambda m: m.of("started"), "its start", timeout)
        return self

    def wait_assigned(self, timeout: float = READ_TIMEOUT) -> set[tuple[str, int]]:
        return self.wait_for(lambda m: m.assignment, "a non-empty assignment", timeout)

    # ---- stopping

    def stop(self, timeout: float = READ_TIMEOUT) -> None:
        """Close cleanly (consumer.close(): LeaveGroup unless static) and wait for the exit."""
        if self.alive:
            try:
                self.proc.stdin.write(b"close\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self} did not close within {timeout}s; {self.summary()}")
        self._reader.join(timeout=5)
        assert self.of("closed"), f"{self} exited without closing: {self.summary()}"

    def kill(self) -> None:
        """kill -9: no LeaveGroup, no commit; the broker notices at the session timeout."""
        if self.alive:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


class GroupMembers:
    """Starts GroupMembers for one test and kills whatever is left at its end."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.started: list[GroupMember] = []

    def start(self, broker, client: str, group: str, topics: list[str], client_id: str,
              **config) -> GroupMember:
        member = GroupMember(broker, client, group, topics, client_id, self.log_dir, **config)
        self.started.append(member)
        return member

    def kill_all(self) -> None:
        for member in self.started:
            try:
                member.kill()
            except Exception:  # noqa: BLE001  (best effort: the rest must still go)
                pass


def kstring(s: str) -> bytes:
    """A protocol string (int16 length, then the bytes), for hand-made requests."""
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def recv_exactly(s: socket.socket, n: int) -> bytes:
    """n bytes from a socket, or ConnectionError when the broker closes it first."""
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        out += chunk
    return bytes(out)


def wait_until(predicate, what: str, timeout: float = READ_TIMEOUT, interval: float = 0.2):
    """predicate() until it is truthy (returned), or fail after timeout naming `what`."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        value = predicate()
    return value


def produce_counts(broker, topic: str, counts: dict[int, int], tag: str) -> list[str]:
    """counts[p] records to partition p (kafka-python, acks=all), values
    '<tag>-p<p>-<i>', all unique. Returns the values in the order produced."""
    messages = [Msg(None, f"{tag}-p{p}-{i}".encode(), partition=p)
                for p, n in sorted(counts.items()) for i in range(n)]
    placed = send_kp(broker, topic, messages, acks="all")
    assert [p for p, _ in placed] == [m.partition for m in messages]
    return [m.value.decode() for m in messages]


def end_offsets(broker, topic: str, partitions: int) -> dict[int, int]:
    consumer = kp_consumer(broker)
    try:
        ends = consumer.end_offsets([KpTopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: o for tp, o in ends.items()}
    finally:
        consumer.close()


def group_offsets(broker, group: str) -> dict[tuple[str, int], tuple[int, str]]:
    """The group's committed offsets and metadata (kafka-python admin, OffsetFetch)."""
    admin = kp_admin(broker)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in offsets.items()}


def describe_group(broker, group: str) -> dict:
    """kafka-python admin describe_groups for one group: state, protocol, members with
    client ids and decoded assignments."""
    admin = kp_admin(broker)
    try:
        return admin.describe_groups([group])[group]
    finally:
        admin.close()


def described_assignments(description: dict) -> dict[str, set[tuple[str, int]]]:
    """client id -> the partitions DescribeGroups says that member owns."""
    out = {}
    for m in description["members"]:
        assignment = m["member_assignment"] or {"assigned_partitions": []}
        out[m["client_id"]] = {(a["topic"], p) for a in assignment["assigned_partitions"]
                               for p in a["partitions"]}
    return out


def wait_split(broker, group: str, members: list[GroupMember], topic: str, partitions: int,
               timeout: float = READ_TIMEOUT) -> dict[str, set[int]]:
    """Wait until the members split the topic's partitions among them (each at least one,
    no overlap, none missing) and the coordinator's DescribeGroups agrees: Stable, exactly
    these members (by client id), each with the partitions it reports.
    Returns client id -> partitions."""
    last = {}

    def split():
        for m in members:
            m.check_healthy()
            assert m.alive, f"{m} exited: {m.summary()}"
        parts = {m.client_id: m.partitions(topic) for m in members}
        last["members"] = parts
        every = [p for ps in parts.values() for p in ps]
        if not all(parts.values()) or sorted(every) != list(range(partitions)):
            return None
        d = describe_group(broker, group)
        last["described"] = (d["group_state"], described_assignments(d))
        if d["group_state"] != "Stable":
            return None
        if described_assignments(d) != {cid: {(topic, p) for p in ps} for cid, ps in parts.items()}:
            return None
        return parts

    try:
        return wait_until(split, f"{len(members)} members to split {partitions} partitions of {topic}",
                          timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {last}") from None


def consumed_values(members: list[GroupMember], topic: str | None = None) -> list[str]:
    return [v for m in members for (t, _, _, v) in m.records if topic is None or t == topic]


def wait_consumed(members: list[GroupMember], values, topic: str | None = None,
                  timeout: float = READ_TIMEOUT) -> None:
    """Wait until every one of `values` was consumed by some member."""
    want = set(values)
    try:
        wait_until(lambda: want <= set(consumed_values(members, topic)),
                   f"{len(want)} records consumed", timeout)
    except AssertionError as e:
        missing = want - set(consumed_values(members, topic))
        raise AssertionError(f"{e}: {len(missing)} never consumed, e.g. {sorted(missing)[:5]}") from None


def list_groups_kp(broker) -> list[dict]:
    """kafka-python admin list_groups: dicts with group_id, protocol_type, group_state."""
    admin = kp_admin(broker)
    try:
        return admin.list_groups()
    finally:
        admin.close()


# ---------------------------------------------------------------- raw group protocol

class RawGroupClient:
    """One connection speaking the group protocol by hand, for what no client sends on
    purpose (a stale generation, a foreign protocol type). Requests and responses are
    kafka-python's own generated classes (kafka.protocol.*); versions are the highest
    both the broker (ApiVersions) and kafka-python know, capped where a newer version
    changes meaning (OffsetCommit v9+ is KIP-848's, v10 names topics by id)."""

    CAPS = {"OffsetCommitRequest": 8, "OffsetFetchRequest": 8}

    def __init__(self, broker, client_id: str = "compat-raw", timeout: float = READ_TIMEOUT):
        from kafka.protocol.metadata.api_versions import ApiVersionsRequest

        self.client_id = client_id
        self.sock = socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)
        self._ids = itertools.count(1)
        self.max_versions: dict[int, int] = {}
        versions = self.call(ApiVersionsRequest(), version=0)
        assert versions.error_code == 0, versions
        self.max_versions = {k.api_key: k.max_version for k in versions.api_keys}

    def close(self) -> None:
        self.sock.close()

    def version_of(self, request) -> int:
        name = type(request).__name__
        return min(self.max_versions[request.API_KEY], self.CAPS.get(name, request.max_version))

    def call(self, request, version: int | None = None):
        request.API_VERSION = self.version_of(request) if version is None else version
        request.with_header(correlation_id=next(self._ids), client_id=self.client_id)
        self.sock.sendall(request.encode(header=True, framed=True))
        (size,) = struct.unpack(">i", self._recv(4))
        response = request.header.get_response_class().decode(self._recv(size), header=True)
        assert response.header.correlation_id == request.header.correlation_id
        return response

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buf += chunk
        return buf

    # ---- the group APIs, with the arguments a test varies

    def find_coordinator(self, group: str, timeout: float = READ_TIMEOUT, key_type: int = 0):
        """FindCoordinator until it names a coordinator (the offsets topic may be new).
        key_type 1: a transactional id's coordinator."""
        from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

        deadline = time.monotonic() + timeout
        while True:
            r = self.call(FindCoordinatorRequest(key=group, key_type=key_type,
                                                 coordinator_keys=[group]))
            found = r.coordinators[0] if getattr(r, "coordinators", None) else r
            if found.error_code == 0:
                return found
            assert time.monotonic() < deadline, f"no coordinator for {group}: {r}"
            time.sleep(0.2)

    @staticmethod
    def subscription(topics) -> bytes:
        from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription
        return ConsumerProtocolSubscription(topics=list(topics), user_data=b"").encode(version=0)

    @staticmethod
    def assignment(topic: str, partitions) -> bytes:
        from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment
        return ConsumerProtocolAssignment(
            assigned_partitions=[ConsumerProtocolAssignment.TopicPartition(
                topic=topic, partitions=list(partitions))],
            user_data=b"").encode(version=0)

    def join(self, group: str, topics=(), member_id: str = "", protocol_type: str = "consumer",
             protocols=("range",), session_timeout_ms: int = 10000,
             rebalance_timeout_ms: int = 30000):
        """JoinGroup; repeats it once with the assigned id on MEMBER_ID_REQUIRED (v4+)."""
        from kafka.protocol.consumer.group import JoinGroupRequest

        for _ in range(2):
            r = self.call(JoinGroupRequest(
                group_id=group, session_timeout_ms=session_timeout_ms,
                rebalance_timeout_ms=rebalance_timeout_ms, member_id=member_id,
                group_instance_id=None, protocol_type=protocol_type, reason=None,
                protocols=[JoinGroupRequest.JoinGroupRequestProtocol(
                    name=name, metadata=self.subscription(topics)) for name in protocols]))
            if r.error_code != 79:  # MEMBER_ID_REQUIRED
                return r
            member_id = r.member_id
        return r

    def sync(self, group: str, generation: int, member_id: str, assignments: dict[str, bytes],
             protocol_name: str = "range"):
        from kafka.protocol.consumer.group import SyncGroupRequest
        return self.call(SyncGroupRequest(
            group_id=group, generation_id=generation, member_id=member_id,
            group_instance_id=None, protocol_type="consumer", protocol_name=protocol_name,
            assignments=[SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a)
                         for m, a in assignments.items()]))

    def heartbeat(self, group: str, generation: int, member_id: str) -> int:
        from kafka.protocol.consumer.group import HeartbeatRequest
        return self.call(HeartbeatRequest(group_id=group, generation_id=generation,
                                          member_id=member_id, group_instance_id=None)).error_code

    def commit(self, group: str, generation: int, member_id: str,
               offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """OffsetCommit; the error code of each partition."""
        from kafka.protocol.consumer.group import OffsetCommitRequest
        Topic = OffsetCommitRequest.OffsetCommitRequestTopic
        by_topic: dict[str, list] = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append(Topic.OffsetCommitRequestPartition(
                partition_index=p, committed_offset=o, committed_leader_epoch=-1,
                committed_metadata=""))
        r = self.call(OffsetCommitRequest(
            group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
            group_instance_id=None, retention_time_ms=-1,
            topics=[Topic(name=t, partitions=ps) for t, ps in by_topic.items()]))
        return {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}

    def leave(self, group: str, member_id: str) -> int:
        """LeaveGroup; the member's error code (v3+) or the top-level one."""
        from kafka.protocol.consumer.group import LeaveGroupRequest
        r = self.call(LeaveGroupRequest(group_id=group, member_id=member_id, members=[
            LeaveGroupRequest.MemberIdentity(member_id=member_id, group_instance_id=None,
                                             reason=None)]))
        if r.error_code == 0 and getattr(r, "members", None):
            return r.members[0].error_code
        return r.error_code
