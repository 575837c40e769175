#!/usr/bin/env python3
"""A broker back in thousands of ISRs: three combined broker+controller nodes (compat/cluster's
harness, the same Kafka configuration keys for both implementations) with --partitions
partitions of replication factor 3 (topics of --per-topic), each partition written once so that
followers have something to fetch. Then, --rounds times:

  shutdown   node 3 stopped with SIGTERM (a controlled shutdown): the time until node 1's
             Metadata shows it out of every ISR
  rejoin     node 3 started again on its data: the time from the start until it answers,
             and until node 1's Metadata shows all three replicas in every ISR again —
             its followers caught up and every leader's AlterPartition committed

Kafka's brokers send each one's pending ISR changes in one AlterPartition; so does Sluice
(before: one partition a request, one metadata write each; compare builds with two
--sluice-bin). Numbers only: the machine is shared by every node and this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common  # puts compat/python and compat/kafka on the path; run_each

sys.path.insert(0, str(common.REPO_DIR / "compat" / "cluster"))
from cluster import Cluster, combined, wait_until  # noqa: E402

from kafka.protocol.admin import CreateTopicsRequest  # noqa: E402
from kafka.protocol.metadata import MetadataRequest  # noqa: E402

RETURNING = 3


def create(c: Cluster, names: list[str], per_topic: int) -> None:
    T = CreateTopicsRequest.CreatableTopic
    conn = c.raw(1, timeout=300)
    try:
        for name in names:
            r = conn.call(CreateTopicsRequest(
                topics=[T(name=name, num_partitions=per_topic, replication_factor=3, assignments=[], configs=[])],
                timeout_ms=120000, validate_only=False))
            (t,) = r.topics
            if t.error_code != 0:
                raise RuntimeError(f"CreateTopics {name}: error {t.error_code} {t.error_message}")
    finally:
        conn.close()


def isr_sizes(conn, names: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (leader, ISR size) in that broker's Metadata."""
    md = conn.call(MetadataRequest(
        topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in names],
        allow_auto_topic_creation=False, include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False))
    return {(t.name, p.partition_index): (p.leader_id, len(p.isr_nodes))
            for t in md.topics if t.error_code == 0 for p in t.partitions}


def write_once(c: Cluster, names: list[str], per_topic: int) -> None:
    """One small record in every partition (kafka-python, acks=all)."""
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all", linger_ms=50)
    try:
        futures = [producer.send(name, value=b"x" * 100, partition=p) for name in names for p in range(per_topic)]
        producer.flush(timeout=300)
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close()


def until_isrs(conn, names: list[str], size: int, what: str, timeout: float) -> float:
    t0 = time.perf_counter()
    last: dict = {}

    def done():
        nonlocal last
        last = isr_sizes(conn, names)
        short = sum(1 for _, n in last.values() if n != size)
        if short:
            raise LookupError(f"{short} of {len(last)} partitions without {size} in their ISR")
        return True
    wait_until(done, what, timeout, 0.05)
    return time.perf_counter() - t0


def measure(impl: str, args, result: dict, binary: Path | None = None) -> None:
    names = [f"isr-{k}" for k in range(args.partitions // args.per_topic)]
    with tempfile.TemporaryDirectory(prefix=f"isr-rejoin-{impl}-") as d:
        c = Cluster(impl, Path(d), combined(3, racks=("rack-a", "rack-b", "rack-c")), binary=binary)
        try:
            c.start(timeout=300)
            t0 = time.perf_counter()
            create(c, names, args.per_topic)
            c.wait_topics_everywhere(names, timeout=600)
            result["create s"] = time.perf_counter() - t0
            conn = c.raw(1, timeout=120)
            try:
                until_isrs(conn, names, 3, "every ISR full after creation", 600)
            finally:
                conn.close()
            write_once(c, names, args.per_topic)
            print(f"  {len(names) * args.per_topic} partitions created and written in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            rounds = result["rounds"] = []
            for k in range(args.rounds):
                conn = c.raw(1, timeout=120)
                try:
                    t_stop = time.perf_counter()
                    c.stop_node(RETURNING)
                    until_isrs(conn, names, 2, f"node {RETURNING} out of every ISR", 300)
                    stopped_s = time.perf_counter() - t_stop
                    t_start = time.perf_counter()
                    answered = c.start_node(RETURNING, timeout=300)
                    back_s = until_isrs(conn, names, 3, f"node {RETURNING} back in every ISR", 600)
                    rejoin_s = time.perf_counter() - t_start
                finally:
                    conn.close()
                r = {"stopped s": stopped_s, "answered s": answered, "rejoined s": rejoin_s}
                rounds.append(r)
                print(f"  round {k + 1}/{args.rounds}: stop -> out of every ISR {stopped_s:.2f} s; "
                      f"start -> answering {answered:.2f} s, -> back in every ISR {rejoin_s:.2f} s "
                      f"({back_s:.2f} s of it after answering)", flush=True)
                time.sleep(args.settle)
        finally:
            c.stop()


def s(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} {max(values):8.2f}"


def report(label: str, r: dict, partitions: int) -> None:
    print(f"\n{label}: 3 combined nodes, {partitions} partitions RF 3{'' if r.get('complete') else ' (incomplete)'}")
    if "create s" not in r:
        print("  (nothing measured)")
        return
    print(f"  {'':48} {'median':>8} {'max':>8}")
    print(f"  {'create, until every broker lists them (s)':48} {r['create s']:8.2f}")
    rounds = r.get("rounds") or []
    if not rounds:
        return
    n = len(rounds)
    print(f"  {f'SIGTERM -> out of every ISR (s, {n})':48} {s([x['stopped s'] for x in rounds])}")
    print(f"  {f'start -> answering (s, {n})':48} {s([x['answered s'] for x in rounds])}")
    print(f"  {f'start -> back in every ISR (s, {n})':48} {s([x['rejoined s'] for x in rounds])}   "
          + " ".join(f"{x['rejoined s']:.2f}" for x in rounds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_implementation_args(ap)
    ap.add_argument("--partitions", type=int, default=3000, help="partitions in all (default 3000)")
    ap.add_argument("--per-topic", type=int, default=500, help="partitions per topic (default 500)")
    ap.add_argument("--rounds", type=int, default=3, help="stop/start rounds (default 3)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between rounds (default 2)")
    args = ap.parse_args()
    if args.rounds < 1 or args.per_topic < 1 or args.partitions < args.per_topic:
        ap.error("--rounds and --per-topic must be at least 1, --partitions at least --per-topic")
    todo = common.implementations(ap, args)
    partitions = args.partitions // args.per_topic * args.per_topic
    print(f"3 combined nodes on 127.0.0.1; {partitions} partitions RF 3; {args.rounds} rounds; "
          f"{os.cpu_count()} CPUs", flush=True)
    common.run_each(todo, lambda impl, result, binary: measure(impl, args, result, binary),
                    lambda label, result: report(label, result, partitions))


if __name__ == "__main__":
    main()
