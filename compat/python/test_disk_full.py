"""A log directory on a small filesystem that fills up (a size-limited tmpfs the test
mounts, so it runs as root).

What a user sees on Sluice: Produce to a partition in the full directory gets
KAFKA_STORAGE_ERROR (as from Kafka); records already stored there still read back, whole;
partitions in the other log directory go on taking writes; once space returns, writes to
the full directory succeed again without a restart; a topic created while the disk is
full gets its log when space returns; after a restart every acknowledged record is there.

Apache Kafka 4.4 answers KAFKA_STORAGE_ERROR too, but takes the whole directory offline
at the first failed write (LogDirFailureChannel): its partitions stop serving reads and
never take writes again until the broker restarts, and a broker whose every directory
failed (or whose metadata directory failed) shuts itself down. The first case runs on both (COMPAT_TARGET=kafka) and checks
only what both do there; the rest of it, and the second case, are Sluice's.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
import clients

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

RECORD = 1024
FS_BYTES = 6 << 20
# Filler on the small filesystem, deleted to give space back.
BALLAST_BYTES = 2 << 20


class SmallFilesystem:
    """A tmpfs of a fixed size, unmounted at the end."""

    def __init__(self, path: Path, size: int):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True)
        self.ballast = path / "ballast"
        self.ballast.write_bytes(b"\0" * BALLAST_BYTES)

    def free_space(self) -> None:
        self.ballast.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_fs(tmp_path):
    fs = SmallFilesystem(tmp_path / "small", FS_BYTES)
    try:
        yield fs
    finally:
        fs.unmount()


def start(workdir: Path, **config: str):
    return brokers.make_broker(workdir, **config)


def produce(broker, topic: str, partition: int, count: int, tag: str):
    """Sends `count` records one after another (acks=all, no retries: the broker's
    answer reaches the callback). Returns (acknowledged values, error codes seen); stops
    at the first error."""
    producer = clients.ck_producer(broker, acks="all", retries=0, **{
        "linger.ms": 0, "message.timeout.ms": 10000, "max.in.flight": 1})
    acked: list[bytes] = []
    errors: list[int] = []

    def on_delivery(err, msg):
        if err is None:
            acked.append(msg.value())
        else:
            errors.append(err.code())

    for i in range(count):
        value = f"{tag}-{i:06d}-".encode().ljust(RECORD, b"x")
        producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
        producer.flush(15)
        if errors:
            break
    return acked, errors


def read_partition(broker, topic: str, partition: int) -> list[bytes]:
    consumer = clients.ck_consumer(broker)
    try:
        tp = TopicPartition(topic, partition)
        _, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([TopicPartition(topic, partition, confluent_kafka.OFFSET_BEGINNING)])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < high and time.monotonic() < deadline:
            for m in consumer.consume(500, 1.0):
                assert m.error() is None, m.error()
                values.append(m.value())
        return values
    finally:
        consumer.close()


def partition_in(directory: Path, topic: str, partitions: int) -> int:
    """Which of the topic's partitions has its log in `directory`."""
    found = [p for p in range(partitions) if (directory / f"{topic}-{p}").is_dir()]
    assert len(found) == 1, f"expected one of {topic}'s partitions in {directory}, found {found}"
    return found[0]


def test_a_full_log_dir_refuses_writes_and_keeps_the_rest_working(tmp_path, small_fs, topic):
    big = tmp_path / "big"
    big.mkdir()
    broker = start(tmp_path / "broker", **{
        # The cluster metadata lives in the first directory (on both brokers): a full
        # metadata directory makes Kafka shut down, which is not this case.
        "log.dirs": f"{big},{small_fs.path}",
        # Checkpoints come round often: writing them into the full directory must not
        # take it out of service.
        "log.flush.offset.checkpoint.interval.ms": "500"})
    try:
        # Two partitions, one per log directory (both brokers spread them so).
        clients.create_topic(broker, topic, 2)
        on_small = partition_in(small_fs.path, topic, 2)
        on_big = partition_in(big, topic, 2)

        stored_big, errors = produce(broker, topic, on_big, 50, "big")
        assert (len(stored_big), errors) == (50, [])
        stored_small, errors = produce(broker, topic, on_small, FS_BYTES // RECORD, "small")
        assert errors == [KafkaError.KAFKA_STORAGE_ERROR], (
            f"after {len(stored_small)} records to a {FS_BYTES >> 20} MiB filesystem: {errors}")
        assert len(stored_small) > 1000

        more_big, errors = produce(broker, topic, on_big, 50, "big-after")
        assert (len(more_big), errors) == (50, []), "the other log directory stopped taking writes"
        assert read_partition(broker, topic, on_big) == stored_big + more_big

        if brokers.target() == "kafka":
            return  # Kafka's full directory is offline now, until a restart.

        time.sleep(1.5)  # a few checkpoint rounds into the full directory
        assert read_partition(broker, topic, on_small) == stored_small
        _, errors = produce(broker, topic, on_small, 1, "still-full")
        assert errors == [KafkaError.KAFKA_STORAGE_ERROR]

        small_fs.free_space()
        resumed, errors = produce(broker, topic, on_small, 100, "resumed")
        assert (len(resumed), errors) == (100, []), "writes did not resume once space returned"
        assert read_partition(broker, topic, on_small) == stored_small + resumed

        broker.stop()
        broker.start()
        assert read_partition(broker, topic, on_small) == stored_small + resumed
        assert read_partition(broker, topic, on_big) == stored_big + more_big
    finally:
        broker.stop()


def test_a_topic_created_on_a_full_disk_gets_its_log_when_space_returns(tmp_path, small_fs, topic):
    if brokers.target() == "kafka":
        pytest.skip("Kafka shuts down when its only log directory fails")
    broker = start(tmp_path / "broker", **{"log.dirs": str(small_fs.path)})
    try:
        filler = clients.create_topic(broker, f"{topic}-filler", 1)
        stored, errors = produce(broker, filler, 0, FS_BYTES // RECORD, "filler")
        assert errors == [KafkaError.KAFKA_STORAGE_ERROR]

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            f.result(15)
        # No log yet: a write cannot succeed while the disk is full.
        _, errors = produce(broker, topic, 0, 1, "early")
        assert errors, "a write succeeded on a full disk"

        small_fs.free_space()
        clients.wait_for_serving(broker, topic, 1)
        written, errors = produce(broker, topic, 0, 20, "late")
        assert (len(written), errors) == (20, [])
        assert read_partition(broker, topic, 0) == written
        assert read_partition(broker, filler, 0) == stored
    finally:
        broker.stop()
