#!/usr/bin/env python3
"""Cluster failover: three combined broker+controller nodes (compat/cluster's harness,
the same Kafka configuration keys for both implementations), measured from outside:

  start-up   format (all nodes at once), each node's time from its start to the first
             answered ApiVersions, the time until every broker's Metadata lists all three
             brokers, and each node's idle RSS 5 s later
  propagation  a CreateTopics (1 partition, RF 3) sent to one broker (in turn): the time to
             its answer, then from the answer until every broker's Metadata lists the topic
             with a leader (raw Metadata, one open connection per broker, polled)
  failover   kill -9 of the active controller (DescribeQuorum's leader), then CreateTopics
             (1 partition, RF 1, each a new name) sent again and again to a surviving broker
             on an open connection, which forwards it to the controller quorum: the time from
             the kill to the first one answered without error. Then the killed node is
             started again: the time until it answers, and until its Metadata lists the
             topic created during its absence. Repeated --rounds times (each round kills
             whichever node leads then).

Raw requests (kafka-python's protocol classes) measure the cluster, not a client's
routing: librdkafka's admin client, for one, keeps sending to the "controller" of its
cached Metadata, which a KRaft broker names at random among live brokers.

Sluice (each --sluice-bin, labelled by its path), then with --kafka Apache Kafka 4.4 (the
compat jars); --kafka-only skips Sluice. Numbers only: the machine is shared by every node
and the load generator.
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


def create_topic_request(name: str, rf: int, timeout_ms: int):
    T = CreateTopicsRequest.CreatableTopic
    return CreateTopicsRequest(topics=[T(name=name, num_partitions=1, replication_factor=rf,
                                         assignments=[], configs=[])],
                               timeout_ms=timeout_ms, validate_only=False)


def metadata_request(topic: str):
    return MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
                           allow_auto_topic_creation=False, include_cluster_authorized_operations=False,
                           include_topic_authorized_operations=False)


def lists(conn, topic: str) -> bool:
    """That broker's Metadata has the topic, every partition with a leader."""
    md = conn.call(metadata_request(topic))
    return any(t.name == topic and t.error_code == 0 and t.partitions
               and all(p.leader_id >= 0 for p in t.partitions) for t in md.topics)


def startup(c: Cluster, idle: float) -> dict:
    t0 = time.perf_counter()
    c.format()
    formatted = time.perf_counter() - t0
    c.start(timeout=300)
    time.sleep(idle)
    rss = {i: common.memory_kib(c.node(i).pid)["VmRSS"] / 1024 for i in c.node_ids}
    return {"format s": formatted, "answered s": c.ready_seconds, "registered s": c.registered_seconds,
            "idle RSS MiB": rss}


def propagation(c: Cluster, rounds: int, prefix: str) -> dict:
    conns = {i: c.raw(i, timeout=60) for i in c.broker_ids}
    answers, spreads = [], []
    try:
        for k in range(rounds):
            name = f"{prefix}-prop-{k}"
            via = c.broker_ids[k % len(c.broker_ids)]
            t0 = time.perf_counter()
            r = conns[via].call(create_topic_request(name, min(3, len(c.broker_ids)), 30000))
            t_answer = time.perf_counter()
            (t,) = r.topics
            if t.error_code != 0:
                raise RuntimeError(f"CreateTopics {name} via node {via}: error {t.error_code} {t.error_message}")
            pending = set(conns)
            deadline = t_answer + 60
            while pending:
                for i in sorted(pending):
                    if lists(conns[i], name):
                        pending.discard(i)
                if pending:
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"{name}: brokers {sorted(pending)} do not list it after 60 s")
                    time.sleep(0.002)
            spreads.append(time.perf_counter() - t_answer)
            answers.append(t_answer - t0)
    finally:
        for conn in conns.values():
            conn.close()
    return {"answer s": answers, "propagation s": spreads}


def failover_round(c: Cluster, k: int, prefix: str, request_timeout_ms: int) -> dict:
    killed = c.active_controller(timeout=60)
    survivor = min(i for i in c.live_broker_ids if i != killed)
    conn = c.raw(survivor, timeout=request_timeout_ms / 1000 + 30)
    errors: dict[str, int] = {}
    attempt = 0
    try:
        t_kill = time.perf_counter()
        c.kill_9(killed)
        while True:
            name = f"{prefix}-fo{k}-{attempt}"
            attempt += 1
            try:
                (t,) = conn.call(create_topic_request(name, 1, request_timeout_ms)).topics
                if t.error_code == 0:
                    t_ok = time.perf_counter()
                    break
                why = f"error {t.error_code}"
            except OSError as e:  # the survivor closed the connection: open another
                why = type(e).__name__
                conn.close()
                conn = c.raw(survivor, timeout=request_timeout_ms / 1000 + 30)
            errors[why] = errors.get(why, 0) + 1
            if time.perf_counter() - t_kill > 300:
                raise TimeoutError(f"no CreateTopics answered within 300 s of the kill; {errors}")
            time.sleep(0.01)
    finally:
        conn.close()
    successor = c.active_controller(exclude=(killed,), timeout=60)
    t_restart = time.perf_counter()
    answered = c.restart(killed, timeout=300)
    rejoin = c.raw(killed, timeout=30)
    try:
        wait_until(lambda: lists(rejoin, name), f"node {killed} to list {name}", 120, 0.01)
    finally:
        rejoin.close()
    caught_up = time.perf_counter() - t_restart
    return {"killed": killed, "successor": successor, "failover s": t_ok - t_kill, "attempts": attempt,
            "errors": errors, "restart answered s": answered, "restart caught up s": caught_up}


def measure(impl: str, args, result: dict, binary: Path | None = None) -> None:
    """Fills `result` as it goes, so that a failure part-way keeps what was measured."""
    with tempfile.TemporaryDirectory(prefix=f"cluster-failover-{impl}-") as d:
        c = Cluster(impl, Path(d), combined(3, racks=("rack-a", "rack-b", "rack-c")), binary=binary)
        try:
            result["startup"] = startup(c, args.idle)
            print(f"  started: {result['startup']['registered s']:.2f} s to all registered", flush=True)
            result["propagation"] = propagation(c, args.propagation, "bench")
            print(f"  propagation: {len(result['propagation']['propagation s'])} topics", flush=True)
            rounds = result["failover"] = []
            for k in range(args.rounds):
                r = failover_round(c, k, "bench", args.request_timeout_ms)
                print(f"  failover {k + 1}/{args.rounds}: node {r['killed']} killed, node {r['successor']} "
                      f"leads; first CreateTopics answered after {r['failover s']:.2f} s "
                      f"({r['attempts']} attempts{', ' + str(r['errors']) if r['errors'] else ''}); "
                      f"restarted node answered after {r['restart answered s']:.2f} s, "
                      f"caught up after {r['restart caught up s']:.2f} s", flush=True)
                rounds.append(r)
                time.sleep(args.settle)
        finally:
            c.stop()


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} {max(values) * 1000:8.1f}"


def s(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} {max(values):8.2f}"


def report(label: str, r: dict) -> None:
    print(f"\n{label}: 3 combined broker+controller nodes{'' if r.get('complete') else ' (incomplete)'}")
    if "startup" not in r:
        print("  (nothing measured)")
        return
    st, pr, fo = r["startup"], r.get("propagation"), r.get("failover") or []
    print(f"  {'':44} {'median':>8} {'max':>8}")
    print(f"  {'format, 3 nodes at once (s)':44} {st['format s']:8.2f}")
    print(f"  {'start to first answered ApiVersions (s)':44} {s(list(st['answered s'].values()))}")
    print(f"  {'start to all brokers registered (s)':44} {st['registered s']:8.2f}")
    rss = list(st["idle RSS MiB"].values())
    print(f"  {'idle RSS per node (MiB)':44} {statistics.median(rss):8.1f} {max(rss):8.1f}   "
          + ", ".join(f"node {i}: {v:.1f}" for i, v in st["idle RSS MiB"].items()))
    if pr is None:
        return
    n = len(pr["answer s"])
    print(f"  {f'CreateTopics answered, RF 3 (ms, {n})':44} {ms(pr['answer s'])}")
    print(f"  {f'answer -> listed by every broker (ms, {n})':44} {ms(pr['propagation s'])}")
    k = len(fo)
    if not k:
        return
    print(f"  {f'kill -9 -> first CreateTopics answered (s, {k})':44} {s([f['failover s'] for f in fo])}   "
          + " ".join(f"{f['failover s']:.2f}" for f in fo))
    print(f"  {'killed node restarted: answered (s)':44} {s([f['restart answered s'] for f in fo])}")
    print(f"  {'killed node restarted: lists the new topic (s)':44} {s([f['restart caught up s'] for f in fo])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_implementation_args(ap)
    ap.add_argument("--rounds", type=int, default=5, help="controller kills (default 5)")
    ap.add_argument("--propagation", type=int, default=20, help="topics timed for propagation (default 20)")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds idle before RSS is read (default 5)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between failover rounds (default 2)")
    ap.add_argument("--request-timeout-ms", type=int, default=30000,
                    help="CreateTopics timeout_ms during failover (default 30000)")
    args = ap.parse_args()
    if args.rounds < 1 or args.propagation < 1:
        ap.error("--rounds and --propagation must be at least 1")
    todo = common.implementations(ap, args)
    print(f"3 combined nodes on 127.0.0.1; {args.rounds} failovers, {args.propagation} topics for propagation; "
          f"{os.cpu_count()} CPUs", flush=True)

    common.run_each(todo, lambda impl, result, binary: measure(impl, args, result, binary), report)


if __name__ == "__main__":
    main()
