#!/usr/bin/env python3
"""Footprint: how fast a broker answers its first request, what it costs in
memory idle and with many idle connections, and how long a restart after
kill -9 takes as the log grows (it should follow the active segment, not the
whole log), and how soon a lone consumer of a new group gets its partitions
(group.initial.rebalance.delay.ms=0). With --kafka, the same for Apache Kafka
where it applies (start-up, memory, first assignment)."""

from __future__ import annotations

import argparse
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import common


def start_sluice(workdir: Path, port: int, *overrides: str) -> tuple[subprocess.Popen, float]:
    """Starts the binary; returns it and the seconds until ApiVersions is answered."""
    args = [str(common.Sluice(workdir).binary),
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={workdir / 'data'}"]
    for o in overrides:
        args += ["--override", o]
    log = open(workdir / "sluice.log", "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    return proc, common.wait_first_answer(port, t0)


def startup(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="fp-") as d:
            proc, t = start_sluice(Path(d), common.free_port())
            times.append(t)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return times


def idle_memory(connections: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="fp-") as d:
        port = common.free_port()
        proc, _ = start_sluice(Path(d), port)
        time.sleep(0.5)
        idle = common.memory_kib(proc.pid)["VmRSS"]
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        time.sleep(1.0)
        with_conns = common.memory_kib(proc.pid)["VmRSS"]
        for s in socks:
            s.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        return idle, with_conns


def crash_restart(mb: int) -> tuple[float, str]:
    """Fills a topic with `mb` MiB in 16 MiB segments, kill -9, restart: seconds
    to the first answer and what the start-up line says it recovered."""
    with tempfile.TemporaryDirectory(prefix="fp-") as d:
        workdir = Path(d)
        port = common.free_port()
        overrides = ("log.segment.bytes=16777216",)
        proc, _ = start_sluice(workdir, port, *overrides)
        bootstrap = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result
        admin.create_topics([NewTopic("fill", num_partitions=1, replication_factor=1)])["fill"].result(30)
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000,
                      "queue.buffering.max.kbytes": 1_048_576})
        value = b"y" * 1024
        for _ in range(mb * 1024):
            while True:
                try:
                    p.produce("fill", value=value)
                    break
                except BufferError:
                    p.poll(0.005)
        assert p.flush(120) == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc, t = start_sluice(workdir, port, *overrides)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        text = (workdir / "sluice.log").read_text(errors="replace")
        line = [l for l in text.splitlines() if "started in" in l][-1]
        recovered = re.search(r"recovered_segments=(\d+)", line).group(1)
        return t, recovered


def first_assignment(bootstrap: str, runs: int) -> list[float]:
    """Seconds from subscribe() to the assignment callback for a lone
    confluent-kafka consumer in a new group, on a 3-partition topic."""
    topic = f"fp-assign-{time.monotonic_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    times = []
    for i in range(runs):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-g{i}",
                             "enable.auto.commit": False})
        assigned: list[float] = []
        # One metadata round trip first, so that what is timed is the group, not the connection.
        consumer.list_topics(topic, timeout=10)
        t0 = time.perf_counter()
        consumer.subscribe([topic], on_assign=lambda c, ps: assigned.append(time.perf_counter()))
        deadline = t0 + 30
        while not assigned and time.perf_counter() < deadline:
            consumer.poll(0.01)
        consumer.close()
        if not assigned:
            raise TimeoutError(f"no assignment within 30 s on {bootstrap}")
        times.append(assigned[0] - t0)
    return times


def sluice_first_assignment(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="fp-") as d:
        port = common.free_port()
        proc, _ = start_sluice(Path(d), port, "group.initial.rebalance.delay.ms=0")
        try:
            return first_assignment(f"127.0.0.1:{port}", runs)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def kafka_footprint() -> tuple[float, int, list[float]]:
    with tempfile.TemporaryDirectory(prefix="fp-kafka-") as d:
        k = common.Kafka(workdir=Path(d))
        t0 = time.perf_counter()
        k.start()
        t = common.wait_first_answer(k.port, t0)
        time.sleep(2)
        rss = common.memory_kib(k.proc.pid)["VmRSS"]
        assignments = first_assignment(k.bootstrap, 10)
        k.stop()
        return t, rss, assignments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kafka", action="store_true", help="also measure Apache Kafka")
    ap.add_argument("--connections", type=int, default=2000)
    args = ap.parse_args()

    times = startup(20)
    print(f"start to first answered request (empty data dir, 20 runs): median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms")
    idle, conns = idle_memory(args.connections)
    print(f"idle RSS: {idle / 1024:.1f} MiB; with {args.connections} idle connections: {conns / 1024:.1f} MiB "
          f"({(conns - idle) / args.connections:.1f} KiB per connection)")
    for mb in (64, 512):
        t, recovered = crash_restart(mb)
        print(f"restart after kill -9 with {mb} MiB in 16 MiB segments: first answer after {t * 1000:.1f} ms, "
              f"segments scanned: {recovered}")
    assign = sluice_first_assignment(10)
    print(f"lone consumer of a new group, subscribe to assignment (10 runs): median "
          f"{statistics.median(assign) * 1000:.1f} ms, max {max(assign) * 1000:.1f} ms")
    if args.kafka:
        t, rss, assign = kafka_footprint()
        print(f"Apache Kafka: first answered request after {t * 1000:.0f} ms, idle RSS {rss / 1024:.1f} MiB; "
              f"subscribe to assignment median {statistics.median(assign) * 1000:.1f} ms, "
              f"max {max(assign) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
