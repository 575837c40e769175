#!/usr/bin/env python3
"""How long a reassignment of --gib GiB takes, and what the clients see meanwhile: four
nodes (1-3 broker+controller, 4 broker only), a topic of 8 partitions with replication
factor 2 on brokers 1 and 2 filled by Kafka's ProducerPerformance, then
`kafka-reassign-partitions --execute` moves every partition to brokers 3 and 4 (both
replicas: twice the data is copied) without a throttle, polled with --verify until done.
Throughout, a librdkafka producer (acks=all, idempotent, 300 records/s) writes to the
moving topic; its acknowledgement latencies during the move and the checker's count of
lost and duplicated records are printed. Sluice, then Apache Kafka 4.4, in one run."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import perf_tools

sys.path.insert(0, str(common.REPO_DIR / "compat" / "cluster"))
from cluster import Cluster, NodeSpec, kafka_tools  # noqa: E402
from load import AckedProducer, check_acked  # noqa: E402

LAYOUT = [NodeSpec(1, "broker,controller"), NodeSpec(2, "broker,controller"), NodeSpec(3, "broker,controller"),
          NodeSpec(4, "broker")]
PARTITIONS = 8
RECORD = 1024


def reassign(c, *args) -> kafka_tools.Result:
    return kafka_tools.run("kafka-reassign-partitions", "--bootstrap-server", c.bootstrap, *args, timeout=120)


def run(impl: str, label: str, args) -> dict:
    out: dict = {"label": label}
    records = int(args.gib * (1 << 30) / RECORD)
    with tempfile.TemporaryDirectory(prefix=f"reassign-{impl}-") as d:
        c = Cluster(impl, Path(d), LAYOUT, binary=args.sluice_bin if impl == "sluice" else None,
                    extra_config={"auto.leader.rebalance.enable": "false"})
        c.start(timeout=180)
        try:
            topic = "moving"
            assignment = ",".join("1:2" if p % 2 == 0 else "2:1" for p in range(PARTITIONS))
            perf_tools.java(perf_tools.TOPICS, "--bootstrap-server", c.bootstrap, "--create", "--topic", topic,
                            "--replica-assignment", assignment)
            perf_tools.produce(c.bootstrap, topic, records, RECORD, "all")
            producer = AckedProducer(c.bootstrap, topic, rate=300)
            producer.start()
            time.sleep(3)
            plan = Path(d) / "plan.json"
            plan.write_text(json.dumps({"version": 1, "partitions": [
                {"topic": topic, "partition": p, "replicas": [3, 4] if p % 2 == 0 else [4, 3]}
                for p in range(PARTITIONS)]}))
            acked_before = producer.acked_count()
            t0 = time.monotonic()
            started = reassign(c, "--execute", "--reassignment-json-file", str(plan))
            if started.code != 0:
                raise RuntimeError(f"--execute failed: {started}")
            while True:
                verified = reassign(c, "--verify", "--reassignment-json-file", str(plan))
                if verified.code == 0 and "still in progress" not in verified.stdout:
                    break
                if time.monotonic() - t0 > args.timeout:
                    raise RuntimeError(f"not done after {args.timeout} s: {verified}")
                time.sleep(0.5)
            took = time.monotonic() - t0
            acked_during = producer.acked_count() - acked_before
            time.sleep(2)
            producer.stop()
            # Acknowledgement latencies of the records sent while the move ran.
            during = [lat for lat, t in producer.latencies if t0 <= t <= t0 + took]
            counted = check_acked(c.bootstrap, topic, producer.acked)
            moved_bytes = records * RECORD * 2
            out.update({
                "moved GiB (2 replicas)": moved_bytes / (1 << 30),
                "reassignment s": took,
                "copy MB/s": moved_bytes / took / 1e6,
                "acked during": acked_during,
                "ack p50 ms": statistics.median(during) * 1000 if during else float("nan"),
                "ack p99 ms": sorted(during)[int(len(during) * 0.99)] * 1000 if during else float("nan"),
                "ack max ms": max(during) * 1000 if during else float("nan"),
                "lost": counted["missing"],
                "duplicated": counted["duplicated"],
                "client errors": sum((producer.failed + producer.client_errors).values()),
            })
        finally:
            c.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gib", type=float, default=1.0, help="data in the topic before the move (GiB)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--no-kafka", action="store_true", help="Sluice only")
    ap.add_argument("--sluice-bin", default=None)
    args = ap.parse_args()
    runs = [run("sluice", "Sluice", args)]
    if not args.no_kafka:
        runs.append(run("kafka", "Apache Kafka 4.4", args))
    print(f"\nReassignment of {args.gib:g} GiB ({PARTITIONS} partitions, RF 2, brokers 1,2 -> 3,4, no throttle) "
          f"under a 300 records/s acks=all producer")
    perf_tools.print_table(runs)


if __name__ == "__main__":
    main()
