#!/usr/bin/env python3
"""Consume throughput of two non-Java clients, Sluice beside Apache Kafka 4.4 in one run
(issue #17, point 1).

For each broker (Sluice, then Kafka 4.4 unless --no-kafka), on a fresh data directory:

1. A topic `consume` of --partitions partitions (default 3) is filled once with
   --records records of --size bytes (default 500,000 x 1 KiB) by Kafka's own
   ProducerPerformance (acks=1, linger.ms=5, batch.size=256 KiB, as bench/perf-tools).
2. Each consumer reads the whole topic --repeat times (default 2), alternating:
   - librdkafka through confluent-kafka (a child process of this script, the venv's
     python): assign() of every partition at OFFSET_BEGINNING (no group membership, no
     commits), consume() batches of up to 10,000 messages in a loop, librdkafka's
     default fetch settings (`--rdkafka-config KEY=VALUE`, repeatable, to change one:
     the default fetch.queue.backoff.ms of 1,000 ms, not the broker, bounds it here);
   - franz-go (compat/go/consumebench): kgo.ConsumeTopics without a group (every
     partition directly, from the start), franz-go's default fetch settings.
   Both count key + value bytes and time from the first poll that returned records to
   the last record (the first poll's own transfer is not timed: under 1% here).
3. Per run: MB/s (10^6 bytes), records/s, the broker's CPU seconds (utime+stime of its
   process over the client's whole life, start-up and connection included) and the
   client's CPU seconds (the child process's rusage), and broker CPU s per GB (10^9
   bytes) read.

Everything runs on the same cores: the client's CPU is taken from the broker's.
Numbers, not assertions: exits 1 only if a step failed."""

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

CONSUMEBENCH = common.REPO_DIR / "compat" / ".cache" / "go-bin" / "consumebench"
TOPIC = "consume"
CLIENTS = ("librdkafka", "franz-go")


# --- the confluent-kafka consumer (run as a child: `consume_clients.py --rdkafka-child ...`)

def rdkafka_child(bootstrap: str, topic: str, partitions: int, records: int, timeout: float,
                  extra: list[str]) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    created = time.perf_counter()
    config = {"bootstrap.servers": bootstrap, "group.id": f"consume-bench-{time.time_ns()}",
              "enable.auto.commit": False, "enable.auto.offset.store": False}
    config.update(kv.split("=", 1) for kv in extra)
    c = Consumer(config)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    n = size = errors = 0
    first = last = None
    deadline = created + timeout
    while n < records and time.perf_counter() < deadline:
        msgs = c.consume(num_messages=10_000, timeout=1.0)
        if not msgs:
            continue
        for m in msgs:
            if m.error():
                errors += 1
                if errors <= 10:
                    print(f"rdkafka consumer: {m.error()}", file=sys.stderr)
                continue
            n += 1
            size += len(m.value() or b"") + len(m.key() or b"")
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
    c.close()
    print(json.dumps({"records": n, "bytes": size, "errors": errors,
                      "seconds": (last - first) if first else 0.0,
                      "connect_seconds": (first - created) if first else 0.0}))
    sys.exit(0 if n >= records else 1)


# --- the runs ---------------------------------------------------------------------------

def run_client(broker, client: str, args) -> dict:
    if client == "librdkafka":
        cmd = [sys.executable, __file__, "--rdkafka-child", broker.bootstrap,
               "--records", str(args.records), "--partitions", str(args.partitions),
               "--timeout", str(args.timeout)]
        for kv in args.rdkafka_config:
            cmd += ["--rdkafka-config", kv]
    else:
        cmd = [str(CONSUMEBENCH), "-brokers", broker.bootstrap, "-topic", TOPIC,
               "-records", str(args.records), "-timeout", f"{args.timeout}s"]
    broker_before, client_before = common.cpu_seconds(broker.proc.pid), common.children_cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout + 30)
    broker_cpu = common.cpu_seconds(broker.proc.pid) - broker_before
    client_cpu = common.children_cpu_seconds() - client_before
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"{client} consumer failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    secs = r["seconds"] or float("nan")
    return {"MB/s": r["bytes"] / 1e6 / secs, "rec/s": r["records"] / secs, "seconds": r["seconds"],
            "first record s": r["connect_seconds"], "records": r["records"], "errors": r["errors"],
            "broker CPU s": broker_cpu, "client CPU s": client_cpu,
            "broker CPU s/GB": broker_cpu / (r["bytes"] / 1e9),
            # franz-go's own counts of what arrived and what its runtime did with it
            "wire": {k: r[k] for k in ("fetch_responses", "fetch_bytes", "batches", "batch_bytes",
                                       "gc_cycles", "allocated_bytes") if k in r}}


def wire_summary(w: dict) -> str:
    """franz-go's view of the Fetch responses (empty for librdkafka, which reports none)."""
    if not w:
        return ""
    return (f"; {w['fetch_responses']:,} Fetch responses of {w['fetch_bytes'] / max(w['fetch_responses'], 1) / 1024:,.0f} KiB, "
            f"{w['batches']:,} batches of {w['batch_bytes'] / max(w['batches'], 1) / 1024:,.0f} KiB, "
            f"client GC cycles {w['gc_cycles']}, allocated {w['allocated_bytes'] / 2**20:,.0f} MiB")


def run(broker, label: str, args) -> dict:
    perf_tools.java(perf_tools.TOPICS, "--bootstrap-server", broker.bootstrap, "--create", "--topic", TOPIC,
                    "--partitions", str(args.partitions), "--replication-factor", "1")
    fill = perf_tools.with_cpu(broker, lambda: perf_tools.produce(
        broker.bootstrap, TOPIC, args.records, args.size, "1", args.fill_linger_ms))
    print(f"{label}: filled {args.records:,} records at {fill['MB/s']:,.1f} MB/s "
          f"(broker CPU {fill['broker CPU s']:.1f} s)", flush=True)
    results = {"label": label, "fill": fill, "runs": {c: [] for c in CLIENTS}}
    for i in range(args.repeat):
        for client in CLIENTS:
            r = run_client(broker, client, args)
            results["runs"][client].append(r)
            print(f"{label}: {client} run {i + 1}: {r['MB/s']:,.1f} MB/s, {r['rec/s']:,.0f} records/s, "
                  f"{r['seconds']:.2f} s, broker CPU {r['broker CPU s']:.2f} s, "
                  f"client CPU {r['client CPU s']:.2f} s{wire_summary(r['wire'])}", flush=True)
    results["peak RSS MiB"] = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
    return results


def print_table(runs: list[dict], args) -> None:
    mb = args.records * args.size / 1e6
    print(f"\nConsume throughput: {args.records:,} records of {args.size} B ({mb:,.0f} MB), "
          f"{args.partitions} partitions, filled by ProducerPerformance (acks=1); "
          f"default fetch settings, no group"
          + (f"; librdkafka {', '.join(args.rdkafka_config)}" if args.rdkafka_config else ""))
    rows = [(client, i + 1, [r["runs"][client][i] for r in runs])
            for client in CLIENTS for i in range(args.repeat)]
    common.print_side_by_side([r["label"] for r in runs], "client", rows, [
        ("MB/s", "MB/s", 20, ",.1f"), ("broker CPU s/GB", "CPU s/GB", 24, ",.2f"),
        ("client CPU s", "client CPU s", 28, ",.2f")])
    print("\n  records/s" + "".join(
        f"\n  {client:12} " + "   ".join(
            f"{r['label']}: " + " / ".join(f"{x['rec/s']:,.0f}" for x in r["runs"][client]) for r in runs)
        for client in CLIENTS))
    print("\n  fill (ProducerPerformance)" + "".join(
        f"   {r['label']}: {r['fill']['MB/s']:,.1f} MB/s" for r in runs))
    print("  peak RSS MiB" + "".join(f"   {r['label']}: {r['peak RSS MiB']:,.1f}" for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each consumer (default 2)")
    ap.add_argument("--timeout", type=int, default=180, help="seconds a consumer may take (default 180)")
    ap.add_argument("--fill-linger-ms", type=int, default=5,
                    help="ProducerPerformance's linger.ms for the fill (default 5; the faster broker "
                         "acks sooner, so its batches come out smaller: a long linger fills every "
                         "batch to batch.size on both, for the same layout on disk)")
    ap.add_argument("--no-kafka", action="store_true", help="Sluice only")
    ap.add_argument("--rdkafka-config", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka consumer setting over the defaults (repeatable)")
    ap.add_argument("--rdkafka-child", metavar="BOOTSTRAP", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.rdkafka_child:
        rdkafka_child(args.rdkafka_child, TOPIC, args.partitions, args.records, args.timeout,
                      args.rdkafka_config)
        return
    if not CONSUMEBENCH.is_file():
        sys.exit(f"{CONSUMEBENCH} missing: run compat/go/build.sh")

    runs = []
    with tempfile.TemporaryDirectory(prefix="consume-sluice-") as d:
        broker = common.Sluice(Path(d)).start()
        try:
            runs.append(run(broker, "Sluice", args))
        finally:
            broker.stop()
    if not args.no_kafka:
        with tempfile.TemporaryDirectory(prefix="consume-kafka-") as d:
            broker = common.Kafka(workdir=Path(d)).start()
            try:
                runs.append(run(broker, "Kafka 4.4", args))
            finally:
                broker.stop()
    print_table(runs, args)


if __name__ == "__main__":
    main()
