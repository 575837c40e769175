"""Shared pieces of the benchmarks: starting brokers (the compat suite's own
classes), reading a process's memory, and timing the first answered request."""

from __future__ import annotations

import os
import resource
import socket
import struct
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR / "compat" / "python"))
sys.path.insert(0, str(REPO_DIR / "compat" / "kafka"))

from brokers import Kafka, Sluice  # noqa: E402
from apache_kafka import free_port  # noqa: E402


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's finished (waited-for) children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """One ApiVersions v0 round trip on a fresh connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            body = struct.pack(">hhih", 18, 0, 1, -1)
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv(s, 4))[0]
            frame = _recv(s, size)
            return struct.unpack(">i", frame[:4])[0] == 1 and struct.unpack(">h", frame[4:6])[0] == 0
    except OSError:
        return False


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("closed")
        buf += chunk
    return buf


def wait_first_answer(port: int, since: float, limit: float = 120.0) -> float:
    """Seconds from `since` (a perf_counter) until ApiVersions is answered."""
    while time.perf_counter() - since < limit:
        if api_versions("127.0.0.1", port, timeout=0.5):
            return time.perf_counter() - since
        time.sleep(0.001)
    raise TimeoutError(f"no answer on port {port} within {limit}s")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process, -1 if it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def open_file_limit(pid: int) -> str:
    """The soft/hard "Max open files" of a running process (what a broker inherited)."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return f"{soft}/{hard}"
    except OSError:
        pass
    return "?"


def raise_open_file_limit(want: int) -> tuple[int, int]:
    """RLIMIT_NOFILE of this process (and so of the brokers it starts) to at
    least `want`: soft and hard raised together when we may (root), else the
    soft limit up to the hard one. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft, hard
    try:
        new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class SteadyProducer(threading.Thread):
    """confluent-kafka, acks=1, linger.ms=0, one record in flight at a time to
    `topic`; (sent, delivered, ok) per record, on the perf_counter clock."""

    def __init__(self, bootstrap: str, topic: str, size: int, message_timeout_ms: int):
        from confluent_kafka import Producer
        super().__init__(daemon=True, name="steady-producer")
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": 1,
            "linger.ms": 0,
            "max.in.flight.requests.per.connection": 1,
            "enable.idempotence": False,
            "message.timeout.ms": message_timeout_ms,
        })
        self.topic = topic
        self.value = b"v" * size
        self.wait_limit = message_timeout_ms / 1000 + 30
        self.records: list[tuple[float, float, bool]] = []
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                done: list[tuple[float, bool]] = []

                def on_delivery(err, _msg, done=done):
                    done.append((time.perf_counter(), err is None))
                    if err is not None:
                        self.errors.append(str(err))

                sent = time.perf_counter()
                self.producer.produce(self.topic, value=self.value, on_delivery=on_delivery)
                deadline = sent + self.wait_limit
                while not done and time.perf_counter() < deadline:
                    self.producer.poll(0.1)
                if not done:  # message.timeout.ms should have fired before this
                    raise TimeoutError(f"no delivery report within {self.wait_limit:.0f} s")
                self.records.append((sent, done[0][0], done[0][1]))
        except BaseException as e:  # reported by the main thread
            self.failure = e

    def finish(self) -> None:
        self.stop_event.set()
        self.join(self.wait_limit + 10)
        self.producer.flush(10)
        if self.failure is not None:
            raise RuntimeError(f"the steady producer failed: {self.failure}") from self.failure


def human(n: float) -> str:
    return f"{n:,.0f}"


def print_side_by_side(labels: list[str], what: str, rows, columns) -> None:
    """A table of the brokers' runs side by side. rows: (name, run number, one result dict
    per broker); columns: (key, title, width, format spec), each one column per broker;
    the first is the throughput, followed by the ratio of the first broker's to the
    second's when there are two."""
    head = f"  {what:18} {'run':>4}"
    for i, (_, title, width, _) in enumerate(columns):
        head += "".join(f"{label + ' ' + title:>{width}}" for label in labels)
        if i == 0 and len(labels) == 2:
            head += f"{'ratio':>8}"
    print(head)
    for name, run, results in rows:
        line = f"  {name:18} {run:>4}"
        for i, (key, _, width, spec) in enumerate(columns):
            line += "".join(f"{r[key]:{width}{spec}}" for r in results)
            if i == 0 and len(results) == 2:
                line += f"{results[0][key] / results[1][key]:8.2f}"
        print(line)


def run_each(todo, measure, report) -> None:
    """Runs `measure(impl, result, binary)` for each (label, impl, binary) in `todo`, where
    `result` is a dict it fills as it goes, then `report(label, result)` for every one.
    One implementation's failure does not lose the others' numbers (nor its own so far);
    exits 1 after the reports if any failed."""
    runs: list[tuple[str, dict]] = []
    broken: list[str] = []
    for label, impl, binary in todo:
        print(f"... {label}", flush=True)
        result: dict = {}
        runs.append((label, result))
        try:
            measure(impl, result, binary)
            result["complete"] = True
        except Exception as e:  # noqa: BLE001  (reported, and the run goes on)
            print(f"  FAILED {label}: {type(e).__name__}: {e}", flush=True)
            broken.append(label)
    for label, result in runs:
        report(label, result)
    if broken:
        print(f"\nFAILED: {', '.join(broken)}")
        raise SystemExit(1)


def add_implementation_args(ap) -> None:
    """--kafka, --kafka-only and --sluice-bin, as the benches that compare builds take them."""
    ap.add_argument("--kafka", action="store_true", help="also run against Apache Kafka")
    ap.add_argument("--kafka-only", action="store_true", help="Apache Kafka only (no Sluice)")
    ap.add_argument("--sluice-bin", action="append", type=Path, metavar="PATH",
                    help="a Sluice binary; repeat to compare builds (default $SLUICE_BIN or target/release/sluice)")


def implementations(ap, args) -> list[tuple[str, str, Path | None]]:
    """(label, implementation, binary) for each Sluice binary asked for, then Kafka if asked:
    `run_each`'s list. A missing binary is a usage error."""
    from brokers import sluice_bin
    binaries = [] if args.kafka_only else [b.absolute() for b in (args.sluice_bin or [sluice_bin()])]
    for b in binaries:
        if not b.is_file():
            ap.error(f"no Sluice binary at {b} (or run with --kafka-only)")
    todo: list[tuple[str, str, Path | None]] = [(f"Sluice {b}", "sluice", b) for b in binaries]
    if args.kafka or args.kafka_only:
        todo.append(("Apache Kafka 4.4", "kafka", None))
    return todo
