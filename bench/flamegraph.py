#!/usr/bin/env python3
"""Where the broker's CPU goes on the hot paths: `perf record` on a running
Sluice while Kafka's ProducerPerformance writes (produce append) and then
while ConsumerPerformance reads it back (fetch read), folded by inferno into
one flame graph SVG per path, and the functions with the most samples of
their own printed as a table. With `--wide N`, the path profiled is instead
Fetch across N partitions of one record each (bench/partitions' set-up): a
session-opening fetch, nine incremental ones with nothing new and a closing
one, over and over for `--seconds`. `--sluice-bin` profiles another build (say, one
from before a change) and `--label` names its files, for a before/after pair.
Numbers and pictures only: nothing here asserts a time."""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import common
import partitions
import perf_tools
from raw_fetch import FetchConnection

RESULTS = common.BENCH_DIR / "results" / "flamegraphs"


def record(pid: int, out: Path, frequency: int):
    """Starts `perf record` on `pid` (call graphs from DWARF unwinding: the
    release build keeps debug info); returns the process to stop."""
    return subprocess.Popen(["perf", "record", "-F", str(frequency), "--call-graph", "dwarf,16384",
                             "-p", str(pid), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(perf: subprocess.Popen) -> None:
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=300)
    if perf.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"perf record failed ({perf.returncode}): {err.decode(errors='replace')[-1000:]}")


def fold(data: Path) -> str:
    """perf.data to inferno's folded stacks ("frame;frame;frame count" lines)."""
    script = subprocess.Popen(["perf", "script", "-i", str(data)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    folded = subprocess.run(["inferno-collapse-perf"], stdin=script.stdout, capture_output=True,
                            text=True, check=True)
    script.wait()
    return folded.stdout


def svg(folded: str, title: str, out: Path) -> None:
    done = subprocess.run(["inferno-flamegraph", "--title", title, "--width", "1600"], input=folded,
                          capture_output=True, text=True, check=True)
    out.write_text(done.stdout)


def top_functions(folded: str, n: int) -> tuple[int, list[tuple[str, int]]]:
    """Samples in all, and the `n` frames with the most samples of their own
    (the leaf of each stack; weighted by perf's sample period), kernel frames included."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        own[stack.rsplit(";", 1)[-1]] += int(count)
    return total, own.most_common(n)


def shorten(frame: str, width: int = 90) -> str:
    return frame if len(frame) <= width else frame[: width - 1] + "…"


def profile(broker, args, work: Path, path: str, step, mb: float) -> None:
    """Runs `step` under perf; writes <path>-<label>.svg and prints the top
    functions. `step` returns a dict with its rate ("MB/s" or "fetches/s")."""
    data = work / f"{path}.data"
    perf = record(broker.proc.pid, data, args.frequency)
    threading.Event().wait(1.0)  # perf attached before the load starts
    before = common.cpu_seconds(broker.proc.pid)
    result = step()
    cpu = common.cpu_seconds(broker.proc.pid) - before
    stop(perf)
    folded = fold(data)
    image = args.out / f"{path}-{args.label}.svg"
    rate = f"{result['MB/s']:.1f} MB/s" if mb else ", ".join(f"{v:,.1f} {k}" for k, v in result.items())
    per = f" ({cpu / mb * 1000:.2f} s per GB)" if mb else ""
    size = f"{args.records:,} x {args.size} B, " if mb else ""
    svg(folded, f"Sluice {path} ({args.label}): {size}{rate}, broker CPU {cpu:.2f} s", image)
    total, top = top_functions(folded, args.top)
    print(f"\n{path} ({args.label}): {rate}, broker CPU {cpu:.2f} s{per}, {total:,} perf weight in all -> {image}")
    print(f"  {'own weight':>13}  {'share':>6}  function")
    for frame, count in top:
        print(f"  {count:>13,}  {count / max(total, 1):>6.1%}  {shorten(frame)}")


def session_fetches(bootstrap: str, n: int, seconds: float) -> dict:
    """Open a session on every partition (caught up), nine incremental
    fetches with nothing new, close it; again until `seconds` pass."""
    c = FetchConnection(bootstrap)
    caught_up = partitions.everything(n, offset=1)
    fetches = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            session = c.fetch(0, 0, caught_up)["session_id"]
            for epoch in range(1, 10):
                c.fetch(session, epoch, {})
            c.fetch(session, -1, {})
            fetches += 11
    finally:
        c.close()
    return {"fetches/s": fetches / (time.perf_counter() - start)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--frequency", type=int, default=1999, help="perf samples a second (default 1999)")
    ap.add_argument("--top", type=int, default=15, help="functions listed per path (default 15)")
    ap.add_argument("--sluice-bin", type=Path, default=None, help="the build to profile (default: this one)")
    ap.add_argument("--label", default="now", help="names the SVGs: produce-<label>.svg, fetch-<label>.svg")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--wide", type=int, default=0,
                    help="profile Fetch sessions across this many partitions instead (e.g. 10000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long --wide fetches (default 20)")
    args = ap.parse_args()
    if args.sluice_bin:
        os.environ["SLUICE_BIN"] = str(args.sluice_bin.resolve())
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="flamegraph-") as d:
        work = Path(d)
        broker = common.Sluice(work / "sluice").start()
        try:
            if args.wide:
                partitions.create(broker.bootstrap, args.wide, 300)
                partitions.wait_fetchable(broker.bootstrap, args.wide, 300)
                partitions.fill(broker.bootstrap, args.wide)
                step = lambda: session_fetches(broker.bootstrap, args.wide, args.seconds)  # noqa: E731
                profile(broker, args, work, f"fetch-{args.wide}-partitions", step, 0)
                return
            topic = "flamegraph"
            perf_tools.java(perf_tools.TOPICS, "--bootstrap-server", broker.bootstrap, "--create", "--topic",
                            topic, "--partitions", str(args.partitions), "--replication-factor", "1")
            steps = {
                "produce": lambda: perf_tools.produce(broker.bootstrap, topic, args.records, args.size, "1"),
                "fetch": lambda: perf_tools.consume(broker.bootstrap, topic, args.records),
            }
            for path, step in steps.items():
                profile(broker, args, work, path, step, args.records * args.size / 1e6)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
