#!/usr/bin/env python3
"""A broker per test: the cost an integration suite pays when every test gets
a fresh broker, Sluice beside Apache Kafka 4.4.

The same small suite runs twice, once per broker: --tests tests, each
starting its own broker, then doing what an integration test of a Kafka
application does with kafka-python (auto-create a topic by producing
--records records, read them back in a consumer group, commit), then
stopping the broker. Sluice starts as `sluice --ephemeral` through the
pytest fixture users copy (fixtures/python/pytest_sluice.py, ready when its
JSON line arrives); Kafka as the compat suite starts it (format, then the
JVM, ready when ApiVersions is answered). Prints per test the median start,
test body and stop times, and the suite's wall time for each broker.

Numbers only: the client shares the 2 cores with the broker."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

import common

sys.path.insert(0, str(common.REPO_DIR / "fixtures" / "python"))
from pytest_sluice import start_sluice  # noqa: E402


def integration_test(bootstrap: str, records: int) -> None:
    """Produce to a new topic, read everything back in a group, commit."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for i in range(records):
        producer.send("orders", key=str(i).encode(), value=b"order-%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer("orders", bootstrap_servers=bootstrap, group_id="billing",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=30_000)
    seen = 0
    for _ in consumer:
        seen += 1
        if seen == records:
            break
    consumer.commit()
    consumer.close()
    if seen != records:
        raise RuntimeError(f"read {seen} of {records} records")


@contextmanager
def sluice_broker():
    with start_sluice() as broker:
        yield broker.bootstrap


@contextmanager
def kafka_broker():
    with tempfile.TemporaryDirectory(prefix="per-test-kafka-") as d:
        broker = common.Kafka(workdir=Path(d)).start(timeout=180)
        try:
            yield broker.bootstrap
        finally:
            broker.stop()


def run_suite(label: str, broker, tests: int, records: int) -> dict:
    starts, bodies, stops = [], [], []
    suite_start = time.perf_counter()
    for _ in range(tests):
        t0 = time.perf_counter()
        context = broker()
        bootstrap = context.__enter__()
        t1 = time.perf_counter()
        try:
            integration_test(bootstrap, records)
        finally:
            t2 = time.perf_counter()
            context.__exit__(None, None, None)
            t3 = time.perf_counter()
        starts.append(t1 - t0)
        bodies.append(t2 - t1)
        stops.append(t3 - t2)
    wall = time.perf_counter() - suite_start
    result = {"start s": statistics.median(starts), "test body s": statistics.median(bodies),
              "stop s": statistics.median(stops), "suite wall s": wall}
    print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", type=int, default=10, help="tests in the suite (default 10)")
    ap.add_argument("--records", type=int, default=100, help="records each test produces (default 100)")
    ap.add_argument("--no-kafka", action="store_true", help="Sluice only")
    args = ap.parse_args()
    print(f"{args.tests} tests, a fresh broker each, {args.records} records per test", flush=True)
    runs = {"Sluice": run_suite("Sluice", sluice_broker, args.tests, args.records)}
    if not args.no_kafka:
        runs["Kafka 4.4"] = run_suite("Kafka 4.4", kafka_broker, args.tests, args.records)
    labels = list(runs)
    print("\n| per test (median) | " + " | ".join(labels) + (" | Kafka / Sluice |" if len(labels) == 2 else " |"))
    print("|---" * (len(labels) + 1 + (len(labels) == 2)) + "|")
    for key in runs["Sluice"]:
        cells = [f"{runs[l][key]:.3f}" for l in labels]
        ratio = [f"{runs['Kafka 4.4'][key] / runs['Sluice'][key]:.1f}×"] if len(labels) == 2 else []
        print(f"| {key} | " + " | ".join(cells + ratio) + " |")


if __name__ == "__main__":
    main()
