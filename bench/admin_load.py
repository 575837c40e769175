#!/usr/bin/env python3
"""Admin load: the latency of Produce to one topic while another client creates
a very large topic. What a broker-wide lock held during topic creation would
cost every producer shows up here as a stall.

A confluent-kafka producer (acks=1, linger.ms=0, one 100-byte record in flight:
produce, then wait for its delivery report) writes to `steady` (1 partition)
without pause. After a warm-up, ~5 s of it alone are the baseline. Then an
AdminClient on another thread creates `wide` with --partitions partitions the
way a Kafka user must (Apache Kafka's controller refuses more than 10,000
metadata records in one request, and a topic of N partitions is N+1 records):
CreateTopics with half of them, then, after its result, CreatePartitions to the
total. The window from the first admin request to one second after the later of
the second's result and the last partition directory on disk (Kafka answers
once its controller has committed the records; its broker makes the logs
afterwards) gives the during-create percentiles; a record counts in it when its
flight (produce call to delivery report) overlaps the window. With one record in
flight a stall is one slow record: it shows in the max, not in the p99.

Sluice (each --sluice-bin, labelled by its path, so that two builds compare in
one run), then with --kafka Apache Kafka 4.4 (single-node KRaft from the compat
jars). Numbers only: the load generator shares the machine with the broker."""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

import common
from brokers import sluice_bin  # noqa: E402  (compat/python, on the path that common sets)

STEADY = "steady"
WIDE = "wide"
SLOW_MS = 100  # a record slower than this counts as stalled


def raise_open_file_limit(partitions: int) -> tuple[int, int]:
    """Every partition holds a few files open (Sluice: the active segment's log
    and its two indexes; Kafka: the log), so the children inherit a limit with
    room for them."""
    return common.raise_open_file_limit(max(65_536, 4 * partitions + 4_096))


def SteadyProducer(bootstrap: str, size: int, message_timeout_ms: int) -> common.SteadyProducer:
    return common.SteadyProducer(bootstrap, STEADY, size, message_timeout_ms)


class WideCreator(threading.Thread):
    """CreateTopics(first), then CreatePartitions(total) once the first is done;
    the perf_counter at each request's start and result. A refused request ends
    the run of requests: `failure` says which and why."""

    def __init__(self, admin: AdminClient, first: int, total: int, timeout: float, log_dir: Path):
        super().__init__(daemon=True, name="wide-creator")
        self.admin, self.first, self.total, self.timeout = admin, first, total, timeout
        self.log_dir = log_dir
        self.marks: dict[str, float] = {}
        self.failure: str | None = None

    def run(self) -> None:
        step = "CreateTopics"
        try:
            self.marks["create start"] = time.perf_counter()
            futures = self.admin.create_topics(
                [NewTopic(WIDE, num_partitions=self.first, replication_factor=1)],
                request_timeout=self.timeout, operation_timeout=self.timeout)
            futures[WIDE].result(self.timeout + 10)
            self.marks["create end"] = time.perf_counter()
            if self.total > self.first:
                step = "CreatePartitions"
                self.marks["partitions start"] = time.perf_counter()
                futures = self.admin.create_partitions(
                    [NewPartitions(WIDE, self.total)],
                    request_timeout=self.timeout, operation_timeout=self.timeout)
                futures[WIDE].result(self.timeout + 10)
                self.marks["partitions end"] = time.perf_counter()
            # Kafka answers once the controller has committed the records; its broker
            # creates the logs afterwards. The work is over when they are all on disk.
            step = "waiting for the partition directories"
            deadline = time.perf_counter() + self.timeout
            while on_disk(self.log_dir) < self.total:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{on_disk(self.log_dir)} of {self.total} on disk "
                                       f"after {self.timeout:.0f} s")
                time.sleep(0.05)
            self.marks["on disk"] = time.perf_counter()
        except BaseException as e:
            self.marks["failed"] = time.perf_counter()
            self.failure = f"{step}: {e}"
            self.marks["failed after"] = self.marks["failed"] - self.marks[
                {"CreateTopics": "create start", "CreatePartitions": "partitions start"}.get(step, "create start")]


def stats(records: list[tuple[float, float, bool]], start: float, end: float) -> dict:
    """Latencies (ms) of the records whose flight overlaps [start, end]."""
    inside = [(d - s) * 1000 for s, d, ok in records if s <= end and d >= start and ok]
    errors = sum(1 for s, d, ok in records if s <= end and d >= start and not ok)
    inside.sort()
    slow = [x for x in inside if x > SLOW_MS]
    if not inside:
        return {"count": 0, "errors": errors, "p50": float("nan"), "p99": float("nan"), "max": float("nan"),
                "slow": 0, "slow s": 0.0}

    def pct(q: float) -> float:
        return inside[min(len(inside) - 1, int(q * len(inside)))]

    return {"count": len(inside), "errors": errors, "p50": pct(0.50), "p99": pct(0.99), "max": inside[-1],
            "slow": len(slow), "slow s": sum(slow) / 1000}


def on_disk(log_dir: Path) -> int:
    """Partition directories of the wide topic (`wide-<n>`, the same layout in both)."""
    with os.scandir(log_dir) as it:
        return sum(1 for e in it if e.name.startswith(WIDE + "-"))


def measure(bootstrap: str, pid: int, log_dir: Path, args) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(STEADY, num_partitions=1, replication_factor=1)])[STEADY].result(60)
    admin.list_topics(STEADY, timeout=30)  # the admin connection is up before anything is timed

    producer = SteadyProducer(bootstrap, args.size, int(args.admin_timeout * 1000))
    producer.start()
    try:
        time.sleep(args.warmup)
        base_start = time.perf_counter()
        time.sleep(args.baseline)
        base_end = time.perf_counter()

        creator = WideCreator(admin, args.partitions // 2, args.partitions, args.admin_timeout, log_dir)
        creator.start()
        creator.join(2 * args.admin_timeout + 60)
        if creator.is_alive():
            raise TimeoutError("the admin requests did not finish in time")
        marks = creator.marks
        window_end = max(v for k, v in marks.items() if k != "failed after") + args.after
        requests_end = max(v for k, v in marks.items() if k not in ("failed after", "on disk")) + args.after
        time.sleep(args.after)
        fds = common.open_fds(pid)
    finally:
        producer.finish()
    failure = creator.failure
    if failure is None:
        # What was asked for must be there: an admin call that "succeeded" by doing
        # nothing would make a very fast, very wrong result.
        deadline = time.perf_counter() + 60
        while True:  # the metadata may trail the logs by a moment
            md = admin.list_topics(WIDE, timeout=60).topics[WIDE]
            if (md.error is None and len(md.partitions) == args.partitions) or time.perf_counter() > deadline:
                break
            time.sleep(1)
        if md.error is not None or len(md.partitions) != args.partitions:
            failure = (f"{WIDE} has {len(md.partitions)} partitions (error {md.error}), "
                       f"expected {args.partitions}")

    records = producer.records
    start = marks["create start"]
    worst = max((r for r in records if r[0] <= window_end and r[1] >= start),
                key=lambda r: r[1] - r[0], default=None)
    return {
        "baseline": stats(records, base_start, base_end),
        "during": stats(records, start, window_end),
        "during requests": stats(records, start, requests_end),
        "on disk s": marks["on disk"] - start if "on disk" in marks else None,
        # seconds, or None if not attempted, or ("failed", seconds)
        "create s": (marks["create end"] - start if "create end" in marks
                     else ("failed", marks["failed after"])),
        "partitions s": (marks["partitions end"] - marks["partitions start"] if "partitions end" in marks
                         else ("failed", marks["failed after"]) if "partitions start" in marks else None),
        "window s": window_end - start,
        # when the slowest record of the window was sent, from the start of CreateTopics
        "worst sent at s": (worst[0] - start) if worst else float("nan"),
        "delivery errors": producer.errors[:3],
        "failure": failure,
        "open fds": fds,
    }


def run_broker(broker, args) -> dict:
    try:
        result = measure(broker.bootstrap, broker.proc.pid, broker.log_dir, args)
        result["peak RSS MiB"] = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
        return result
    finally:
        broker.stop(timeout=120)


def run_sluice(binary: Path, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="admin-load-sluice-") as d:
        return run_broker(common.Sluice(Path(d), binary=binary).start(), args)


def run_kafka(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="admin-load-kafka-") as d:
        return run_broker(common.Kafka(workdir=Path(d)).start(timeout=180), args)


def seconds(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return f"fail@{v[1]:.2f}"
    return f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka", action="store_true", help="also run against Apache Kafka")
    ap.add_argument("--partitions", type=int, default=10_000,
                    help="partitions of the wide topic in all: CreateTopics with half, "
                         "CreatePartitions to the total (default 10000)")
    ap.add_argument("--sluice-bin", action="append", type=Path, metavar="PATH",
                    help="a Sluice binary; repeat to compare builds in one run "
                         "(default $SLUICE_BIN or target/release/sluice)")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of baseline (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds produced before the baseline")
    ap.add_argument("--after", type=float, default=1.0,
                    help="seconds the window runs past the end of the creation (default 1)")
    ap.add_argument("--size", type=int, default=100, help="record value size in bytes (default 100)")
    ap.add_argument("--admin-timeout", type=float, default=300.0,
                    help="seconds each admin request may take (default 300)")
    args = ap.parse_args()
    if args.partitions < 2:
        ap.error("--partitions must be at least 2")
    # Absolute: the broker runs in its temporary directory.
    binaries = [b.absolute() for b in (args.sluice_bin or [sluice_bin()])]
    for b in binaries:
        if not b.is_file():
            ap.error(f"no Sluice binary at {b}")

    soft, hard = raise_open_file_limit(args.partitions)
    first = args.partitions // 2
    print(f"wide topic: CreateTopics {first:,} partitions, then CreatePartitions to {args.partitions:,}; "
          f"steady producer: {args.size} B records, acks=1, one in flight; open-file limit {soft}/{hard}; "
          f"{os.cpu_count()} CPUs; librdkafka {__import__('confluent_kafka').libversion()[0]}", flush=True)

    runs: list[tuple[str, str, dict]] = []  # (label, kind, result)
    broken: list[str] = []
    for b in binaries:
        label = f"Sluice {b}"
        print(f"... Sluice {b}", flush=True)
        try:
            runs.append((label, "sluice", run_sluice(b, args)))
        except Exception as e:  # one broker's failure must not lose the others' numbers
            print(f"  FAILED {label}: {e}", flush=True)
            broken.append(label)
    if args.kafka:
        print("... Apache Kafka", flush=True)
        try:
            runs.append(("Apache Kafka 4.4", "kafka", run_kafka(args)))
        except Exception as e:
            print(f"  FAILED Apache Kafka: {e}", flush=True)
            broken.append("Apache Kafka 4.4")
    if not runs:
        raise SystemExit(1)

    width = max(16, *(len(label) for label, _, _ in runs))
    print()
    print(f"{'':{width}}  {'baseline (ms)':>26}  {'during create (ms)':>35}  {'CreateTopics':>12}  "
          f"{'CreatePart.':>12}  {'all on disk':>12}")
    print(f"{'broker':{width}}  {'p50':>8}{'p99':>9}{'max':>9}  {'p50':>8}{'p99':>9}{'max':>9}{'n/err':>9}  "
          f"{'s':>12}  {'s':>12}  {'s':>12}")
    for label, _, r in runs:
        b, d = r["baseline"], r["during"]
        print(f"{label:{width}}  {b['p50']:8.2f}{b['p99']:9.2f}{b['max']:9.2f}  "
              f"{d['p50']:8.2f}{d['p99']:9.2f}{d['max']:9.2f}{d['count']:>7}/{d['errors']:<1}  "
              f"{seconds(r['create s']):>12}  {seconds(r['partitions s']):>12}  {seconds(r['on disk s']):>12}")
    print(f"(during create: from the CreateTopics call to 1 s after the later of the CreatePartitions "
          f"result and the last `{WIDE}-<n>` directory on disk; all on disk: from the CreateTopics call)")
    print()
    for label, _, r in runs:
        note = f"; delivery errors: {r['delivery errors']}" if r["delivery errors"] else ""
        q = r["during requests"]
        print(f"{label}: baseline {r['baseline']['count']} records; window {r['window s']:.2f} s, "
              f"its slowest record sent {r['worst sent at s']:+.2f} s after CreateTopics began; "
              f"{r['during']['slow']} records over {SLOW_MS} ms in it, {r['during']['slow s']:.2f} s in all; "
              f"up to 1 s after the admin results only: p50 {q['p50']:.2f} p99 {q['p99']:.2f} "
              f"max {q['max']:.2f} ms ({q['count']} records); "
              f"{r['open fds']:,} open files after; peak RSS {r['peak RSS MiB']:,.0f} MiB{note}")
        if r["failure"]:
            print(f"  FAILED {r['failure']}")
    kafka = [r for _, kind, r in runs if kind == "kafka"]
    if kafka:
        k = kafka[0]["during"]
        for label, kind, r in runs:
            if kind == "sluice":
                # One record in flight: a stall is one slow record, which p99 can hide; max shows it.
                print(f"{label}/Kafka, during create: p99 {r['during']['p99'] / k['p99']:.2f}x, "
                      f"max {r['during']['max'] / k['max']:.2f}x")
    if broken or any(r["failure"] for _, _, r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
