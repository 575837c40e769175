"""A 5-node cluster in 2 racks on this machine, as our seed notes describe it: a topic of 10
partitions with replication factor 3, then a whole rack lost and brought back, with
Kafka's own kafka-topics showing the leaders and in-sync replicas at each step.

    scripts/cluster-demo                 # Sluice (target/release/sluice or $SLUICE_BIN)
    scripts/cluster-demo --impl kafka    # the same on Apache Kafka 4.4 from the jars

Nodes 1, 2, 3 are broker+controller (racks a, b, a), 4 and 5 brokers only (b, a): rack-a
holds 2 of the 3 controllers, so the rack that is lost is rack-b (nodes 2 and 4) and the
controller quorum keeps its majority. With three controllers in two racks one rack always
holds a majority; losing that rack stops the quorum, in Kafka as in Sluice.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import confluent_kafka  # noqa: E402

from cluster import Cluster, NodeSpec, kafka_tools, wait_until  # noqa: E402  (cluster sets the paths)

LAYOUT = [NodeSpec(1, "broker,controller", "rack-a"),
          NodeSpec(2, "broker,controller", "rack-b"),
          NodeSpec(3, "broker,controller", "rack-a"),
          NodeSpec(4, "broker", "rack-b"),
          NodeSpec(5, "broker", "rack-a")]
LOST_RACK = "rack-b"
TOPIC = "demo"
CONFIG = {"broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "1000",
          "replica.lag.time.max.ms": "5000", "min.insync.replicas": "2"}


def partitions(bootstrap: str, show: bool = False) -> list[dict]:
    """kafka-topics --describe of the topic (printed when `show`): one dict per partition."""
    out = kafka_tools.run("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", TOPIC)
    if show:
        print(out.stdout.rstrip())
    return kafka_tools.parse_topic_description(out.stdout)[1]


def fully_replicated(bootstrap: str) -> bool:
    ps = partitions(bootstrap)
    return bool(ps) and all(len(p["Isr"].split(",")) == 3 for p in ps)


def produce_each(bootstrap: str, count: int) -> dict[int, str]:
    """One acks=all record to each partition: 'ok' or the error the producer saw."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                         "message.timeout.ms": 10000, "retries": 0})
    outcome: dict[int, str] = {}

    def done(err, msg):
        outcome[msg.partition()] = "ok" if err is None else err.name()

    for p in range(count):
        producer.produce(TOPIC, value=f"to-{p}".encode(), partition=p, on_delivery=done)
    producer.flush(30)
    return outcome


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", choices=("sluice", "kafka"), default="sluice")
    ap.add_argument("--binary", help="the sluice binary (default: $SLUICE_BIN, else target/release/sluice)")
    args = ap.parse_args()
    rack = {s.node_id: s.rack for s in LAYOUT}
    lost = [i for i, r in rack.items() if r == LOST_RACK]
    with tempfile.TemporaryDirectory(prefix="cluster-demo-") as workdir:
        c = Cluster(args.impl, workdir, LAYOUT, extra_config=CONFIG, binary=args.binary)
        t0 = time.monotonic()
        c.start(timeout=180)
        try:
            print(f"== {args.impl}: 5 nodes started in {time.monotonic() - t0:.1f} s: "
                  + ", ".join(f"node {s.node_id} ({s.roles}, {s.rack})" for s in LAYOUT))
            created = kafka_tools.run("kafka-topics", "--bootstrap-server", c.bootstrap, "--create",
                                      "--topic", TOPIC, "--partitions", "10", "--replication-factor", "3")
            print(created.stdout.rstrip())
            wait_until(lambda: fully_replicated(c.bootstrap) or None, "every partition fully replicated", 60, 0.5)
            print("\n== kafka-topics --describe: every partition has replicas in both racks")
            partitions(c.bootstrap, show=True)
            print(f"\n== kill -9 of {LOST_RACK}: nodes {lost}")
            t_kill = time.monotonic()
            for n in lost:
                c.kill_9(n)
            survivors = ",".join(c.node(i).bootstrap for i in rack if i not in lost)

            def moved():
                ps = partitions(survivors)
                return ps if ps and all(int(p["Leader"]) not in lost and int(p["Leader"]) >= 0 for p in ps) else None
            wait_until(moved, "every partition led in the surviving rack", 60, 0.5)
            print(f"every partition has a leader in rack-a again after {time.monotonic() - t_kill:.1f} s:")
            ps = partitions(survivors, show=True)
            outcome = produce_each(survivors, 10)
            print("\n== one acks=all record to each partition (min.insync.replicas=2):")
            for p in ps:
                isr = p["Isr"]
                print(f"  partition {p['Partition']}: ISR {isr:<7} -> {outcome.get(int(p['Partition']), '?')}")
            print(f"\n== {LOST_RACK} back")
            for n in lost:
                c.restart(n)
            t_back = time.monotonic()
            wait_until(lambda: fully_replicated(c.bootstrap) or None, "every ISR full again", 120, 0.5)
            print(f"every ISR has its 3 replicas again {time.monotonic() - t_back:.1f} s after the restart:")
            partitions(c.bootstrap, show=True)
        finally:
            c.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
