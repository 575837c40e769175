#!/usr/bin/env python3
"""Replication factor 3 on three combined nodes (compat/cluster's harness, the same
Kafka configuration keys for both): Kafka's ProducerPerformance with acks=all and
acks=1 to a topic of 3 partitions, RF 3, min.insync.replicas=2, then
ConsumerPerformance reading it back; MB/s, records/s, average and p99 latency, every
node's peak RSS. Sluice, then Apache Kafka 4.4 (the compat jars), in one run. Numbers
only: the three nodes and the load generator share this machine."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import common
import perf_tools

sys.path.insert(0, str(common.REPO_DIR / "compat" / "cluster"))
from cluster import Cluster  # noqa: E402


def run(impl: str, label: str, args) -> dict:
    results = {"label": label}
    with tempfile.TemporaryDirectory(prefix=f"replicated-{impl}-") as d:
        c = Cluster(impl, Path(d), 3, binary=args.sluice_bin if impl == "sluice" else None)
        c.start(timeout=180)
        try:
            for acks in ("all", "1"):
                topic = f"rf3-acks-{acks}"
                perf_tools.java(perf_tools.TOPICS, "--bootstrap-server", c.bootstrap, "--create", "--topic", topic,
                                "--partitions", str(args.partitions), "--replication-factor", "3",
                                "--config", "min.insync.replicas=2")
                results[f"produce acks={acks}"] = perf_tools.produce(c.bootstrap, topic, args.records, args.size,
                                                                     acks)
            results["consume (acks=all data)"] = perf_tools.consume(c.bootstrap, "rf3-acks-all", args.records)
            results["peak RSS MiB (3 nodes)"] = sum(common.memory_kib(c.node(i).pid)["VmHWM"]
                                                    for i in c.node_ids) / 1024
        finally:
            c.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--no-kafka", action="store_true", help="Sluice only")
    ap.add_argument("--sluice-bin", default=None)
    args = ap.parse_args()
    runs = [run("sluice", "Sluice", args)]
    if not args.no_kafka:
        runs.append(run("kafka", "Apache Kafka 4.4", args))
    mb = args.records * args.size / 1e6
    print(f"\nReplication factor 3, 3 nodes: {args.records:,} records of {args.size} B ({mb:,.0f} MB), "
          f"{args.partitions} partitions, min.insync.replicas=2, linger.ms=5, batch.size=256 KiB")
    perf_tools.print_table(runs)


if __name__ == "__main__":
    main()
