#!/usr/bin/env python3
"""The broker as the bound: Produce and Fetch throughput through a load generator that
costs next to nothing (compat/go/wirebench), Sluice beside Kafka 4.4 in one run
(issue #17).

Kafka's own perf tools, librdkafka and franz-go spend one to six CPU seconds per GB
themselves; on this 2-core machine they, not the broker, set the pace against either
broker (bench/perf-tools, bench/consume-clients print their CPU). wirebench sends one
prebuilt record batch per partition over and over (Produce v9, 5 requests in flight on
a connection, as the Java producer) and reads Fetch responses (v12, the Java consumer's
limits) looking only at batch headers, so what is measured here is what the broker
itself can move.

Both brokers run at once, each on a fresh data directory, with topics `bound-1` and
`bound-all` of --partitions partitions (default 3); then --repeat times (default 2),
each step on one broker then the other (the order turned round every repeat):
  produce acks=1   --mb MB (record values) into bound-1, one connection
  produce acks=all --mb MB into bound-all, one connection
  fetch            --mb MB of bound-1 from its start, one connection (one consumer)
  fetch, 3 conns   the same, the partitions shared over --partitions connections
Per step: MB/s (10^6 bytes a second), p50 / p99 request latency (write to response),
the broker's CPU seconds per GB (utime+stime of its process) and the generator's CPU
seconds. Numbers, not assertions: exits 1 only if a step failed."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import perf_tools

WIREBENCH = common.REPO_DIR / "compat" / ".cache" / "go-bin" / "wirebench"


def wirebench(broker, topic: str, mode: str, args, *extra: str) -> dict:
    cmd = [str(WIREBENCH), "-broker", broker.bootstrap, "-topic", topic, "-mode", mode,
           "-partitions", str(args.partitions), *extra]
    broker_before, client_before = common.cpu_seconds(broker.proc.pid), common.children_cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    broker_cpu = common.cpu_seconds(broker.proc.pid) - broker_before
    client_cpu = common.children_cpu_seconds() - client_before
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"wirebench {mode} failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"MB/s": r["bytes"] / 1e6 / r["seconds"], "p50 ms": r["p50_ms"], "p99 ms": r["p99_ms"],
            "broker CPU s/GB": broker_cpu / (r["bytes"] / 1e9), "client CPU s": client_cpu}


def wait_writable(broker, topic: str, args) -> None:
    """Kafka answers a CreateTopics before its partitions take writes: one small produce
    until it goes through."""
    deadline = time.time() + 60
    while True:
        try:
            wirebench(broker, topic, "produce", args, "-mb", "0.001", "-batch-records", "1")
            return
        except RuntimeError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


STEPS = ("produce acks=1", "produce acks=all", "fetch", "fetch, N conns")


def step_args(step: str, args) -> tuple[str, str, list[str]]:
    """topic, mode and wirebench's flags for a step."""
    mb = str(args.mb)
    return {
        "produce acks=1": ("bound-1", "produce", ["-acks", "1", "-mb", mb]),
        "produce acks=all": ("bound-all", "produce", ["-acks", "-1", "-mb", mb]),
        "fetch": ("bound-1", "fetch", ["-mb", mb]),
        "fetch, N conns": ("bound-1", "fetch", ["-mb", mb, "-connections", str(args.partitions)]),
    }[step]


def prepare(broker, args) -> None:
    for topic in ("bound-1", "bound-all"):
        perf_tools.java(perf_tools.TOPICS, "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
                        "--partitions", str(args.partitions), "--replication-factor", "1")
        wait_writable(broker, topic, args)


def run_all(brokers: list[tuple[str, object]], args) -> list[dict]:
    """Both brokers up at once, each step run on one then the other, the order turned
    round every repeat: on this VM, writing into page-cache memory the host has not
    backed yet (or took back) is several times slower than into memory it has, so
    whichever broker wrote first would be favoured (plain dd: 2 GB files at 5.7, 2.6,
    4.0 then 0.5 GB/s in a row)."""
    results = [{"label": label, "steps": {s: [] for s in STEPS}} for label, _ in brokers]
    for i in range(args.repeat):
        order = list(zip(brokers, results))
        if i % 2:
            order.reverse()
        for step in STEPS:
            topic, mode, extra = step_args(step, args)
            for (label, broker), result in order:
                r = wirebench(broker, topic, mode, args, *extra)
                result["steps"][step].append(r)
                print(f"{label}: {step} run {i + 1}: {r['MB/s']:,.1f} MB/s, p50 {r['p50 ms']:.2f} ms, "
                      f"p99 {r['p99 ms']:.2f} ms, broker CPU {r['broker CPU s/GB']:.2f} s/GB, "
                      f"generator CPU {r['client CPU s']:.2f} s", flush=True)
    for (_, broker), result in zip(brokers, results):
        result["peak RSS MiB"] = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
    return results


def print_table(runs: list[dict], args) -> None:
    print(f"\nBroker-bound throughput (wirebench): {args.mb:,} MB a step of 1 KiB records in "
          f"batches of 250, {args.partitions} partitions")
    rows = [(step.replace("N conns", f"{args.partitions} conns"), i + 1, [r["steps"][step][i] for r in runs])
            for step in STEPS for i in range(args.repeat)]
    common.print_side_by_side([r["label"] for r in runs], "step", rows, [
        ("MB/s", "MB/s", 18, ",.1f"), ("p99 ms", "p99 ms", 18, ",.2f"),
        ("broker CPU s/GB", "CPU s/GB", 20, ",.2f")])
    print("  peak RSS MiB" + "".join(f"   {r['label']}: {r['peak RSS MiB']:,.1f}" for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1000, help="MB each step moves (default 1,000)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each step (default 2)")
    ap.add_argument("--no-kafka", action="store_true", help="Sluice only")
    args = ap.parse_args()
    if not WIREBENCH.is_file():
        sys.exit(f"{WIREBENCH} missing: run compat/go/build.sh")

    with tempfile.TemporaryDirectory(prefix="bound-sluice-") as ds, \
            tempfile.TemporaryDirectory(prefix="bound-kafka-") as dk:
        brokers = [("Sluice", common.Sluice(Path(ds)))]
        if not args.no_kafka:
            brokers.append(("Kafka 4.4", common.Kafka(workdir=Path(dk))))
        started = []
        try:
            for label, broker in brokers:
                started.append(broker.start())
                prepare(broker, args)
            runs = run_all(brokers, args)
        finally:
            for broker in started:
                broker.stop()
    print_table(runs, args)


if __name__ == "__main__":
    main()
