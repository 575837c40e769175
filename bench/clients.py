#!/usr/bin/env python3
"""Clients: thousands of clients on one broker (issue #17, point 3).

For each broker (Sluice; then Apache Kafka 4.4 with --kafka, or Kafka alone with
--kafka-only), on a fresh data directory and a port of its own on 127.0.0.1:

1. A topic `load` of --partitions partitions (default 100) is created and its
   leaders awaited; the broker's idle RSS is read.
2. compat/go/clientload (franz-go, built by compat/go/build.sh) runs --producers
   producers (default 1,000) and --consumers consumers (default 1,000) in --groups
   consumer groups (default 10), every one a kgo.Client of its own, started evenly
   over --ramp seconds (default 10). Each producer sends --rate records a second
   (default 10) of --record-size bytes (default 100) with franz-go's defaults
   (acks=all, idempotent, linger 10 ms; `--linger-ms` to change); every group reads
   the whole topic (classic protocol, cooperative-sticky, autocommit). The producers
   stop --seconds after the first client started (default 60), flush, the consumers
   get up to 10 s to read what was acknowledged, then every client closes.
3. Meanwhile, once a second: the broker's CPU time (utime+stime of /proc/<pid>/stat),
   RSS (and its anonymous part) and open descriptors, the load generator's CPU time and
   RSS, and the machine's busy CPU (/proc/stat); the broker's RSS again 3 s after the
   clients have gone. Sluice serves its Prometheus metrics on a port of its own
   (`metrics.prometheus.address`; `--no-metrics` to leave them off): its request
   counters before and after, beside the clients' own count.
4. A table, Sluice beside Kafka with the ratios: connections, broker CPU seconds
   (over the load generator's whole life: ramp, load, flush, close) and in the steady
   window (from the moment every group was stable to the producers' stop), CPU µs per
   request (requests as the clients counted them: franz-go's OnBrokerWrite hook, the
   same count for both brokers) and per record produced, peak and average RSS and RSS
   per client, produce and end-to-end latencies (all records, and the records sent
   once every group was stable), the time until every group was stable, generations
   (rebalance rounds), errors by kind, close time, and warnings in the broker's log.

The load generator runs on the same cores as the broker. Numbers, not assertions;
the exit code is 1 if a broker died, the load generator did not finish, or a step
failed."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

import common
from brokers import sluice_bin  # noqa: E402  (compat/python, on the path that common sets)

CLIENTLOAD = common.REPO_DIR / "compat" / ".cache" / "go-bin" / "clientload"
TOPIC = "load"


# --- sampling --------------------------------------------------------------------------

def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def listen_overflows() -> int:
    """TcpExt ListenOverflows of the machine: connections dropped because a listen queue
    (the accept backlog) was full."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return -1
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", -1))
    return -1


def rss_kib(pid: int) -> int:
    try:
        return common.memory_kib(pid)["VmRSS"]
    except (OSError, KeyError):
        return -1


def rss_parts_kib(pid: int) -> tuple[int, int]:
    """RssAnon (heap, stacks) and RssFile (mapped files) of a process, in KiB."""
    out = {"RssAnon": -1, "RssFile": -1}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in out:
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out["RssAnon"], out["RssFile"]


def cpu_or_nan(pid: int) -> float:
    try:
        return common.cpu_seconds(pid)
    except OSError:
        return float("nan")


class Sampler(threading.Thread):
    """Once a second: (wall time, broker CPU s, broker RSS KiB, broker fds, load CPU s,
    load RSS KiB, machine busy, machine total, broker RssAnon KiB, broker RssFile KiB)."""

    def __init__(self, broker_pid: int, load_pid: int, interval: float = 1.0):
        super().__init__(daemon=True, name="sampler")
        self.broker_pid, self.load_pid, self.interval = broker_pid, load_pid, interval
        self.samples: list[tuple] = []
        self.stop_event = threading.Event()

    def sample(self) -> None:
        busy, total = machine_cpu()
        self.samples.append((time.time(), cpu_or_nan(self.broker_pid), rss_kib(self.broker_pid),
                             common.open_fds(self.broker_pid), cpu_or_nan(self.load_pid),
                             rss_kib(self.load_pid), busy, total, *rss_parts_kib(self.broker_pid)))

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def finish(self) -> list[tuple]:
        self.stop_event.set()
        self.join(10)
        self.sample()
        return self.samples


def at(samples: list[tuple], t: float, column: int) -> float:
    """A sampled column at wall time t, linearly interpolated."""
    before = [s for s in samples if s[0] <= t]
    after = [s for s in samples if s[0] >= t]
    if not before:
        return samples[0][column]
    if not after:
        return samples[-1][column]
    a, b = before[-1], after[0]
    if b[0] == a[0]:
        return a[column]
    return a[column] + (b[column] - a[column]) * (t - a[0]) / (b[0] - a[0])


# --- the broker's own counts (Sluice's Prometheus endpoint) ------------------------------

METRIC = re.compile(r'^(sluice_requests_total|sluice_connections_accepted_total)\{([^}]*)\}\s+([0-9.e+]+)$', re.M)
API_LABEL = re.compile(r'api="([^"]+)"')


def scrape(port: int) -> dict[str, float] | None:
    """Sluice's request count (and by API, as "api:<name>") and connections accepted."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: dict[str, float] = {}
    for name, labels, value in METRIC.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
        api = API_LABEL.search(labels)
        if name == "sluice_requests_total" and api:
            out[f"api:{api.group(1)}"] = out.get(f"api:{api.group(1)}", 0.0) + float(value)
    return out


# --- the broker's log ---------------------------------------------------------------------

def log_warnings(broker) -> tuple[int, list[str]]:
    """WARN/ERROR lines of the broker's log (Sluice: its stderr; Kafka: server.log), and
    the first few distinct ones (digits folded)."""
    path = Path(broker.log_file)
    if not path.exists():
        return 0, []
    count, seen, first = 0, set(), []
    pattern = re.compile(r"\b(WARN|ERROR|FATAL)\b|panicked")
    with open(path, errors="replace") as f:
        for line in f:
            if pattern.search(line):
                count += 1
                key = re.sub(r"[0-9]+", "N", line.split("]", 1)[-1] if broker.kind == "kafka" else line[28:])[:160]
                if key not in seen and len(first) < 8:
                    seen.add(key)
                    first.append(line.rstrip()[:400])
    return count, first


# --- one broker -----------------------------------------------------------------------------

def create_topic(bootstrap: str, partitions: int, timeout: float = 120.0) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    t0 = time.perf_counter()
    admin.create_topics([NewTopic(TOPIC, partitions, 1)], request_timeout=60)[TOPIC].result(timeout=90)
    while time.perf_counter() - t0 < timeout:
        md = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if md is not None and md.error is None and len(md.partitions) == partitions and \
                all(p.leader >= 0 and p.error is None for p in md.partitions.values()):
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise TimeoutError(f"the {partitions} partitions of {TOPIC} had no leaders within {timeout:.0f} s")


def load_config(broker, args) -> dict:
    return {
        "bootstrap": broker.bootstrap, "topic": TOPIC, "partitions": args.partitions,
        "producers": args.producers, "consumers": args.consumers, "groups": args.groups,
        "duration_s": args.seconds, "ramp_s": args.ramp, "record_size": args.record_size,
        "rate": args.rate, "linger_ms": args.linger_ms, "flush_s": 15, "drain_s": 10, "close_s": 30,
    }


def run_load(broker, args, workdir: Path) -> dict:
    cfg = load_config(broker, args)
    hard = cfg["duration_s"] + cfg["flush_s"] + cfg["drain_s"] + cfg["close_s"] + 30
    stderr_log = workdir / "clientload.stderr"
    r: dict = {}
    pid = broker.proc.pid
    t_start = time.time()
    cpu0 = common.cpu_seconds(pid)
    overflows0 = listen_overflows()
    proc = subprocess.Popen([str(CLIENTLOAD), json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    sampler = Sampler(pid, proc.pid)
    sampler.start()
    out_lines: list[str] = []

    def read_stderr():
        with open(stderr_log, "w") as log:
            for line in proc.stderr:
                log.write(line)
                log.flush()
                if line.startswith("clientload:"):
                    print("  " + line.rstrip(), flush=True)

    def read_stdout():
        for line in proc.stdout:
            out_lines.append(line)

    readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=hard + 30)
    except subprocess.TimeoutExpired:
        r["error"] = f"the load generator ran past its own hard deadline ({hard:.0f} s); SIGTERM"
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for t in readers:
        t.join(10)
    t_end = time.time()
    samples = sampler.finish()
    cpu1 = cpu_or_nan(pid)
    r["listen overflows"] = listen_overflows() - overflows0
    r["exit"] = proc.returncode
    r["wall s"] = t_end - t_start
    r["broker cpu s"] = cpu1 - cpu0
    r["samples"] = samples
    r["load cpu s"] = max((s[4] for s in samples if s[4] == s[4]), default=float("nan"))
    r["load peak rss mib"] = max((s[5] for s in samples), default=-1) / 1024
    busy = samples[-1][6] - samples[0][6]
    total = samples[-1][7] - samples[0][7]
    r["machine busy"] = busy / total if total else float("nan")
    result = None
    for line in reversed(out_lines):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if result is None:
        r.setdefault("error", f"the load generator printed no result (exit {proc.returncode}); see {stderr_log}")
        return r
    r["go"] = result
    if result.get("result") != "ok":
        r.setdefault("error", f"the load generator ended with: {result.get('result')}")
    start = result["start_unix_ms"] / 1000
    times = result["times_ms"]
    stop = start + (times["stop"] or 0) / 1000 if times.get("stop") is not None else None
    # RSS over the load: from the first client to the producers' stop.
    during = [s for s in samples if s[0] >= start and (stop is None or s[0] <= stop)] or samples
    r["rss avg mib"] = sum(s[2] for s in during) / len(during) / 1024
    r["rss peak mib"] = max(s[2] for s in samples) / 1024
    r["fds peak"] = max(s[3] for s in samples)
    if result.get("stable_ms") is not None and stop is not None:
        a, b = start + result["stable_ms"] / 1000, stop
        r["steady s"] = b - a
        # RSS growth over the second half of the steady window (every client connected,
        # the groups settled), MiB a minute.
        m = (a + b) / 2
        r["steady rss growth"] = (at(samples, b, 2) - at(samples, m, 2)) / 1024 / (b - m) * 60
        r["steady anon growth"] = (at(samples, b, 8) - at(samples, m, 8)) / 1024 / (b - m) * 60
        r["steady cpu s"] = at(samples, b, 1) - at(samples, a, 1)
        r["steady load cpu s"] = at(samples, b, 4) - at(samples, a, 4)
        busy = at(samples, b, 6) - at(samples, a, 6)
        total = at(samples, b, 7) - at(samples, a, 7)
        r["steady machine busy"] = busy / total if total else float("nan")
        # Cores the rest of the machine used meanwhile (other work on the shared cores).
        cores = os.cpu_count() or 1
        r["steady other cores"] = (r["steady machine busy"] * cores
                                   - (r["steady cpu s"] + r["steady load cpu s"]) / r["steady s"])
        r["steady load cores"] = r["steady load cpu s"] / r["steady s"]
    return r


def run(kind: str, binary: Path, args) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"clients-{kind}-") as d:
        metrics_port = None
        if kind == "sluice":
            overrides = ()
            if not args.no_metrics:
                metrics_port = common.free_port()
                overrides = (f"metrics.prometheus.address=127.0.0.1:{metrics_port}",)
            broker = common.Sluice(Path(d), binary=binary, overrides=overrides)
            broker.start()
        else:
            broker = common.Kafka(workdir=Path(d))
            broker.start(timeout=180)
        pid = broker.proc.pid
        print(f"{kind}: {broker.bootstrap}, pid {pid}, open-file limit {common.open_file_limit(pid)}", flush=True)
        r: dict = {"died": None}
        try:
            r["create s"] = create_topic(broker.bootstrap, args.partitions)
            time.sleep(2)
            r["idle rss mib"] = rss_kib(pid) / 1024
            before = scrape(metrics_port) if metrics_port else None
            r.update(run_load(broker, args, Path(d)))
            time.sleep(3)
            r["rss after mib"] = rss_kib(pid) / 1024
            after = scrape(metrics_port) if metrics_port else None
            if before is not None and after is not None:
                r["broker requests"] = after.get("sluice_requests_total", 0) - before.get("sluice_requests_total", 0)
                r["broker connections accepted"] = (after.get("sluice_connections_accepted_total", 0)
                                                    - before.get("sluice_connections_accepted_total", 0))
                r["broker requests by api"] = {k[4:]: v - before.get(k, 0) for k, v in after.items()
                                               if k.startswith("api:") and v - before.get(k, 0) > 0}
            r["hwm mib"] = common.memory_kib(pid)["VmHWM"] / 1024
        except Exception as e:  # noqa: BLE001  a step that could not finish is a result too
            r["error"] = f"{type(e).__name__}: {e}"
        finally:
            if broker.proc.poll() is not None:
                r["died"] = f"exited with {broker.proc.returncode}"
            try:
                broker.stop(timeout=120)
            except Exception as e:  # noqa: BLE001
                print(f"  stop: {e}")
            r["log warnings"], r["log first"] = log_warnings(broker)
            if args.keep_logs:
                keep = Path(args.keep_logs) / kind
                keep.mkdir(parents=True, exist_ok=True)
                for name in ("sluice.log", "server.log", "clientload.stderr"):
                    if (Path(d) / name).exists():
                        (keep / name).write_bytes((Path(d) / name).read_bytes())
        report(kind, r)
        if args.keep_logs:
            keep = Path(args.keep_logs) / kind
            keep.mkdir(parents=True, exist_ok=True)
            (keep / "result.json").write_text(json.dumps(r, indent=1, default=str))
        return r


# --- the report ------------------------------------------------------------------------------

def report(kind: str, r: dict) -> None:
    g = r.get("go")
    if g:
        print(f"  requests by API (clients' count): {json.dumps(g['requests']['by_api'], sort_keys=True)}")
        if "broker requests" in r:
            print(f"  requests counted by the broker: {r['broker requests']:,.0f} "
                  f"(clients: {g['requests']['total']:,}); connections accepted {r['broker connections accepted']:,.0f}")
            # franz-go's names and Sluice's differ in case only (InitProducerID / InitProducerId).
            by_client = {api.lower(): n for api, n in g["requests"]["by_api"].items()}
            by_broker = {api.lower(): int(n) for api, n in r["broker requests by api"].items()}
            differ = {api: (by_client.get(api, 0), by_broker.get(api, 0)) for api in {*by_client, *by_broker}
                      if by_client.get(api, 0) != by_broker.get(api, 0)}
            if differ:
                print("  counted differently (clients / broker; a fetch in flight when its client closes is"
                      " counted by the broker only when it ends): "
                      + ", ".join(f"{api} {c:,} / {b:,}" for api, (c, b) in sorted(differ.items())))
        if g["errors"]:
            print(f"  client errors by kind ({g['errors_total']:,}; ms from the start, first to last):")
            for k, e in sorted(g["errors"].items(), key=lambda kv: -kv[1]["count"])[:15]:
                print(f"    {e['count']:>8,}  {e['first_ms']:>9,.0f} to {e['last_ms']:>9,.0f}  {k}")
        conns = g["connections"]
        def spans(per_s: list[int]) -> str:
            return ", ".join(f"{i} s: {n:,}" for i, n in enumerate(per_s) if n) or "none"
        print(f"  connections opened by second from the start (client side): {spans(conns.get('opened_per_s', []))}")
        if conns.get("failed"):
            print(f"  failed dials by the second they began: {spans(conns.get('failed_per_s', []))}")
        if g.get("slow_records") or g.get("slow_fetches"):
            print(f"  records slower than 1 s end to end: {g['slow_records']:,} ({g['slow_records_steady']:,} sent in the "
                  f"steady window); fetches slower than 1 s: {g['slow_fetches']:,}")
            for e in (g.get("slow_examples_steady") or g.get("slow_examples") or [])[:3]:
                print(f"    slow record: {json.dumps(e, sort_keys=True)}")
            for e in (g.get("slow_fetch_examples") or [])[:3]:
                print(f"    slow fetch: {json.dumps(e, sort_keys=True)}")
        print(f"  generations by group: {g['generations_by_group']}; assignment callbacks "
              f"{json.dumps(g['assignments'], sort_keys=True)}")
    print(f"  broker log: {r.get('log warnings', 0)} WARN/ERROR lines")
    for line in r.get("log first", []):
        print(f"    {line}")
    for key in ("error", "died"):
        if r.get(key):
            print(f"  {key}: {r[key]}")
    print(flush=True)


def fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return spec.format(v)


def lat(s: dict | None, keys=("p50", "p99", "p999")) -> str:
    if not s or not s.get("count"):
        return "-"
    return " / ".join(f"{s[k]:.1f}" for k in keys) + " ms"


def rows(args) -> list[tuple[str, callable, callable | None]]:
    """(label, cell text, number for the ratio or None)."""
    def go(r, *path):
        v = r.get("go")
        for p in path:
            if v is None:
                return None
            v = v.get(p)
        return v

    def per_request(r, steady=False):
        if steady:
            req = go(r, "requests_steady", "requests")
            cpu = r.get("steady cpu s")
        else:
            req = go(r, "requests", "total")
            cpu = r.get("broker cpu s")
        return cpu / req * 1e6 if req and cpu is not None else None

    def per_record(r):
        acked = go(r, "acked")
        return r["broker cpu s"] / acked * 1e6 if acked and "broker cpu s" in r else None

    def rss_per_client(r):
        if "rss peak mib" not in r or "idle rss mib" not in r:
            return None
        return (r["rss peak mib"] - r["idle rss mib"]) * 1024 / (args.producers + args.consumers)

    def stable_s(r):
        v = go(r, "stable_ms")
        return v / 1000 if v is not None else None

    def after_ramp(r):
        v, ramp = go(r, "stable_ms"), go(r, "times_ms", "ramp_end")
        return (v - ramp) / 1000 if v is not None and ramp is not None else None

    def close_s(r):
        t = go(r, "times_ms")
        return (t["closed"] - t["drained"]) / 1000 if t and t.get("closed") and t.get("drained") else None

    def produce_p(r, key, steady=False):
        return go(r, "produce_latency_steady_ms" if steady else "produce_latency_ms", key)

    def e2e_p(r, key, steady=False):
        return go(r, "e2e_latency_steady_ms" if steady else "e2e_latency_ms", key)

    return [
        ("clients (producers + consumers in groups)",
         lambda r: f"{args.producers:,} + {args.consumers:,} in {args.groups}", None),
        ("connections, peak open / opened (client side)",
         lambda r: f"{go(r, 'connections', 'peak_open'):,} / {go(r, 'connections', 'opened'):,}" if go(r, "connections") else "-",
         lambda r: go(r, "connections", "peak_open")),
        ("connections failed (client side)", lambda r: fmt(go(r, "connections", "failed"), "{:,}"), None),
        ("broker open descriptors, peak", lambda r: fmt(r.get("fds peak"), "{:,}"), lambda r: r.get("fds peak")),
        ("broker CPU s, whole run", lambda r: fmt(r.get("broker cpu s"), "{:.1f} s") + fmt(r.get("wall s"), " in {:.0f} s"),
         lambda r: r.get("broker cpu s")),
        ("broker CPU, steady window (cores)",
         lambda r: fmt(r["steady cpu s"] / r["steady s"], "{:.2f}") + f" over {r['steady s']:.0f} s" if r.get("steady s") else "-",
         lambda r: r["steady cpu s"] / r["steady s"] if r.get("steady s") else None),
        ("requests (client count), whole run", lambda r: fmt(go(r, "requests", "total"), "{:,}"),
         lambda r: go(r, "requests", "total")),
        ("broker CPU µs per request, whole run", lambda r: fmt(per_request(r), "{:.1f}"), per_request),
        ("broker CPU µs per request, steady", lambda r: fmt(per_request(r, True), "{:.1f}"),
         lambda r: per_request(r, True)),
        ("broker CPU µs per record produced", lambda r: fmt(per_record(r), "{:.0f}"), per_record),
        ("broker RSS idle (topic created)", lambda r: fmt(r.get("idle rss mib"), "{:.1f} MiB"), lambda r: r.get("idle rss mib")),
        ("broker RSS peak / average under load",
         lambda r: fmt(r.get("rss peak mib"), "{:.1f}") + " / " + fmt(r.get("rss avg mib"), "{:.1f} MiB"),
         lambda r: r.get("rss peak mib")),
        ("RSS per client (peak - idle)", lambda r: fmt(rss_per_client(r), "{:.1f} KiB"), rss_per_client),
        ("broker RSS 3 s after the clients left", lambda r: fmt(r.get("rss after mib"), "{:.1f} MiB"),
         lambda r: r.get("rss after mib")),
        ("RSS growth, 2nd half of the steady window (of it anonymous)",
         lambda r: fmt(r.get("steady rss growth"), "{:+.1f}") + fmt(r.get("steady anon growth"), " ({:+.1f}) MiB/min"),
         None),
        ("records produced / acked / failed / unacked",
         lambda r: " / ".join(f"{go(r, k):,}" for k in ("produced", "acked", "failed", "unacked_at_end")) if r.get("go") else "-",
         lambda r: go(r, "acked")),
        ("records produced / the producers' target at their rate",
         lambda r: f"{go(r, 'produced') / go(r, 'produce_target'):.0%} of {go(r, 'produce_target'):,}"
         if go(r, "produce_target") else "-", None),
        ("records consumed / expected (acked × groups)",
         lambda r: f"{go(r, 'consumed'):,} / {go(r, 'consumed_expected'):,}" if r.get("go") else "-",
         lambda r: go(r, "consumed")),
        ("produce latency p50 / p99 / p99.9, all", lambda r: lat(go(r, "produce_latency_ms")),
         lambda r: produce_p(r, "p99")),
        ("produce latency p50 / p99 / p99.9, steady", lambda r: lat(go(r, "produce_latency_steady_ms")),
         lambda r: produce_p(r, "p99", True)),
        ("Produce request round trip p50 / p99 / p99.9", lambda r: lat(go(r, "produce_request_ms")),
         lambda r: go(r, "produce_request_ms", "p99")),
        ("end-to-end p50 / p99 / p99.9, all", lambda r: lat(go(r, "e2e_latency_ms")), lambda r: e2e_p(r, "p99")),
        ("end-to-end p50 / p99 / p99.9, steady", lambda r: lat(go(r, "e2e_latency_steady_ms")),
         lambda r: e2e_p(r, "p99", True)),
        ("records > 1 s end to end, all / steady; fetches > 1 s",
         lambda r: f"{go(r, 'slow_records'):,} / {go(r, 'slow_records_steady'):,}; {go(r, 'slow_fetches'):,}"
         if r.get("go") else "-", None),
        ("all groups stable after (from start / after ramp)",
         lambda r: fmt(stable_s(r), "{:.1f} s") + " / " + fmt(after_ramp(r), "{:.1f} s"), stable_s),
        ("last assignment change", lambda r: fmt(go(r, "last_assignment_change_ms"), "{:,.0f} ms") if r.get("go") else "-", None),
        ("generations (sum over groups) / lost callbacks",
         lambda r: f"{go(r, 'generations'):,} / {go(r, 'assignments', 'lost_callbacks'):,}" if r.get("go") else "-",
         lambda r: go(r, "generations")),
        ("groups stable at the end", lambda r: f"{go(r, 'stable_groups_at_end')}/{args.groups}" if r.get("go") else "-", None),
        ("client errors (kinds)",
         lambda r: f"{go(r, 'errors_total'):,} ({len(go(r, 'errors'))})" if r.get("go") else "-", None),
        ("TCP listen queue overflows during the run (machine-wide)", lambda r: fmt(r.get("listen overflows"), "{:,}"), None),
        ("close: seconds / clients not closed in 30 s",
         lambda r: fmt(close_s(r), "{:.2f} s") + f" / {go(r, 'close_timed_out')}" if r.get("go") else "-", close_s),
        ("broker log WARN/ERROR lines", lambda r: f"{r.get('log warnings', 0):,}", None),
        ("load generator CPU s / peak RSS",
         lambda r: fmt(r.get("load cpu s"), "{:.1f} s") + " / " + fmt(r.get("load peak rss mib"), "{:.0f} MiB"), None),
        ("machine CPU busy, whole run / steady (all cores = 100%)",
         lambda r: fmt(r.get("machine busy"), "{:.0%}") + " / " + fmt(r.get("steady machine busy"), "{:.0%}"), None),
        ("steady: cores used by the load generator / by other processes",
         lambda r: fmt(r.get("steady load cores"), "{:.2f}") + " / " + fmt(r.get("steady other cores"), "{:.2f}"), None),
        ("broker died", lambda r: r.get("died") or "no", None),
    ]


def table(results: list[tuple[str, dict]], args) -> None:
    rs = rows(args)
    names = [n for n, _ in results]
    header = ["", *names]
    ratio = len(results) == 2
    if ratio:
        header.append(f"{names[0]} / {names[1]}")
    lines = []
    for label, cell, number in rs:
        line = [label, *(cell(r) for _, r in results)]
        if ratio:
            q = "-"
            if number is not None:
                try:
                    a, b = number(results[0][1]), number(results[1][1])
                    if a is not None and b:
                        q = f"{a / b:.2f}"
                except (KeyError, TypeError, ZeroDivisionError):
                    pass
            line.append(q)
        lines.append(line)
    widths = [max(len(str(l[i])) for l in [header, *lines]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(l, widths)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka", action="store_true", help="also run against Apache Kafka 4.4")
    ap.add_argument("--kafka-only", action="store_true", help="Apache Kafka alone")
    ap.add_argument("--sluice-bin", type=Path, default=None,
                    help="the Sluice binary (default $SLUICE_BIN or target/release/sluice)")
    ap.add_argument("--producers", type=int, default=1000)
    ap.add_argument("--consumers", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=60.0, help="load duration from the first client (default 60)")
    ap.add_argument("--ramp", type=float, default=10.0, help="seconds over which the clients start (default 10)")
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0, help="records a second per producer (default 10)")
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--linger-ms", type=int, default=-1, help="producer linger (default: franz-go's, 10 ms)")
    ap.add_argument("--no-metrics", action="store_true", help="Sluice without its Prometheus endpoint")
    ap.add_argument("--keep-logs", type=Path, default=None,
                    help="copy the broker's log, the load generator's stderr and result.json (everything measured, "
                         "the samples included) into DIR/<broker>/")
    args = ap.parse_args()
    binary = (args.sluice_bin or sluice_bin()).absolute()
    kinds = ["kafka"] if args.kafka_only else ["sluice"] + (["kafka"] if args.kafka else [])
    if "sluice" in kinds and not binary.is_file():
        ap.error(f"no Sluice binary at {binary}")
    if not CLIENTLOAD.is_file():
        ap.error(f"no load generator at {CLIENTLOAD}: run compat/go/build.sh")
    if args.groups < 1 or args.consumers < 0 or args.producers < 0:
        ap.error("--groups must be at least 1, --producers and --consumers not negative")

    clients = args.producers + args.consumers
    # franz-go opens up to five connections a client (seed, normal, produce or fetch, group):
    # each side of each needs a descriptor; the brokers inherit this limit.
    soft, hard = common.raise_open_file_limit(5 * clients + 4_096)
    print(f"{args.producers:,} producers ({args.rate:g} records/s of {args.record_size} B each) + {args.consumers:,} "
          f"consumers in {args.groups} groups, topic of {args.partitions} partitions, {args.seconds:g} s "
          f"(ramp {args.ramp:g} s); open-file limit {soft}/{hard}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)

    results = []
    for kind in kinds:
        results.append(("Sluice" if kind == "sluice" else "Kafka 4.4", run(kind, binary, args)))
    table(results, args)
    broken = [n for n, r in results if r.get("died") or r.get("error")]
    if broken:
        print(f"did not finish cleanly: {', '.join(broken)}")
        raise SystemExit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
