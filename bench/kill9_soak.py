#!/usr/bin/env python3
"""kill -9 soak: N cycles of SIGKILL and restart of a single broker on the same data
directory and port, under continuous acks=all idempotent load from real clients
(confluent-kafka / librdkafka, and kafka-python), then every partition read back from
the beginning. Prints records sent, acknowledged, failed (delivery finally reported as
an error: allowed), lost (acknowledged, never read back), duplicated (a value read more
than once: the producers are idempotent, so none is allowed), unexpected (read, never
sent) and moved (acknowledged at one offset, read at another), the time from each restart
to the first answered request and to the first acknowledgement, and the total time.
Exits non-zero if anything was lost, duplicated or moved, or a cycle stalled.

Sluice by default; --kafka runs Apache Kafka 4.4 (KRaft, one combined node, from the
compat jars) after it, --kafka-only Kafka alone. The core, soak(), is also the compat
suite's short case (compat/python/test_kill9_soak.py)."""

from __future__ import annotations

import argparse
import bisect
import collections
import logging
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import confluent_kafka
import kafka
import kafka.errors
from kafka.admin import KafkaAdminClient, NewTopic

import common
import clients  # compat/python, on the path through common

# Outstanding records per producer at most: acknowledgements keep pace with sends, and
# a restart leaves a bounded amount for the client to retry.
MAX_BACKLOG = 5000


# ---------------------------------------------------------------- load

class Load(threading.Thread):
    """A producer thread sending numbered records at a steady rate until stopped. Every
    value is unique (tag + sequence number); keeps where each acknowledged value went
    and why each failed one failed."""

    client = "?"
    tag = b"?"

    def __init__(self, topic: str, partitions: int, rate: float, record_bytes: int):
        super().__init__(daemon=True)
        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.padding = b"." * max(0, record_bytes - 16)
        self.sent = 0
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.failed: dict[bytes, str] = {}
        self.errors: collections.Counter = collections.Counter()  # client-level, by name
        self.fatal = 0  # producers replaced after a fatal (idempotence) error
        self.ack_times: list[float] = []  # monotonic, in the order acknowledgements came
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def value(self, n: int) -> bytes:
        return b"%s:%010d:" % (self.tag, n) + self.padding

    def _on_acked(self, value: bytes, partition: int, offset: int) -> None:
        with self._lock:
            self.acked[value] = (partition, offset)
            self.ack_times.append(time.monotonic())

    def _on_failed(self, value: bytes, reason: str) -> None:
        with self._lock:
            self.failed[value] = reason

    def acked_since(self, t: float) -> int:
        with self._lock:
            return len(self.ack_times) - bisect.bisect_right(self.ack_times, t)

    def outstanding(self) -> int:
        with self._lock:
            return self.sent - len(self.acked) - len(self.failed)

    def run(self) -> None:
        start = time.monotonic()
        while not self._halt.is_set():
            due = int((time.monotonic() - start) * self.rate) + 1
            while self.sent < due and self.outstanding() < MAX_BACKLOG and not self._halt.is_set():
                if not self.send(self.sent):
                    break
                with self._lock:
                    self.sent += 1
            self.idle()

    def halt(self) -> None:
        self._halt.set()
        self.join(30)

    # Per client: send(n) -> bool (False: not taken, try later), idle(), finish(timeout).


class CkLoad(Load):
    """confluent-kafka (librdkafka): acks=all, enable.idempotence=true."""

    client = "confluent-kafka"
    tag = b"ck"

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: float, record_bytes: int,
                 message_timeout_s: float):
        super().__init__(topic, partitions, rate, record_bytes)
        self.config = {
            "bootstrap.servers": bootstrap, "client.id": "kill9-soak-ck",
            "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": int(message_timeout_s * 1000),
            # librdkafka's backoff doubles up to 10 s by default: reconnect soon after a restart.
            "reconnect.backoff.max.ms": 1000,
            # Every kill is a refused connection or two: counted by error_cb, not logged.
            "log_level": 2,
            "error_cb": self._on_error}
        self._fatal_seen = threading.Event()
        self.producer = confluent_kafka.Producer(self.config)

    def _on_error(self, err) -> None:
        with self._lock:
            self.errors[err.name()] += 1
        if err.fatal():
            self._fatal_seen.set()

    def _delivered(self, err, msg) -> None:
        if err is None:
            self._on_acked(msg.value(), msg.partition(), msg.offset())
        else:
            self._on_failed(msg.value(), err.name())

    def send(self, n: int) -> bool:
        try:
            self.producer.produce(self.topic, self.value(n), partition=n % self.partitions,
                                  on_delivery=self._delivered)
            return True
        except BufferError:
            return False

    def idle(self) -> None:
        self.producer.poll(0.01)
        if self._fatal_seen.is_set():
            # A fatal error fails everything outstanding and the producer for good: count
            # it, let the failures be reported, and go on with a new producer (a new id).
            self.fatal += 1
            self.producer.flush(10)
            self.producer = confluent_kafka.Producer(self.config)
            self._fatal_seen.clear()

    def finish(self, timeout: float) -> None:
        self.producer.flush(timeout)


class KpLoad(Load):
    """kafka-python: acks=all, enable_idempotence=True."""

    client = "kafka-python"
    tag = b"kp"

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: float, record_bytes: int,
                 message_timeout_s: float):
        super().__init__(topic, partitions, rate, record_bytes)
        self.producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap, client_id="kill9-soak-kp", acks="all",
            enable_idempotence=True, linger_ms=5, request_timeout_ms=10000,
            delivery_timeout_ms=int(message_timeout_s * 1000), reconnect_backoff_max_ms=1000,
            max_block_ms=1000)

    def send(self, n: int) -> bool:
        value = self.value(n)
        try:
            future = self.producer.send(self.topic, value=value, partition=n % self.partitions)
        except kafka.errors.KafkaTimeoutError:  # buffer full or no metadata yet: later
            return False
        future.add_callback(lambda md, v=value: self._on_acked(v, md.partition, md.offset))
        future.add_errback(lambda e, v=value: self._on_failed(v, type(e).__name__))
        return True

    def idle(self) -> None:
        time.sleep(0.01)

    def finish(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout)
        except kafka.errors.KafkaTimeoutError:
            timeout = 0  # what is left counts as unanswered
        try:
            self.producer.close(timeout=min(timeout, 5))
        except kafka.errors.KafkaTimeoutError:
            pass  # close() flushes again; its sender is a daemon thread and dies with us


# ---------------------------------------------------------------- cycles

@dataclass
class Cycle:
    acked: dict[str, int]  # per producer, from the cycle's start to the kill
    outstanding: dict[str, int]  # per producer, at the kill
    first_answer_s: float  # restart to the first answered ApiVersions
    first_ack_s: float  # restart to the first acknowledgement of any producer


class Stalled(Exception):
    pass


def wait_for(predicate, deadline: float, what: str) -> None:
    while not predicate():
        if time.monotonic() > deadline:
            raise Stalled(what)
        time.sleep(0.002)


def one_cycle(broker, loads: list[Load], acks_before_kill: int, timeout: float) -> Cycle:
    """Some records acknowledged since the last restart, kill -9 with records outstanding,
    restart on the same data and port, wait for the first answer and the first ack."""
    began = time.monotonic()
    deadline = began + timeout
    wait_for(lambda: sum(l.acked_since(began) for l in loads) >= acks_before_kill, deadline,
             f"fewer than {acks_before_kill} acknowledgements within {timeout:.0f} s")
    # The kill lands while the producers have records outstanding (on a loaded machine the
    # clients can momentarily have none).
    wait_for(lambda: any(l.outstanding() > 0 for l in loads), deadline, "no records outstanding to kill under")
    acked = {l.client: l.acked_since(began) for l in loads}
    outstanding = {l.client: l.outstanding() for l in loads}
    broker.kill()
    t0 = time.perf_counter()
    restarted = time.monotonic()
    broker.restart()
    first_answer = common.wait_first_answer(broker.port, t0, limit=timeout)
    wait_for(lambda: sum(l.acked_since(restarted) for l in loads) > 0, restarted + timeout,
             f"no acknowledgement within {timeout:.0f} s of the restart")
    first_ack = time.monotonic() - restarted
    return Cycle(acked, outstanding, first_answer, first_ack)


# ---------------------------------------------------------------- check

def read_back(bootstrap: str, topic: str, partitions: int, timeout: float = 300.0) -> dict[tuple[int, int], bytes]:
    """Every record of every partition, from offset 0 to the high watermark read first."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"kill9-soak-check-{time.time_ns()}",
        "enable.auto.commit": False, "enable.auto.offset.store": False})
    try:
        tps = [confluent_kafka.TopicPartition(topic, p) for p in range(partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in range(partitions)])
        records: dict[tuple[int, int], bytes] = {}
        position = {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while any(position[p] < ends[p] for p in range(partitions)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read up to {position} of {ends} in {timeout:.0f} s")
            for m in consumer.consume(1000, 1.0):
                if m.error():
                    if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        continue
                    raise confluent_kafka.KafkaException(m.error())
                records[(m.partition(), m.offset())] = m.value()
                position[m.partition()] = m.offset() + 1
        return records
    finally:
        consumer.close()


@dataclass
class Result:
    target: str
    cycles: list[Cycle] = field(default_factory=list)
    stalled: str | None = None
    per_producer: dict[str, dict[str, int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list] = field(default_factory=dict)
    # per producer: why records failed, and the errors the client reported (error_cb)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    client_errors: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        c = self.counts
        return (self.stalled is None and c.get("lost", 1) == 0 and c.get("duplicated", 1) == 0
                and c.get("moved", 1) == 0)


def count(loads: list[Load], records: dict[tuple[int, int], bytes]) -> tuple[dict, dict, dict]:
    """Totals, per-producer numbers and a few examples of each kind of fault."""
    seen = collections.Counter(records.values())
    where: dict[bytes, list[tuple[int, int]]] = collections.defaultdict(list)
    for pos, v in records.items():
        where[v].append(pos)
    sent_values = {l.value(n) for l in loads for n in range(l.sent)}
    per, examples = {}, collections.defaultdict(list)
    totals = collections.Counter()
    for l in loads:
        lost = [v for v in l.acked if seen[v] == 0]
        moved = [v for v, pos in l.acked.items() if seen[v] and records.get(pos) != v]
        duplicated = [v for n in range(l.sent) if seen[v := l.value(n)] > 1]
        row = {"sent": l.sent, "acked": len(l.acked), "failed": len(l.failed),
               "unanswered": l.sent - len(l.acked) - len(l.failed),
               "lost": len(lost), "duplicated": len(duplicated), "moved": len(moved),
               "failed but stored": sum(1 for v in l.failed if seen[v]), "fatal": l.fatal}
        per[l.client] = row
        totals.update(row)
        examples["lost"] += [(v[:14], l.acked[v]) for v in lost[:5]]
        examples["moved"] += [(v[:14], l.acked[v], where[v]) for v in moved[:5]]
        examples["duplicated"] += [(v[:14], where[v], l.acked.get(v)) for v in duplicated[:5]]
    unexpected = [(pos, v[:14]) for pos, v in records.items() if v not in sent_values]
    totals["unexpected"] = len(unexpected)
    totals["read"] = len(records)
    examples["unexpected"] = sorted(unexpected)[:5]
    return dict(totals), per, dict(examples)


# ---------------------------------------------------------------- soak

def create_topic(broker, topic: str, partitions: int, segment_bytes: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="kill9-soak-admin",
                             request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1,
                                      topic_configs={"segment.bytes": str(segment_bytes)})])
        clients.wait_for_leaders(admin, topic, partitions, timeout=60)
    finally:
        admin.close()
    clients.wait_for_serving(broker, topic, partitions, timeout=60)


def soak(broker, topic: str, *, cycles: int, partitions: int = 3, ck_rate: float = 2000,
         kp_rate: float = 200, record_bytes: int = 100, acks_before_kill: int = 1000,
         cycle_timeout: float = 60.0, message_timeout: float = 120.0, segment_bytes: int = 1 << 20,
         seed: int = 20261203, log=print) -> Result:
    """The soak against a started broker (anything with bootstrap, port, kill(), restart()).
    Each cycle waits for between acks_before_kill and twice as many acknowledgements (a
    seeded random number: the kills land at varied points) before the kill."""
    t_start = time.monotonic()
    result = Result(target=broker.kind)
    rng = random.Random(seed)
    create_topic(broker, topic, partitions, segment_bytes)
    loads: list[Load] = [CkLoad(broker.bootstrap, topic, partitions, ck_rate, record_bytes, message_timeout)]
    if kp_rate > 0:
        loads.append(KpLoad(broker.bootstrap, topic, partitions, kp_rate, record_bytes, message_timeout))
    for l in loads:
        l.start()
    try:
        for i in range(cycles):
            c = one_cycle(broker, loads, rng.randint(acks_before_kill, 2 * acks_before_kill), cycle_timeout)
            result.cycles.append(c)
            log(f"  cycle {i + 1}/{cycles}: killed after {c.acked} acks, with {c.outstanding} outstanding; first answer "
                f"{c.first_answer_s * 1000:.1f} ms, first ack {c.first_ack_s * 1000:.0f} ms after the restart")
    except Stalled as e:
        result.stalled = f"cycle {len(result.cycles) + 1}: {e}"
        log(f"  STALLED {result.stalled}")
    finally:
        for l in loads:
            l.halt()
        for l in loads:
            l.finish(message_timeout + 10)
    records = read_back(broker.bootstrap, topic, partitions)
    result.counts, result.per_producer, result.examples = count(loads, records)
    result.failures = {l.client: dict(collections.Counter(l.failed.values())) for l in loads}
    result.client_errors = {l.client: dict(l.errors) for l in loads}
    result.seconds = time.monotonic() - t_start
    return result


# ---------------------------------------------------------------- report

def spread(values: list[float], unit: float = 1000.0, fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    s = sorted(values)
    p90 = s[min(len(s) - 1, int(len(s) * 0.9))]
    return (f"median {fmt.format(statistics.median(s) * unit)}, p90 {fmt.format(p90 * unit)}, "
            f"max {fmt.format(s[-1] * unit)} ms")


def report(r: Result, label: str) -> None:
    c = r.counts
    print(f"\n{label}: {len(r.cycles)} kill -9 cycles in {r.seconds:.1f} s"
          + (f" (stopped early: {r.stalled})" if r.stalled else ""))
    print(f"  sent {c['sent']:,}  acked {c['acked']:,}  failed (not acked) {c['failed']:,}  "
          f"unanswered {c['unanswered']:,}")
    print(f"  lost {c['lost']}  duplicated {c['duplicated']}  unexpected {c['unexpected']}  "
          f"moved {c['moved']}  (read back {c['read']:,}; failed but stored {c['failed but stored']:,}, allowed)")
    for name, row in r.per_producer.items():
        print(f"    {name}: " + ", ".join(f"{k} {v:,}" for k, v in row.items()))
    print(f"  restart to first answer: {spread([x.first_answer_s for x in r.cycles])}")
    print(f"  restart to first ack:    {spread([x.first_ack_s for x in r.cycles], fmt='{:.0f}')}")
    for name in r.per_producer:
        if r.failures.get(name) or r.client_errors.get(name):
            print(f"    {name}: failed {r.failures[name]}, client errors {r.client_errors[name]}")
    for kind, xs in r.examples.items():
        if xs:
            print(f"  {kind}, e.g.: {xs}")


def new_sluice(workdir: Path, binary: Path):
    broker = common.Sluice(workdir, binary=binary)
    broker.port = common.free_port()  # the script's port, kept across restarts
    return broker.start()


def run(kind: str, args) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix=f"kill9-soak-{kind}-"))
    cycles = args.cycles if kind == "sluice" else args.kafka_cycles
    label = "Sluice" if kind == "sluice" else "Apache Kafka 4.4"
    print(f"{label}: {cycles} cycles, {args.partitions} partitions, data in {workdir}", flush=True)
    broker = new_sluice(workdir, args.sluice_bin) if kind == "sluice" else common.Kafka(workdir=workdir).start()
    try:
        r = soak(broker, "soak", cycles=cycles, partitions=args.partitions, ck_rate=args.rate,
                 kp_rate=args.kp_rate, record_bytes=args.record_bytes, acks_before_kill=args.acks,
                 cycle_timeout=args.cycle_timeout if kind == "sluice" else args.kafka_cycle_timeout,
                 message_timeout=args.message_timeout, segment_bytes=args.segment_bytes,
                 log=lambda s: print(s, flush=True))
    finally:
        broker.stop()
    report(r, label)
    if r.ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"  data and broker log kept in {workdir}")
    return r.ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=10, help="kill -9 cycles on Sluice (default 10)")
    ap.add_argument("--kafka", action="store_true", help="then the same against Apache Kafka 4.4")
    ap.add_argument("--kafka-only", action="store_true", help="Apache Kafka only")
    ap.add_argument("--kafka-cycles", type=int, default=5, help="cycles on Kafka (default 5: its restarts are slow)")
    ap.add_argument("--sluice-bin", type=Path, default=common.REPO_DIR / "target" / "release" / "sluice")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=2000, help="confluent-kafka records/s (default 2000)")
    ap.add_argument("--kp-rate", type=float, default=200, help="kafka-python records/s, 0: none (default 200)")
    ap.add_argument("--record-bytes", type=int, default=100)
    ap.add_argument("--acks", type=int, default=1000,
                    help="acknowledgements between restart and kill: a random number from N to 2N (default 1000)")
    ap.add_argument("--segment-bytes", type=int, default=1 << 20,
                    help="the topic's segment.bytes, so kills also land near segment rolls (default 1 MiB)")
    ap.add_argument("--cycle-timeout", type=float, default=60.0, help="bound on one Sluice cycle, s")
    ap.add_argument("--kafka-cycle-timeout", type=float, default=240.0, help="bound on one Kafka cycle, s")
    ap.add_argument("--message-timeout", type=float, default=120.0,
                    help="producers' delivery timeout, s: a record not acked by then counts as failed")
    ap.add_argument("--keep", action="store_true", help="keep the data directories even when all is well")
    ap.add_argument("--client-log", type=Path, help="kafka-python's log (INFO) to this file")
    args = ap.parse_args()
    if args.client_log:
        logging.basicConfig(filename=args.client_log, level=logging.INFO,
                            format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    kinds = (["sluice"] if not args.kafka_only else []) + (["kafka"] if args.kafka or args.kafka_only else [])
    if "sluice" in kinds and not args.sluice_bin.is_file():
        ap.error(f"no Sluice binary at {args.sluice_bin}")
    t0 = time.monotonic()
    ok = [run(kind, args) for kind in kinds]
    print(f"\ntotal {time.monotonic() - t0:.1f} s")
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
