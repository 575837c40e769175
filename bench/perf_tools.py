#!/usr/bin/env python3
"""Kafka's own perf tools (ProducerPerformance, ConsumerPerformance from the
4.4 jars) against Sluice and against Apache Kafka, same settings, in one run:
MB/s, records/s, average and p99 produce latency, the CPU seconds the broker
and the tool used in each step, each broker's peak RSS, and the ratios. Numbers only: nothing here asserts a time."""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import common

JARS = common.REPO_DIR / "compat" / ".cache" / "kafka-jars"
PRODUCER = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER = "org.apache.kafka.tools.ConsumerPerformance"
TOPICS = "org.apache.kafka.tools.TopicCommand"


def java(main: str, *args: str, timeout: float = 600) -> str:
    cmd = ["java", "-Xmx1g", "-cp", f"{JARS}/*", main, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{main} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def produce(bootstrap: str, topic: str, records: int, size: int, acks: str, linger_ms: int = 5) -> dict:
    out = java(PRODUCER, "--topic", topic, "--num-records", str(records), "--record-size", str(size),
               "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}",
               f"linger.ms={linger_ms}", "batch.size=262144")
    # "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, p50 ms 50th, p95 ms 95th, p99 ms 99th, ..."
    last = [line for line in out.splitlines() if "records sent" in line][-1]
    m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.*?(\d+) ms 99th", last)
    if not m:
        raise RuntimeError(f"unexpected ProducerPerformance output: {last}")
    return {"rec/s": float(m.group(1)), "MB/s": float(m.group(2)), "avg ms": float(m.group(3)),
            "p99 ms": float(m.group(4))}


def consume(bootstrap: str, topic: str, records: int) -> dict:
    out = java(CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
               "--timeout", "60000", "--group", f"perf-{time.time_ns()}")
    lines = [line for line in out.splitlines() if line.strip()]
    header = [h.strip() for h in lines[-2].split(",")]
    values = [v.strip() for v in lines[-1].split(",")]
    row = dict(zip(header, values))
    return {"MB/s": float(row["MB.sec"]), "rec/s": float(row["nMsg.sec"]),
            "fetch MB/s": float(row["fetch.MB.sec"])}


def with_cpu(broker, step) -> dict:
    """The step's numbers, and the CPU seconds the broker and the client (the
    perf tool's JVM) used during it: on a machine the two share, a broker's CPU
    is taken from the client."""
    broker_before, client_before = common.cpu_seconds(broker.proc.pid), common.children_cpu_seconds()
    result = step()
    result["broker CPU s"] = common.cpu_seconds(broker.proc.pid) - broker_before
    result["client CPU s"] = common.children_cpu_seconds() - client_before
    return result


def run(broker, label: str, args) -> dict:
    results = {"label": label}
    for acks in ("1", "all"):
        topic = f"perf-acks-{acks}"
        java(TOPICS, "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
             "--partitions", str(args.partitions), "--replication-factor", "1")
        results[f"produce acks={acks}"] = with_cpu(
            broker, lambda: produce(broker.bootstrap, topic, args.records, args.size, acks))
        results[f"consume (acks={acks} data)"] = with_cpu(
            broker, lambda: consume(broker.bootstrap, topic, args.records))
    results["peak RSS MiB"] = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
    return results


def print_table(runs: list[dict], skip=("label",)) -> None:
    """Each key's metrics, one column per run, with the first run's ratio to the second."""
    for key in runs[0]:
        if key in skip:
            continue
        print(f"\n{key}")
        values = runs[0][key] if isinstance(runs[0][key], dict) else {"": runs[0][key]}
        for metric in values:
            def get(r, metric=metric, key=key):
                return r[key][metric] if metric else r[key]
            line = f"  {metric:12}" + "".join(f"{r['label']:>18}: {get(r):12,.1f}" for r in runs)
            if len(runs) == 2 and get(runs[1]):
                line += f"   ratio {get(runs[0]) / get(runs[1]):.2f}"
            print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--no-kafka", action="store_true", help="Sluice only")
    args = ap.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="perf-sluice-") as d:
        broker = common.Sluice(Path(d)).start()
        try:
            runs.append(run(broker, "Sluice", args))
        finally:
            broker.stop()
    if not args.no_kafka:
        with tempfile.TemporaryDirectory(prefix="perf-kafka-") as d:
            broker = common.Kafka(workdir=Path(d)).start()
            try:
                runs.append(run(broker, "Apache Kafka 4.4", args))
            finally:
                broker.stop()

    mb = args.records * args.size / 1e6
    print(f"\nKafka perf tools: {args.records:,} records of {args.size} B ({mb:,.0f} MB), "
          f"{args.partitions} partitions, linger.ms=5, batch.size=256 KiB")
    print_table(runs, skip=("label", "peak RSS MiB"))
    print("\npeak RSS MiB" + "".join(f"{r['label']:>18}: {r['peak RSS MiB']:12,.1f}" for r in runs), end="")
    if len(runs) == 2:
        print(f"   ratio {runs[0]['peak RSS MiB'] / runs[1]['peak RSS MiB']:.2f}")
    else:
        print()


if __name__ == "__main__":
    main()
