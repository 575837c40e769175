#!/usr/bin/env python3
"""Produce and consume a few hundred MB through librdkafka (confluent-kafka):
prints MB/s, records/s and the broker's peak RSS, for Sluice and, with
--kafka, for Apache Kafka in the same run, with the ratios.

A number, not a verdict: the load generator (one Python process driving
librdkafka) shares the machine's cores with the broker."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import common


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    # Wait until every partition accepts reads (Kafka lags behind its metadata).
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    deadline = time.time() + 30
    for p in range(partitions):
        while True:
            try:
                c.get_watermark_offsets(TopicPartition(name, p), timeout=5)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
    c.close()


def produce(bootstrap: str, topic: str, count: int, size: int, acks: int) -> float:
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 2_097_151,
        "enable.idempotence": acks == -1,
    })
    value = b"x" * size
    failed = []

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(err)

    start = time.perf_counter()
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.005)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise RuntimeError(f"{left} records undelivered, {len(failed)} failed: {failed[:3]}")
    return elapsed


def consume(bootstrap: str, topic: str, partitions: int, count: int) -> float:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "bench",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    start = time.perf_counter()
    deadline = start + 300
    while got < count and time.perf_counter() < deadline:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    if got != count:
        raise RuntimeError(f"consumed {got} of {count}")
    return elapsed


def run(broker, label: str, args) -> dict:
    count = args.mb * 1024 * 1024 // args.size
    mb = count * args.size / 1e6
    results = {"label": label}
    for acks in (1, -1):
        topic = f"bench-acks{acks}"
        create_topic(broker.bootstrap, topic, args.partitions)
        t = produce(broker.bootstrap, topic, count, args.size, acks)
        results[f"produce acks={acks}"] = (mb / t, count / t)
        t = consume(broker.bootstrap, topic, args.partitions, count)
        results[f"consume (acks={acks} data)"] = (mb / t, count / t)
    results["peak RSS MiB"] = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=300, help="MiB produced per run (default 300)")
    ap.add_argument("--size", type=int, default=1024, help="record value size in bytes (default 1024)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--kafka", action="store_true", help="also run against Apache Kafka")
    args = ap.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-sluice-") as d:
        broker = common.Sluice(Path(d)).start()
        try:
            runs.append(run(broker, "Sluice", args))
        finally:
            broker.stop()
    if args.kafka:
        with tempfile.TemporaryDirectory(prefix="bench-kafka-") as d:
            broker = common.Kafka(workdir=Path(d)).start()
            try:
                runs.append(run(broker, "Apache Kafka", args))
            finally:
                broker.stop()

    count = args.mb * 1024 * 1024 // args.size
    print(f"\n{count:,} records of {args.size} B ({count * args.size / 1e6:,.0f} MB), "
          f"{args.partitions} partitions, librdkafka {__import__('confluent_kafka').libversion()[0]}")
    header = f"{'':28}" + "".join(f"{r['label']:>32}" for r in runs)
    if len(runs) == 2:
        header += f"{'Sluice/Kafka':>14}"
    print(header)
    for key in runs[0]:
        if key in ("label", "peak RSS MiB"):
            continue
        line = f"{key:28}"
        for r in runs:
            mbps, rps = r[key]
            line += f"{mbps:12,.1f} MB/s {rps:12,.0f} rec/s"
        if len(runs) == 2:
            line += f"{runs[0][key][0] / runs[1][key][0]:13.2f}x"
        print(line)
    line = f"{'broker peak RSS':28}" + "".join(f"{r['peak RSS MiB']:27,.1f} MiB" for r in runs)
    if len(runs) == 2:
        line += f"{runs[0]['peak RSS MiB'] / runs[1]['peak RSS MiB']:13.2f}x"
    print(line)


if __name__ == "__main__":
    main()
