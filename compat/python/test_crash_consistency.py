"""Crash consistency: a power cut at any point of the broker's writes loses nothing it
acknowledged under `log.flush.interval.messages=1` (fsync before the ack), never serves a
torn record, and rebuilds its indexes and producer state.

The broker runs under strace, which records every write, truncate, fsync, open, rename
and unlink in its data directory with the bytes written, while an idempotent producer
(acks=all) writes and notes when each record was acknowledged. Then, for points along
the recording (after fsyncs, and at random), `crash_replay` builds the directory a power
cut there could leave — each file as last fsynced, plus a random prefix of its later
writes, the last possibly torn — and a fresh broker starts on it. Every record
acknowledged before the cut must read back once, nothing unknown may appear, and a new
idempotent producer must be able to write.

Sluice only: Kafka writes its indexes through mmap, which strace does not see.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition

import brokers
import clients
import crash_replay

pytestmark = [
    pytest.mark.crash,
    pytest.mark.skipif(brokers.target() != "sluice", reason="strace sees Sluice's writes, not Kafka's mmap"),
]

PARTITIONS = 2
RECORDS = 2500
CONFIG = {
    "log.flush.interval.messages": "1",
    # Small segments and a dense index: rolls, index entries and snapshots in the recording.
    "log.segment.bytes": "1048576",
    "log.index.interval.bytes": "4096",
}
# Cuts tried; COMPAT_CRASH_CUTS sets more for a long run.
CUTS = int(os.environ.get("COMPAT_CRASH_CUTS", "12"))


def traced_sluice(tmp_path: Path, trace: Path) -> brokers.Sluice:
    wrapper = tmp_path / "traced-sluice"
    command = " ".join(crash_replay.strace_command(trace, brokers.sluice_bin()))
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return brokers.Sluice(tmp_path / "traced", binary=wrapper,
                          overrides=tuple(f"{k}={v}" for k, v in CONFIG.items())).start(timeout=60)


def produce_noting_acks(broker, topic: str) -> dict[bytes, float]:
    """value -> wall-clock time its acknowledgement reached the callback (no earlier
    than the broker's answer, which follows its fsync)."""
    # Small batches: many appends, each fsynced before its answer.
    producer = clients.ck_producer(broker, acks="all", **{
        "enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 20})
    acked: dict[bytes, float] = {}

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value()] = time.time()

    for i in range(RECORDS):
        value = f"{i:06d}-".encode().ljust(1024, b"r")
        while True:
            try:
                producer.produce(topic, value=value, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    return acked


def read_all(broker, topic: str) -> list[bytes]:
    consumer = clients.ck_consumer(broker, **{"check.crcs": True})
    try:
        values: list[bytes] = []
        for p in range(PARTITIONS):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)])
            got = 0
            deadline = time.monotonic() + 30
            while got < high and time.monotonic() < deadline:
                for m in consumer.consume(500, 1.0):
                    assert m.error() is None, f"partition {p}: {m.error()}"
                    values.append(m.value())
                    got += 1
            assert got == high, f"partition {p}: read {got} of {high}"
        return values
    finally:
        consumer.close()


@pytest.mark.timeout(600)
def test_a_power_cut_at_any_write_loses_nothing_acknowledged(tmp_path, topic):
    trace = tmp_path / "writes.trace"
    broker = traced_sluice(tmp_path, trace)
    try:
        clients.create_topic(broker, topic, PARTITIONS)
        acked = produce_noting_acks(broker, topic)
    finally:
        # The whole group: strace and the broker it traces.
        if broker.proc is not None and broker.proc.poll() is None:
            os.killpg(broker.proc.pid, signal.SIGKILL)
            broker.proc.wait(timeout=10)
    assert len(acked) == RECORDS

    recording = crash_replay.Recording(trace, broker.log_dir)
    rng = random.Random(16)
    durable = recording.durable_points()
    assert len(durable) > 100, f"only {len(durable)} fsyncs recorded"
    cuts = sorted(set(rng.sample(durable, CUTS // 2) + rng.sample(range(len(recording)), CUTS // 2)
                      + [len(recording) - 1]))
    sent = {v for v in acked}
    dropped = torn = 0
    for k in cuts:
        workdir = tmp_path / f"cut-{k}"
        stats = recording.state_at(k, workdir / "data", rng)
        dropped += stats["ops_dropped"]
        torn += stats["ops_torn"]
        cut_time = recording.events[k].time
        must_have = {v for v, t in acked.items() if t < cut_time}
        restarted = brokers.Sluice(workdir, overrides=tuple(f"{k}={v}" for k, v in CONFIG.items())).start()
        try:
            values = read_all(restarted, topic) if must_have else []
            assert len(values) == len(set(values)), f"cut {k}: a record read twice"
            assert set(values) <= sent, f"cut {k}: a record that was never sent"
            missing = must_have - set(values)
            assert not missing, f"cut {k}: {len(missing)} acknowledged records lost, e.g. {sorted(missing)[0][:6]}"
            # Producer state and indexes rebuilt: a new idempotent producer writes and reads back.
            if must_have:
                more = clients.ck_producer(restarted, acks="all", **{"enable.idempotence": True})
                more.produce(topic, value=b"after-the-cut", partition=0)
                assert more.flush(30) == 0
                del more
                assert b"after-the-cut" in read_all(restarted, topic)
        finally:
            restarted.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"cut {k}/{len(recording)} ({recording.events[k].name}): {len(must_have)} acknowledged "
              f"before it, all read back; {stats}")
    # The cuts must have hit unsynced writes, or nothing was tested.
    assert dropped > 0 and torn > 0, f"dropped {dropped}, torn {torn}"
