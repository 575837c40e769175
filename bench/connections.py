#!/usr/bin/env python3
"""Connections: what many connections and slow clients cost a broker, and
whether slow clients hurt the others (issue #16, point 2).

For each broker (Sluice; then Apache Kafka 4.4 with --kafka, each on a fresh
data directory and a port of its own on 127.0.0.1):

1. RSS idle after start.
2. --connections connections (default 10,000), opened from one process with
   non-blocking sockets (at most --window connecting at a time, under Kafka's
   default listen backlog of 50), each sends ApiVersions v3 and reads the
   answer, then stays open and idle: the time to open them all, the broker's
   RSS and open descriptors. Then they are closed.
3. A topic `fill` gets --fill-mib MiB (1 KiB records, confluent-kafka), then
   1,000 slow clients in three kinds are held --hold seconds (default 30):
   large: 400 announce a Produce frame of --announce-mib MiB (under
          socket.request.max.bytes, 100 MiB) and send the rest a byte a second;
   drip:  300 send an ApiVersions request a byte a second;
   flood: 300 send Fetch requests for all of `fill` from offset 0 (responses of
          about --fill-mib MiB) until their socket buffers are full (at most
          --flood-requests each) and never read an answer.
   The broker's RSS is sampled every second: peak and final, RSS 2 s after the
   slow clients are gone, and how many of each kind the broker closed on its
   own (TCP state no longer ESTABLISHED), and whether it answers ApiVersions
   once they are gone.
4. Meanwhile a well-behaved confluent-kafka producer (acks=1, linger.ms=0, one
   100-byte record in flight, connected before the slow clients come) writes
   to `good`: p50/p99/max of its round trips in a 5 s baseline and during the
   hold.
5. A table, Sluice beside Kafka.

Numbers, not assertions. A broker that dies is a result (reported, with any
OutOfMemoryError in its log); the exit code is 1 if any broker died or a step
could not finish, after the table."""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import signal
import socket
import struct
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import common
from brokers import sluice_bin  # noqa: E402  (compat/python, on the path that common sets)

HOST = "127.0.0.1"
CLIENT_ID = b"conn-bench"
TCP_ESTABLISHED = 1


# --- raw requests -------------------------------------------------------------

def frame(api_key: int, version: int, correlation: int, body: bytes, flexible: bool) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation, len(CLIENT_ID)) + CLIENT_ID
    if flexible:
        header += b"\x00"  # no tagged fields
    message = header + body
    return struct.pack(">i", len(message)) + message


def api_versions_v3(correlation: int) -> bytes:
    def compact(s: bytes) -> bytes:
        return bytes([len(s) + 1]) + s  # short: one varint byte
    return frame(18, 3, correlation, compact(b"conn-bench") + compact(b"1.0") + b"\x00", True)


def fetch_v4(topic: str, partition_max: int, correlation: int) -> bytes:
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 1, 64 << 20, 0)  # replica, max_wait 0, min_bytes 1, max_bytes, isolation
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, 0, partition_max)  # one partition: 0, offset 0
    return frame(1, 4, correlation, body, False)


def large_produce_head(announced: int) -> tuple[bytes, bytes]:
    """The 4-byte size of a Produce v3 frame of `announced` bytes, and the start
    of what would follow it (header, then the body's first fields), sent a byte
    a second. The frame never completes within the hold."""
    header = struct.pack(">hhih", 0, 3, 1, len(CLIENT_ID)) + CLIENT_ID
    body = struct.pack(">hhi", -1, 1, 30_000) + struct.pack(">ih", 1, 4) + b"fill"
    rest = header + body
    return struct.pack(">i", announced), rest + b"\x00" * 4096


def tcp_state(s: socket.socket) -> int:
    try:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return -1


# --- 2. many idle connections ------------------------------------------------

class Conn:
    __slots__ = ("sock", "phase", "buf")

    def __init__(self, sock: socket.socket):
        self.sock, self.phase, self.buf = sock, "connect", b""


def open_idle(port: int, n: int, window: int, limit: float) -> tuple[list[socket.socket], float, int]:
    """n connections, each answered one ApiVersions v3; returns the open sockets,
    the seconds it took and how many failed."""
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    failed = started = pending = 0
    request = api_versions_v3(1)
    t0 = time.perf_counter()
    try:
        while len(done) + failed < n:
            while started < n and pending < window:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((HOST, port))
                sel.register(s, selectors.EVENT_WRITE, Conn(s))
                started += 1
                pending += 1
            if time.perf_counter() - t0 > limit:
                raise TimeoutError(f"{len(done)} of {n} connections answered within {limit:.0f} s")
            for key, _ in sel.select(1.0):
                c: Conn = key.data
                s = c.sock
                try:
                    if c.phase == "connect":
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, os.strerror(err))
                        s.send(request)  # 40 bytes: fits in an empty send buffer
                        c.phase = "read"
                        sel.modify(s, selectors.EVENT_READ, c)
                        continue
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("closed by the broker")
                    c.buf += chunk
                    if len(c.buf) >= 4 and len(c.buf) >= 4 + struct.unpack(">i", c.buf[:4])[0]:
                        sel.unregister(s)
                        pending -= 1
                        done.append(s)
                except OSError:
                    sel.unregister(s)
                    s.close()
                    pending -= 1
                    failed += 1
        return done, time.perf_counter() - t0, failed
    except BaseException:
        close_all(done)
        raise
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


def close_all(socks) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# --- 3. slow clients -----------------------------------------------------------

class Slow:
    __slots__ = ("kind", "sock", "data", "sent", "requests", "closed_at")

    def __init__(self, kind: str, sock: socket.socket, data: bytes):
        self.kind, self.sock, self.data = kind, sock, data
        self.sent = 0
        self.requests = 0
        self.closed_at: float | None = None


def connect(port: int) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=10)
    s.setblocking(False)
    return s


def open_slow(port: int, args) -> list[Slow]:
    size, head = large_produce_head(args.announce_mib << 20)
    drip = api_versions_v3(7) * 100
    fetch = fetch_v4("fill", args.fill_mib << 20, 9)
    clients: list[Slow] = []
    try:
        for _ in range(args.large):
            c = Slow("large", connect(port), head)
            c.sock.send(size)
            clients.append(c)
        for _ in range(args.drip):
            clients.append(Slow("drip", connect(port), drip))
        for _ in range(args.flood):
            clients.append(Slow("flood", connect(port), fetch))
    except BaseException:
        close_all(c.sock for c in clients)
        raise
    return clients


def tick(clients: list[Slow], flood_requests: int, now: float) -> None:
    """One second of slow clients: a byte each from `large` and `drip`, Fetch
    requests from `flood` until the socket would block (or its cap)."""
    for c in clients:
        if c.closed_at is not None:
            continue
        try:
            if c.kind == "flood":
                while c.requests < flood_requests:
                    n = c.sock.send(c.data[c.sent:])
                    c.sent += n
                    if c.sent == len(c.data):
                        c.sent = 0
                        c.requests += 1
            else:
                c.sock.send(c.data[c.sent:c.sent + 1])
                c.sent = (c.sent + 1) % len(c.data)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                c.closed_at = now
            else:
                raise
        if c.closed_at is None and tcp_state(c.sock) != TCP_ESTABLISHED:
            c.closed_at = now


def fill_topic(bootstrap: str, mib: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic, fs in admin.create_topics([NewTopic("fill", 1, 1), NewTopic("good", 1, 1)]).items():
        fs.result(60)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000, "acks": 1})
    value = b"f" * 1024
    for _ in range(mib * 1024):
        while True:
            try:
                p.produce("fill", value=value)
                break
            except BufferError:
                p.poll(0.01)
    if p.flush(120) != 0:
        raise RuntimeError(f"could not write {mib} MiB to fill")


def latency(records: list[tuple[float, float, bool]], start: float, end: float) -> dict:
    inside = sorted((d - s) * 1000 for s, d, ok in records if s <= end and d >= start and ok)
    errors = sum(1 for s, d, ok in records if s <= end and d >= start and not ok)
    if not inside:
        return {"count": 0, "errors": errors, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}

    def pct(q: float) -> float:
        return inside[min(len(inside) - 1, int(q * len(inside)))]
    return {"count": len(inside), "errors": errors, "p50": pct(0.5), "p99": pct(0.99), "max": inside[-1]}


def rss_mib(pid: int) -> float:
    return common.memory_kib(pid)["VmRSS"] / 1024


def oom_lines(broker) -> list[str]:
    lines = []
    for name in ("server.log", "stdout.log", "sluice.log"):
        path = Path(broker.workdir) / name
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if "OutOfMemoryError" in line or "panicked" in line:
                    lines.append(f"{name}: {line.strip()[:200]}")
    return lines


# --- one broker --------------------------------------------------------------

def measure(broker, args) -> dict:
    pid = broker.proc.pid
    r: dict = {"died": None}

    def alive(step: str) -> bool:
        if broker.proc.poll() is not None:
            r["died"] = f"exited with {broker.proc.returncode} during {step}"
            return False
        return True

    time.sleep(2)
    r["idle"] = rss_mib(pid)
    print(f"  idle RSS {r['idle']:.1f} MiB; broker open-file limit {common.open_file_limit(pid)}", flush=True)

    socks, secs, failed = open_idle(broker.port, args.connections, args.window, args.open_timeout)
    try:
        time.sleep(2)
        if not alive("the idle connections"):
            return r
        r["open s"], r["conns"], r["conns failed"] = secs, len(socks), failed
        r["at 10k"], r["fds"] = rss_mib(pid), common.open_fds(pid)
        print(f"  {len(socks):,} connections answered ({failed} failed) in {secs:.2f} s; "
              f"RSS {r['at 10k']:.1f} MiB ({(r['at 10k'] - r['idle']) * 1024 / max(1, len(socks)):.1f} KiB "
              f"per connection), {r['fds']:,} open fds", flush=True)
    finally:
        close_all(socks)
    time.sleep(2)
    if not alive("closing the idle connections"):
        return r
    r["after close"] = rss_mib(pid)
    print(f"  RSS after closing them: {r['after close']:.1f} MiB", flush=True)

    fill_topic(broker.bootstrap, args.fill_mib)
    r["before slow"] = rss_mib(pid)
    print(f"  wrote {args.fill_mib} MiB to fill; RSS {r['before slow']:.1f} MiB", flush=True)

    good = common.SteadyProducer(broker.bootstrap, "good", 100, 10_000)
    good.start()
    clients: list[Slow] = []
    try:
        time.sleep(1)
        base = (time.perf_counter(),)
        time.sleep(args.baseline)
        base += (time.perf_counter(),)
        clients = open_slow(broker.port, args)
        hold_start = time.perf_counter()
        samples = []
        while time.perf_counter() - hold_start < args.hold:
            now = time.perf_counter() - hold_start
            tick(clients, args.flood_requests, now)
            if not alive(f"the slow clients, {now:.0f} s in"):
                break
            samples.append(rss_mib(pid))
            closed = {k: sum(1 for c in clients if c.kind == k and c.closed_at is not None)
                      for k in ("large", "drip", "flood")}
            if int(now) % 5 == 0:
                print(f"    {now:4.0f} s: RSS {samples[-1]:8.1f} MiB, closed by the broker "
                      f"large/drip/flood {closed['large']}/{closed['drip']}/{closed['flood']}, "
                      f"good records {len(good.records)}", flush=True)
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - hold_start - now)))
        hold_end = time.perf_counter()
    finally:
        good.stop_event.set()
        close_all(c.sock for c in clients)
    try:
        good.finish()
    except RuntimeError as e:
        r["good failure"] = str(e)
    r["samples"] = samples
    r["peak slow"] = max(samples) if samples else float("nan")
    r["final slow"] = samples[-1] if samples else float("nan")
    r["closed"] = {k: sum(1 for c in clients if c.kind == k and c.closed_at is not None)
                   for k in ("large", "drip", "flood")}
    r["flood requests"] = sum(c.requests for c in clients if c.kind == "flood")
    r["baseline"] = latency(good.records, *base)
    r["during"] = latency(good.records, hold_start, hold_end)
    r["good errors"] = good.errors[:3]
    time.sleep(2)
    if alive("closing the slow clients"):
        r["after slow"] = rss_mib(pid)
        r["answers after"] = common.api_versions(HOST, broker.port, timeout=5.0)
        r["hwm"] = common.memory_kib(pid)["VmHWM"] / 1024
    return r


def run(kind: str, binary: Path | None, args) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"connections-{kind}-") as d:
        if kind == "sluice":
            broker = common.Sluice(Path(d), binary=binary)
            broker.port = common.free_port()
            broker.start()
        else:
            broker = common.Kafka(workdir=Path(d))
            broker.start(timeout=180)
        print(f"{kind}: 127.0.0.1:{broker.port}, pid {broker.proc.pid}", flush=True)
        try:
            r = measure(broker, args)
        except Exception as e:  # noqa: BLE001  a step that could not finish is a result too
            r = {"died": None, "error": f"{type(e).__name__}: {e}"}
            if broker.proc.poll() is not None:
                r["died"] = f"exited with {broker.proc.returncode}"
        finally:
            r_logs = oom_lines(broker)
            try:
                broker.stop(timeout=60)
            except Exception as e:  # noqa: BLE001
                print(f"  stop: {e}")
        r["log"] = r_logs
        report(kind, r, args)
        return r


def report(kind: str, r: dict, args) -> None:
    if "closed" in r:
        c = r["closed"]
        print(f"  slow clients ({args.large} large of {args.announce_mib} MiB / {args.drip} drip / "
              f"{args.flood} flood, {args.hold:.0f} s): peak RSS {r['peak slow']:.1f} MiB, final "
              f"{r['final slow']:.1f} MiB, after they left {r.get('after slow', float('nan')):.1f} MiB; "
              f"closed by the broker {c['large']}/{c['drip']}/{c['flood']}; flood requests sent "
              f"{r['flood requests']:,}")
        for name in ("baseline", "during"):
            s = r[name]
            print(f"  good producer {name}: {s['count']} records, {s['errors']} errors, p50 {s['p50']:.1f} ms, "
                  f"p99 {s['p99']:.1f} ms, max {s['max']:.1f} ms")
        if r["good errors"]:
            print(f"  good producer errors: {r['good errors']}")
    for key in ("error", "good failure", "died"):
        if r.get(key):
            print(f"  {key}: {r[key]}")
    if r["log"]:
        print(f"  {len(r['log'])} OutOfMemoryError/panic lines in the log, first: {r['log'][0]}")
    print(flush=True)


def cell(r: dict, key: str, fmt: str) -> str:
    v = r.get(key)
    if v is None:
        return "died" if r.get("died") else "-"
    return fmt.format(v)


def table(results: list[tuple[str, dict]], args) -> None:
    rows = [
        ("RSS idle", lambda r: cell(r, "idle", "{:.1f} MiB")),
        (f"RSS with {args.connections:,} idle connections", lambda r: cell(r, "at 10k", "{:.1f} MiB")),
        (f"time to open {args.connections:,} (ApiVersions answered)", lambda r: cell(r, "open s", "{:.2f} s")),
        (f"peak RSS with {args.large + args.drip + args.flood:,} slow", lambda r: cell(r, "peak slow", "{:.1f} MiB")),
        ("final RSS with the slow ones", lambda r: cell(r, "final slow", "{:.1f} MiB")),
        ("RSS 2 s after the slow ones left", lambda r: cell(r, "after slow", "{:.1f} MiB")),
        ("slow closed by the broker (large/drip/flood)",
         lambda r: "/".join(str(r["closed"][k]) for k in ("large", "drip", "flood")) if "closed" in r else "-"),
        ("good produce p50 / p99 / max, baseline",
         lambda r: "{p50:.1f} / {p99:.1f} / {max:.1f} ms".format(**r["baseline"]) if "baseline" in r else "-"),
        ("good produce p50 / p99 / max, under the slow ones",
         lambda r: "{p50:.1f} / {p99:.1f} / {max:.1f} ms".format(**r["during"]) if "during" in r else "-"),
        ("good produce records / errors under the slow ones",
         lambda r: f"{r['during']['count']} / {r['during']['errors']}" if "during" in r else "-"),
        ("answers ApiVersions after the slow ones left",
         lambda r: ("yes" if r["answers after"] else "no") if "answers after" in r else "-"),
        ("OutOfMemoryError / panic lines in its log", lambda r: str(len(r["log"]))),
        ("broker died", lambda r: r["died"] or "no"),
    ]
    names = [n for n, _ in results]
    widths = [max(len(label) for label, _ in rows)] + [
        max(len(n), *(len(f(r)) for _, f in rows)) for n, r in results]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(["", *names], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for label, f in rows:
        print("| " + " | ".join(v.ljust(w) for v, w in zip([label, *(f(r) for _, r in results)], widths)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka", action="store_true", help="also run against Apache Kafka 4.4")
    ap.add_argument("--kafka-only", action="store_true", help="Apache Kafka alone")
    ap.add_argument("--sluice-bin", type=Path, default=None,
                    help="the Sluice binary (default $SLUICE_BIN or target/release/sluice)")
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=50, help="connections connecting at once (default 50)")
    ap.add_argument("--open-timeout", type=float, default=120.0)
    ap.add_argument("--large", type=int, default=400)
    ap.add_argument("--drip", type=int, default=300)
    ap.add_argument("--flood", type=int, default=300)
    ap.add_argument("--announce-mib", type=int, default=50, help="size the large clients announce (MiB)")
    ap.add_argument("--fill-mib", type=int, default=10, help="MiB in the fetched topic (default 10)")
    ap.add_argument("--flood-requests", type=int, default=1000, help="cap of Fetch requests per flood client")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds the slow clients stay (default 30)")
    ap.add_argument("--baseline", type=float, default=5.0)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per broker before the run gives up")
    args = ap.parse_args()
    binary = (args.sluice_bin or sluice_bin()).absolute()
    kinds = ["kafka"] if args.kafka_only else ["sluice"] + (["kafka"] if args.kafka else [])
    if "sluice" in kinds and not binary.is_file():
        ap.error(f"no Sluice binary at {binary}")

    soft, hard = common.raise_open_file_limit(2 * args.connections + 4_096)
    print(f"{args.connections:,} idle connections, then {args.large} large ({args.announce_mib} MiB announced) + "
          f"{args.drip} drip + {args.flood} flood slow clients for {args.hold:.0f} s; this process's open-file limit "
          f"{soft}/{hard}; {os.cpu_count()} CPUs", flush=True)

    def on_alarm(*_):
        raise TimeoutError(f"a broker's run took more than {args.timeout} s")
    signal.signal(signal.SIGALRM, on_alarm)

    results = []
    for kind in kinds:
        signal.alarm(args.timeout)
        try:
            results.append(("Sluice" if kind == "sluice" else "Kafka 4.4", run(kind, binary, args)))
        finally:
            signal.alarm(0)
    table(results, args)
    broken = [n for n, r in results if r.get("died") or r.get("error")]
    if broken:
        print(f"did not finish cleanly: {', '.join(broken)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
