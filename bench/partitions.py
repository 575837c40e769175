#!/usr/bin/env python3
"""Many partitions on one broker: what 1,000 and 10,000 partitions cost.

For each count, a fresh broker (Sluice, then with --kafka Apache Kafka 4.4,
single-node KRaft from the compat jars) gets a topic of that many partitions,
created as a Kafka user must (Kafka's controller takes at most 10,000 records
per request: CreateTopics with half, then CreatePartitions to the total), and
one 100-byte record in every partition. Then, over raw sockets so that the
client costs the same on both:

- create: from the CreateTopics call until a full Fetch of every partition is
  answered without an error (Kafka's broker makes the logs after the answer);
- Metadata v1 of the topic: median round trip of 20, and the response size;
- Fetch v11 of every partition: a sessionless full fetch from offset 0 (every
  partition answers its record), a full fetch from the end that opens a
  session (KIP-227), and the incremental fetch that follows when nothing is
  new (median of 20 each, max wait 0): the last is what every consumer of a
  quiet topic sends all day. Timed from the request sent to the last byte of
  the response read: building requests and parsing responses left out;
- RSS and open file descriptors after all that;
- a clean stop (SIGTERM) and a restart on the same data: time to the first
  answer and until every partition fetches again, RSS and descriptors after.

Numbers only: the client shares the 2 cores with the broker."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

import common
import clients  # noqa: E402  (compat/python, on the path that common sets)
from raw_fetch import FetchConnection  # noqa: E402

TOPIC = "wide"
REPEATS = 20


def create(bootstrap: str, partitions: int, timeout: float) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    first = partitions // 2 if partitions > 1 else 1
    admin.create_topics([NewTopic(TOPIC, num_partitions=first, replication_factor=1)],
                        request_timeout=timeout, operation_timeout=timeout)[TOPIC].result(timeout + 10)
    if partitions > first:
        admin.create_partitions([NewPartitions(TOPIC, partitions)], request_timeout=timeout,
                                operation_timeout=timeout)[TOPIC].result(timeout + 10)


def fill(bootstrap: str, partitions: int) -> None:
    """One 100-byte record in every partition."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "acks": "1"})
    for i in range(partitions):
        p.produce(TOPIC, value=b"x" * 100, partition=i)
        if i % 1000 == 999:
            p.poll(0)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} records not delivered")


def everything(partitions: int, offset: int = 0) -> dict[tuple[str, int], int]:
    return {(TOPIC, p): offset for p in range(partitions)}


def wait_fetchable(bootstrap: str, partitions: int, timeout: float) -> float:
    """Seconds until a sessionless full fetch of every partition answers with
    no error at the top or in any partition."""
    start = time.perf_counter()
    want = everything(partitions)
    last = "no answer"
    while time.perf_counter() - start < timeout:
        try:
            c = FetchConnection(bootstrap)
            try:
                r = c.fetch(0, -1, want)
            finally:
                c.close()
            errors = [e for (e, _hw, _n) in r["partitions"].values() if e]
            if r["error"] == 0 and len(r["partitions"]) == partitions and not errors:
                return time.perf_counter() - start
            last = f"error {r['error']}, {len(r['partitions'])} partitions, {len(errors)} with errors"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise TimeoutError(f"not every partition fetchable after {timeout:.0f} s: {last}")


def metadata_round_trip(sock: socket.socket, correlation: int) -> int:
    """Metadata v1 for the topic; returns the response size."""
    body = struct.pack(">i", 1) + clients.kstring(TOPIC)
    frame = struct.pack(">hhi", 3, 1, correlation) + clients.kstring("bench-partitions") + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", clients.recv_exactly(sock, 4))[0]
    clients.recv_exactly(sock, size)
    return size


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure_requests(bootstrap: str, partitions: int) -> dict:
    out: dict = {}
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        times, size = [], 0
        for i in range(REPEATS):
            t = time.perf_counter()
            size = metadata_round_trip(s, i + 1)
            times.append(time.perf_counter() - t)
        out["Metadata ms"] = median_ms(times)
        out["Metadata KiB"] = size / 1024

    want = everything(partitions)
    c = FetchConnection(bootstrap)
    try:
        times = []
        for _ in range(REPEATS):
            c.fetch(0, -1, want)
            times.append(c.round_trip)
        out["full fetch ms"] = median_ms(times)

        # The session starts where a consumer that has read everything stands:
        # past the one record, so the incremental fetches have nothing new.
        caught_up = everything(partitions, offset=1)
        opens, increments = [], []
        for _ in range(REPEATS):
            r = c.fetch(0, 0, caught_up)
            opens.append(c.round_trip)
            session = r["session_id"]
            if r["error"] or not session:
                raise RuntimeError(f"no fetch session opened (error {r['error']}, id {session})")
            r = c.fetch(session, 1, {})
            increments.append(c.round_trip)
            if r["error"] or r["partitions"]:
                raise RuntimeError(f"incremental fetch: error {r['error']}, "
                                   f"{len(r['partitions'])} partitions answered, none expected")
            # Done with it: a closing fetch (epoch -1) frees the slot.
            c.fetch(session, -1, {})
        out["session open ms"] = median_ms(opens)
        out["incremental ms"] = median_ms(increments)
    finally:
        c.close()
    return out


def footprint(pid: int, when: str) -> dict:
    return {f"RSS MiB {when}": common.memory_kib(pid)["VmRSS"] / 1024,
            f"fds {when}": common.open_fds(pid)}


def run(broker, partitions: int, timeout: float) -> dict:
    result: dict = {}
    start = time.perf_counter()
    create(broker.bootstrap, partitions, timeout)
    wait_fetchable(broker.bootstrap, partitions, timeout)
    result["create s"] = time.perf_counter() - start
    fill(broker.bootstrap, partitions)
    result.update(measure_requests(broker.bootstrap, partitions))
    result.update(footprint(broker.proc.pid, "after"))

    t = time.perf_counter()
    broker.stop(timeout=timeout)
    result["stop s"] = time.perf_counter() - t
    t = time.perf_counter()
    broker.restart(timeout=timeout)
    result["restart: first answer s"] = common.wait_first_answer(broker.port, t, limit=timeout)
    result["restart: all fetchable s"] = (time.perf_counter() - t) + wait_fetchable(
        broker.bootstrap, partitions, timeout)
    result.update(footprint(broker.proc.pid, "restarted"))
    result["peak RSS MiB"] = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
    return result


def run_one(kind: str, partitions: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"partitions-{kind}-") as d:
        if kind == "sluice":
            broker = common.Sluice(Path(d)).start()
        else:
            broker = common.Kafka(workdir=Path(d)).start(timeout=180)
        try:
            return run(broker, partitions, timeout)
        finally:
            broker.stop(timeout=timeout)


def print_table(results: dict[tuple[str, int], dict], counts: list[int], kinds: list[str]) -> None:
    labels = {"sluice": "Sluice", "kafka": "Kafka 4.4"}
    keys: list[str] = []
    for r in results.values():
        keys += [k for k in r if k not in keys]
    columns = [(k, n) for n in counts for k in kinds]
    print("\n| | " + " | ".join(f"{labels[k]}, {n:,}" for k, n in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for key in keys:
        cells = []
        for col in columns:
            v = results.get(col, {}).get(key)
            cells.append("-" if v is None else (f"{v:,.0f}" if key.startswith("fds") else f"{v:,.2f}"))
        print(f"| {key} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1000,10000", help="partition counts (default 1000,10000)")
    ap.add_argument("--kafka", action="store_true", help="also run against Apache Kafka 4.4")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds any one step may take")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    kinds = ["sluice"] + (["kafka"] if args.kafka else [])
    soft, hard = common.raise_open_file_limit(max(65_536, 4 * max(counts) + 4_096))
    print(f"partitions {counts}; open-file limit {soft}/{hard}; {os.cpu_count()} CPUs", flush=True)

    results: dict[tuple[str, int], dict] = {}
    for n in counts:
        for kind in kinds:
            print(f"... {kind}, {n:,} partitions", flush=True)
            try:
                results[(kind, n)] = run_one(kind, n, args.timeout)
            except Exception as e:  # one broker's failure must not lose the others' numbers
                print(f"  FAILED: {e}", flush=True)
            else:
                print("  " + ", ".join(f"{k} {v:,.2f}" for k, v in results[(kind, n)].items()), flush=True)
    print_table(results, counts, kinds)


if __name__ == "__main__":
    main()
