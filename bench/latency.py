#!/usr/bin/env python3
"""Latency against throughput, Sluice beside Apache Kafka 4.4, one single-node broker
at a time, topics of 3 partitions, records of 1 KiB.

For each broker, after BROKER_WARMUP seconds of unthrottled produce (not reported:
the JVM compiles Kafka's hot paths meanwhile):
1. the maximum produce rate, acks=1 and acks=all: Kafka's ProducerPerformance with
   `--throughput -1` for WARMUP + SECONDS seconds (its one-second reports after the
   warm-up, averaged);
2. at 10%, 50% and 90% of *Kafka's* maximum (the same absolute rates for both
   brokers; with --sluice-only, of Sluice's), ProducerPerformance with
   `--throughput R` for acks=1 and for acks=all: the p50/p95/p99/p99.9 of the time
   from send() to its acknowledgement (whole milliseconds, as the tool reports them);
3. at the same rates (of the acks=1 maximum), end to end: bench/e2e/E2eLatency.java
   produces at the rate with System.nanoTime() in each value and a consumer in the
   same JVM records now - sent in an HdrHistogram: p50/p99/p99.9.
Every producer uses perf_tools.py's settings: linger.ms=5, batch.size=256 KiB.
Records sent in the first WARMUP seconds of a fixed-rate step are not counted.

Throughout, once a second: the broker's RSS (/proc/PID/status) and the sum of the
high watermarks of the step's topic (records written per second, the broker's view).

Prints a table (Sluice, Kafka, Sluice/Kafka), writes results.json, results.md and
latency.png, throughput.png, rss.png into bench/results/latency/. Numbers only:
nothing here asserts a time. The clients share the machine's cores with the broker."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import matplotlib
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # noqa: E402

import common  # noqa: E402
import brokers  # noqa: E402  (compat/python, on the path once common is imported)
from throughput import create_topic  # noqa: E402

JARS = common.REPO_DIR / "compat" / ".cache" / "kafka-jars"
E2E_SOURCE = common.BENCH_DIR / "e2e" / "E2eLatency.java"
E2E_CLASSES = common.REPO_DIR / "compat" / ".cache" / "bench-e2e"
RESULTS = common.BENCH_DIR / "results" / "latency"
PRODUCER = "org.apache.kafka.tools.ProducerPerformance"
PARTITIONS = 3
PRODUCER_PROPS = ("linger.ms=5", "batch.size=262144")
JVM = ("java", "-Xmx1g")
KAFKA = "Apache Kafka 4.4"

# "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency."
INTERVAL = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec")
# The summary lines; the steady-state one starts "N steady state records sent".
SUMMARY = re.compile(r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                     r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, "
                     r"(\d+) ms 99th, (\d+) ms 99.9th")
E2E_RESULT = re.compile(r"^RESULT (.*)$")


# --- running the Java clients -----------------------------------------------------------

def compile_e2e() -> Path:
    """E2eLatency.java compiled against the Kafka jars, once per (source, jar set)."""
    jars = sorted(JARS.glob("*.jar"))
    key = hashlib.sha256(E2E_SOURCE.read_bytes() + "\n".join(j.name for j in jars).encode()).hexdigest()
    out = E2E_CLASSES / key[:16]
    if (out / "E2eLatency.class").is_file():
        return out
    fresh = E2E_CLASSES / f".build-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    r = subprocess.run(["java", "-m", "jdk.compiler/com.sun.tools.javac.Main", "-cp", os.pathsep.join(map(str, jars)),
                        "-d", str(fresh), "-Xlint:all", "-Werror", str(E2E_SOURCE)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"javac {E2E_SOURCE} failed:\n{r.stdout}\n{r.stderr}")
    try:
        fresh.rename(out)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(fresh, ignore_errors=True)
    return out


def run_lines(cmd: list[str], timeout: float, enough=lambda lines: False) -> tuple[list[str], bool]:
    """Runs cmd, collecting its stdout lines, until it exits, `enough(lines)` holds or
    `timeout` seconds pass; then it is stopped. Returns (lines, exited by itself);
    raises if it exited by itself with an error."""
    lines: list[str] = []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)

        def read() -> None:
            for line in proc.stdout:
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not enough(lines):
            time.sleep(0.2)
        stopped = proc.poll() is None
        if stopped:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(10)
        if proc.returncode not in (0, None) and not stopped:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[len(JVM) + 2:len(JVM) + 5])} ... failed ({proc.returncode}): "
                               f"{err.read()[-1500:]}")
    return [line.rstrip("\n") for line in lines], not stopped


def producer_performance(bootstrap: str, topic: str, acks: str, size: int, records: int, rate: int,
                         warmup_records: int = 0) -> list[str]:
    return [*JVM, "-cp", f"{JARS}/*", PRODUCER, "--topic", topic, "--num-records", str(records),
            "--record-size", str(size), "--throughput", str(rate), "--reporting-interval", "1000",
            *(["--warmup-records", str(warmup_records)] if warmup_records else []),
            "--command-property", f"bootstrap.servers={bootstrap}", f"acks={acks}", *PRODUCER_PROPS]


def interval_rates(lines: list[str]) -> list[tuple[int, float]]:
    """ProducerPerformance's one-second reports: (records, records/s)."""
    out = []
    for line in lines:
        m = INTERVAL.match(line)
        if m and "th," not in line:
            out.append((int(m.group(1)), float(m.group(2))))
    return out


# --- the three kinds of step ------------------------------------------------------------

def max_rate(bootstrap: str, topic: str, acks: str, size: int, warmup: int, seconds: int) -> dict:
    """ProducerPerformance unthrottled for `warmup` + `seconds` one-second reports: the
    rate over the last `seconds`."""
    want = warmup + seconds
    cmd = producer_performance(bootstrap, topic, acks, size, 10**11, -1)
    lines, _ = run_lines(cmd, timeout=want * 2 + 60, enough=lambda ls: len(interval_rates(ls)) >= want)
    steady = interval_rates(lines)[warmup:]
    if not steady:
        raise RuntimeError(f"ProducerPerformance reported nothing: {lines[-5:]}")
    records = sum(n for n, _ in steady)
    rate = records / sum(n / r for n, r in steady if r > 0)
    return {"rate": rate, "MB/s": rate * size / 1e6, "per second": [r for _, r in steady]}


def produce_at(bootstrap: str, topic: str, acks: str, rate: int, args) -> dict:
    """ProducerPerformance throttled to `rate`: the steady-state summary line."""
    cmd = producer_performance(bootstrap, topic, acks, args.record_size, rate * (args.warmup + args.seconds), rate,
                               warmup_records=rate * args.warmup)
    lines, finished = run_lines(cmd, timeout=(args.warmup + args.seconds) * 3 + 60)
    summaries = [m for m in map(SUMMARY.search, lines) if m]
    result = {"target": rate, "finished": finished, "per second": [r for _, r in interval_rates(lines)]}
    if not summaries:  # stopped before its end: the broker did not keep up
        return result
    m = summaries[-1]
    result.update({"rate": float(m.group(2)), "MB/s": float(m.group(3)), "avg": float(m.group(4)),
                   "max": float(m.group(5)), "p50": float(m.group(6)), "p95": float(m.group(7)),
                   "p99": float(m.group(8)), "p99.9": float(m.group(9))})
    return result


def e2e_at(bootstrap: str, topic: str, rate: int, args, classes: Path) -> dict:
    """E2eLatency at `rate`: produce, consume in the same JVM, now - sent per record."""
    cmd = [*JVM, "-cp", f"{JARS}/*{os.pathsep}{classes}", "E2eLatency", bootstrap, topic, str(rate),
           str(args.seconds), str(args.warmup), str(args.record_size), f"acks={args.e2e_acks}", *PRODUCER_PROPS]
    lines, finished = run_lines(cmd, timeout=(args.warmup + args.seconds) * 3 + 60)
    result = {"target": rate, "finished": finished,
              "per second": [int(line.split("received=")[1]) for line in lines if line.startswith("SECOND ")]}
    found = [m for m in map(E2E_RESULT.match, lines) if m]
    if not found:
        return result
    values = dict(kv.split("=") for kv in found[-1].group(1).split())
    measured = max(args.seconds, float(values["send_seconds"]) - args.warmup)
    result.update({"rate": int(values["count"]) / measured, "p50": float(values["p50_ms"]),
                   "p99": float(values["p99_ms"]), "p99.9": float(values["p999_ms"]),
                   "max": float(values["max_ms"]), "sent": int(values["sent"]), "acked": int(values["acked"]),
                   "received": int(values["received"]), "errors": int(values["errors"])})
    return result


# --- sampling the broker ----------------------------------------------------------------

class Sampler(threading.Thread):
    """Once a second: (seconds since start, step, RSS MiB, sum of the high watermarks of
    the step's topic or None)."""

    def __init__(self, broker):
        super().__init__(daemon=True, name="sampler")
        self.pid = broker.proc.pid
        self.consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "latency-sampler"})
        self.start_time = time.monotonic()
        self.step, self.topic = "start", None
        self.samples: list[tuple[float, str, float, int | None]] = []
        self.stop_event = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self.start_time

    def watermarks(self, topic: str | None) -> int | None:
        if topic is None:
            return None
        try:
            return sum(self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=1, cached=False)[1]
                       for p in range(PARTITIONS))
        except Exception:
            return None

    def run(self) -> None:
        tick = self.start_time
        while not self.stop_event.is_set():
            step, topic = self.step, self.topic
            try:
                rss = common.memory_kib(self.pid)["VmRSS"] / 1024
            except OSError:
                return
            hw = self.watermarks(topic)
            self.samples.append((self.now(), step, rss, hw))
            tick += 1
            self.stop_event.wait(max(0.0, tick - time.monotonic()))

    def finish(self) -> list[tuple[float, str, float, int | None]]:
        self.stop_event.set()
        self.join(10)
        self.consumer.close()
        return self.samples


# --- one broker -------------------------------------------------------------------------

def plan(args) -> list[dict]:
    """The steps, in order: the broker's warm-up (not reported), the two maxima, then
    each kind at rising rates."""
    steps = [{"name": "broker warm-up", "kind": "warm-up", "acks": "1"}] if args.broker_warmup else []
    steps += [{"name": f"max acks={a}", "kind": "max", "acks": a} for a in ("1", "all")]
    for kind, acks in (("produce", "1"), ("produce", "all"), ("e2e", args.e2e_acks)):
        for pct in args.percents:
            label = f"produce acks={acks}" if kind == "produce" else "end-to-end"
            steps.append({"name": f"{label} {pct}%", "kind": kind, "acks": acks, "percent": pct})
    return steps


def run_step(broker, step: dict, topic: str, maxima: dict, args, classes: Path) -> dict:
    if step["kind"] == "warm-up":
        return max_rate(broker.bootstrap, topic, step["acks"], args.record_size, 0, args.broker_warmup)
    if step["kind"] == "max":
        return max_rate(broker.bootstrap, topic, step["acks"], args.record_size, args.warmup, args.seconds)
    rate = max(1, round(maxima[step["acks"]] * step["percent"] / 100))
    if step["kind"] == "produce":
        return produce_at(broker.bootstrap, topic, step["acks"], rate, args)
    return e2e_at(broker.bootstrap, topic, rate, args, classes)


def delete_topic(admin: AdminClient, topic: str) -> None:
    """Each step's topic goes when the step ends: the disk holds one step's records."""
    try:
        admin.delete_topics([topic])[topic].result(60)
    except Exception as e:
        print(f"  (could not delete {topic}: {e})", flush=True)


def describe(step: dict, r: dict) -> str:
    if "error" in r:
        return f"failed: {r['error']}"
    if step["kind"] in ("max", "warm-up"):
        return f"{r['rate']:,.0f} records/s ({r['MB/s']:.1f} MB/s)"
    if "p50" not in r:
        return f"target {r['target']:,} records/s: did not finish, no summary"
    return (f"target {r['target']:,}/s, achieved {r['rate']:,.0f}/s: p50 {ms(r['p50'])} ms, p99 {ms(r['p99'])} ms, "
            f"p99.9 {ms(r['p99.9'])} ms")


def ms(v: float) -> str:
    """Three significant digits at most (ProducerPerformance's whole milliseconds stay whole)."""
    return f"{v:.0f}" if v >= 100 or v == int(v) else f"{v:.3g}"


def run_broker(broker, label: str, args, classes: Path, maxima: dict | None) -> dict:
    """Every step of the plan against one started broker. `maxima` (acks -> records/s)
    sets the fixed rates; None: this broker's own maxima."""
    print(f"\n== {label} on {broker.bootstrap}", flush=True)
    sampler = Sampler(broker)
    sampler.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    own: dict[str, float] = {}
    steps = []
    try:
        for i, step in enumerate(plan(args)):
            topic = f"latency-{i}-{step['kind']}"
            sampler.step, t_start = step["name"], sampler.now()
            create_topic(broker.bootstrap, topic, PARTITIONS)
            sampler.topic = topic
            try:
                result = run_step(broker, step, topic, maxima or own, args, classes)
            except Exception as e:  # noted in the results; the next steps go on
                result = {"error": f"{type(e).__name__}: {e}"[-600:]}
            if "rate" in result and step["kind"] == "max":
                own[step["acks"]] = result["rate"]
            sampler.topic = None
            delete_topic(admin, topic)
            steps.append({**step, **result, "t_start": t_start, "t_end": sampler.now()})
            print(f"  {step['name']:24} {describe(step, result)}", flush=True)
    finally:
        samples = sampler.finish()
    hwm = common.memory_kib(broker.proc.pid)["VmHWM"] / 1024
    return {"label": label, "steps": steps, "samples": samples, "peak RSS MiB": hwm,
            "rates from": KAFKA if maxima else label}


def with_broker(kind: str, args, classes: Path, maxima: dict | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"latency-{kind}-") as d:
        broker = common.Sluice(Path(d)) if kind == "sluice" else common.Kafka(workdir=Path(d))
        broker.start()
        try:
            return run_broker(broker, "Sluice" if kind == "sluice" else KAFKA, args, classes, maxima)
        finally:
            broker.stop()


# --- reporting --------------------------------------------------------------------------

def cell(step: dict) -> str:
    if "error" in step:
        return "failed"
    if "rate" not in step:
        return "no result"
    if step["kind"] == "max":
        return f"{step['rate']:,.0f} rec/s ({step['MB/s']:.0f} MB/s)"
    if "p50" not in step:
        return "did not finish"
    return f"{ms(step['p50'])} / {ms(step['p99'])} / {ms(step['p99.9'])} ms"


def ratio(a: dict, b: dict) -> str:
    keys = ("rate",) if a["kind"] == "max" else ("p50", "p99", "p99.9")  # >1: Sluice faster / slower
    if any(k not in a or k not in b or not b[k] for k in keys):
        return ""
    return " / ".join(f"{a[k] / b[k]:.2f}" for k in keys)


def table_rows(runs: list[dict]) -> list[list[str]]:
    header = ["step (latency: p50 / p99 / p99.9)", "rate"] + [r["label"] for r in runs]
    if len(runs) == 2:
        header.append(f"{runs[0]['label']} / {runs[1]['label']}")
    rows = [header]
    for i, step in enumerate(runs[0]["steps"]):
        if step["kind"] == "warm-up":
            continue
        rate = "unthrottled" if step["kind"] == "max" else f"{step.get('target', 0):,}/s"
        row = [step["name"], rate] + [cell(r["steps"][i]) for r in runs]
        if len(runs) == 2:
            row.append(ratio(runs[0]["steps"][i], runs[1]["steps"][i]))
        rows.append(row)
    peaks = [r["peak RSS MiB"] for r in runs]
    row = ["peak RSS", ""] + [f"{p:,.1f} MiB" for p in peaks]
    if len(runs) == 2:
        row.append(f"{peaks[0] / peaks[1]:.2f}")
    rows.append(row)
    return rows


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def conditions(args, load_before: tuple[float, float, float]) -> dict:
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(common.REPO_DIR), *a], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "src"):
        commit += " + uncommitted changes in src/"
    binary = brokers.sluice_bin()
    built = datetime.datetime.fromtimestamp(binary.stat().st_mtime, datetime.timezone.utc)
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit, "sluice binary": f"{binary}, built {built.isoformat(timespec='seconds')}",
            "cpus": os.cpu_count(), "load average before": load_before, "load average after": os.getloadavg(),
            "machine": platform.platform(), "seconds": args.seconds, "warmup": args.warmup,
            "broker warm-up": args.broker_warmup,
            "record size": args.record_size, "partitions": PARTITIONS, "percents": args.percents,
            "producer": list(PRODUCER_PROPS), "end-to-end acks": args.e2e_acks, "note": args.note}


def load(averages) -> str:
    return " / ".join(f"{x:.2f}" for x in averages)


def write_markdown(path: Path, rows: list[list[str]], cond: dict, runs: list[dict]) -> None:
    lines = [f"# bench/latency, {cond['date']}", "",
             f"Commit {cond['commit']} ({cond['sluice binary']}), {cond['cpus']} CPUs shared with the clients; "
             f"load average before {load(cond['load average before'])}, after {load(cond['load average after'])}; "
             f"{cond['broker warm-up']} s of unthrottled produce to warm each broker up, then "
             f"{cond['seconds']} s per step after {cond['warmup']} s of warm-up, {cond['record size']} B records, "
             f"{cond['partitions']} partitions, {' '.join(cond['producer'])}; rates are "
             f"{', '.join(map(str, cond['percents']))}% of {runs[0]['rates from']}'s maxima; end to end with "
             f"acks={cond['end-to-end acks']}. Ratios: maxima, above 1 when Sluice is faster; latencies, below 1 "
             f"when Sluice is quicker.", ""]
    if cond.get("note"):
        lines += [cond["note"], ""]
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "---|" * len(rows[0]))
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    path.write_text("\n".join(lines) + "\n")


def aligned(runs: list[dict]) -> tuple[list[float], list[str]]:
    """Slot starts for the steps (and the start-up before them), each as wide as the
    slowest broker's: so both brokers' step k begin at the same x."""
    names = ["start"] + [s["name"] for s in runs[0]["steps"]]
    widths = []
    for k in range(len(names)):
        widths.append(max(duration(r, k) for r in runs))
    starts = [sum(widths[:k]) for k in range(len(names))]
    return starts + [sum(widths)], names


def duration(run: dict, k: int) -> float:
    steps = run["steps"]
    if k == 0:
        return steps[0]["t_start"] if steps else 0.0
    return steps[k - 1]["t_end"] - steps[k - 1]["t_start"]


def timeline(run: dict, starts: list[float], names: list[str]) -> list[tuple[float, float, float | None]]:
    """(aligned x, RSS MiB, records/s or None) per sample."""
    begin = {"start": 0.0} | {s["name"]: s["t_start"] for s in run["steps"]}
    out, prev = [], None
    for t, step, rss, hw in run["samples"]:
        x = starts[names.index(step)] + t - begin[step]
        rate = None
        if prev and hw is not None and prev[1] == step and prev[3] is not None:
            rate = (hw - prev[3]) / (t - prev[0])
        out.append((x, rss, rate))
        prev = (t, step, rss, hw)
    return out


COLORS = {"Sluice": "tab:blue", KAFKA: "tab:red"}
STYLES = {"p50": ("-", "o"), "p99": ("--", "s"), "p99.9": (":", "^")}


def log_ticks(ax) -> None:
    """A log y axis labelled 1, 2, 5, 10, 20, 50, ... in plain numbers."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_latency(runs: list[dict], cond: dict, path: Path) -> None:
    kinds = [("produce acks=1", "produce", "1"), ("produce acks=all", "produce", "all"),
             (f"end to end (acks={cond['end-to-end acks']})", "e2e", cond["end-to-end acks"])]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.5), sharey=True)
    for ax, (title, kind, acks) in zip(axes, kinds):
        for run in runs:
            steps = [s for s in run["steps"] if s["kind"] == kind and s["acks"] == acks and "p50" in s]
            for p, (ls, marker) in STYLES.items():
                ax.plot([s["rate"] / 1000 for s in steps], [max(s[p], 0.1) for s in steps], ls=ls, marker=marker,
                        color=COLORS.get(run["label"]), label=f"{run['label']} {p}")
        ax.set_title(title)
        ax.set_xlabel("throughput achieved (thousand records/s)")
        log_ticks(ax)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency (ms, log scale)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Latency at {', '.join(map(str, cond['percents']))}% of the maximum produce rate "
                 f"({cond['record size']} B records, {cond['partitions']} partitions, {cond['cpus']} shared CPUs, "
                 f"{cond['date'][:10]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(runs: list[dict], cond: dict, path: Path, what: str) -> None:
    starts, names = aligned(runs)
    fig, ax = plt.subplots(figsize=(16, 5.5))
    for k, name in enumerate(names):
        if k % 2:
            ax.axvspan(starts[k], starts[k + 1], color="0.92", zorder=0)
        ax.text((starts[k] + starts[k + 1]) / 2, 1.01, name, transform=ax.get_xaxis_transform(), rotation=35,
                fontsize=7, ha="left", va="bottom")
    for run in runs:
        points = timeline(run, starts, names)
        if what == "rss":
            xs, ys = [p[0] for p in points], [p[1] for p in points]
        else:
            xs, ys = [p[0] for p in points if p[2] is not None], [p[2] / 1000 for p in points if p[2] is not None]
        ax.plot(xs, ys, ".-" if what != "rss" else "-", ms=3, lw=1, color=COLORS.get(run["label"]),
                label=run["label"])
    ax.set_xlim(0, starts[-1])
    ax.set_xlabel("seconds (steps aligned: each as long as the slower broker's)")
    ax.set_ylabel("RSS (MiB)" if what == "rss" else "records written per second (thousands, high watermarks)")
    if what == "rss":
        log_ticks(ax)
    ax.set_title(f"{'RSS' if what == 'rss' else 'Records written per second'}, sampled every second "
                 f"({cond['date'][:10]})", pad=70)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(runs: list[dict], args, load_before: tuple[float, float, float]) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cond = conditions(args, load_before)
    rows = table_rows(runs)
    print(f"\nlatency, {cond['date']}, {args.seconds} s per step (+{args.warmup} s warm-up), "
          f"{args.record_size} B records, {PARTITIONS} partitions; rates from {runs[0]['rates from']}'s maxima")
    print_table(rows)
    (out / "results.json").write_text(json.dumps({"conditions": cond, "runs": runs}, indent=1) + "\n")
    write_markdown(out / "results.md", rows, cond, runs)
    plot_latency(runs, cond, out / "latency.png")
    plot_timeline(runs, cond, out / "throughput.png", "throughput")
    plot_timeline(runs, cond, out / "rss.png", "rss")
    print(f"\nwrote {out}/results.json, results.md, latency.png, throughput.png, rss.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15, help="measured seconds per step (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds before each step's measurement (default 3)")
    ap.add_argument("--broker-warmup", type=int, default=10,
                    help="seconds of unthrottled produce before the first step, not reported (default 10)")
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--percents", type=lambda s: [int(x) for x in s.split(",")], default=[10, 50, 90],
                    help="fixed rates, percent of the maximum (default 10,50,90)")
    ap.add_argument("--e2e-acks", default="1", choices=("1", "all"), help="end-to-end producer acks (default 1)")
    ap.add_argument("--kafka", action=argparse.BooleanOptionalAction, default=True,
                    help="also Apache Kafka 4.4, whose maxima set the rates (default on)")
    ap.add_argument("--sluice-only", dest="kafka", action="store_false",
                    help="Sluice alone, at percentages of its own maxima")
    ap.add_argument("--kafka-only", action="store_true", help="Apache Kafka alone")
    ap.add_argument("--note", default="", help="a line on the conditions, written into results.md")
    ap.add_argument("--out", default=str(RESULTS), help=f"where the results go (default {RESULTS})")
    args = ap.parse_args()

    classes = compile_e2e()
    load_before = os.getloadavg()
    runs = []
    if args.kafka or args.kafka_only:
        runs.append(with_broker("kafka", args, classes, None))
    if not args.kafka_only:
        maxima = {s["acks"]: s["rate"] for s in runs[0]["steps"] if s["kind"] == "max"} if runs else None
        runs.insert(0, with_broker("sluice", args, classes, maxima))
    write_results(runs, args, load_before)


if __name__ == "__main__":
    main()
