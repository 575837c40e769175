#!/usr/bin/env python3
"""Jepsen-style fault injection against a 3-node cluster: Sluice and Apache Kafka 4.4 alike.

    nemesis.py --impl sluice|kafka|both --duration 300 \
               --faults kill-leader,sigstop-follower,partition,kill-controller-and-leader \
               --seed 1 --out results.json

One run per implementation, each on a fresh cluster of 3 combined nodes (broker+controller,
racks a/b/c; cluster.py's harness, the same keys for both):

  load    a confluent-kafka producer (idempotent, acks=all, values p1-<seq>, partition
          seq % 3), optionally Kafka's Java VerifiableProducer (idempotent, acks=-1, values
          7.<seq>), and a consumer group `nemesis-g` (2 confluent-kafka consumers, manual
          synchronous commits every 200 records) -- all the time the faults run;
  faults  one at a time, chosen at random (seeded) from the enabled ones, each healed and
          the topic fully replicated again before the next (bounded waits):
            kill-leader                 kill -9 the leader of a random partition, restart it
            sigstop-follower            SIGSTOP a follower ~8 s (> replica.lag.time.max.ms),
                                        ISR shrink and expand observed through Metadata
            partition                   the leader of a random partition cut from the two
                                        other nodes (nftables, by connection owner uid), ~12 s
            kill-controller-and-leader  kill -9 the active controller and a partition's
                                        leader together, restart both
  check   after the load stops and everything is healed: every partition read from 0 to
          the (stable) high watermark by a fresh consumer; acked/lost/duplicated/reordered,
          group reads the final log contradicts, committed-offset regressions, seconds
          without acks, fault counts and timings.

The network partition needs root: each node runs under its own uid (users nemesis1..3,
created if missing, via `setpriv`); an nftables table `sluice_nemesis_<pid>` tags each new
connection with the uid that opened it, and the cut drops, in the output hook, what the
isolated node's connections send to the other nodes' listener ports and what the others'
connections send to its ports (see Net). Clients (this process, root) still reach every
node. The cut is removed at heal, the table at exit (and tables of dead harness
processes at start).

Every run is bounded: the faults stop after --duration, the producers get a bounded drain,
every wait has a timeout, and a watchdog kills everything (nodes, Java producer, nft
table) and exits if the whole run overshoots its budget. Node logs stay in the run's
work directory (printed); runs with lost or duplicated records are copied to
--evidence-dir.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLUSTER_DIR = HERE.parent
if str(CLUSTER_DIR) not in sys.path:
    sys.path.insert(0, str(CLUSTER_DIR))

import cluster as cluster_mod  # noqa: E402  (also puts compat/python, compat/java, compat/kafka on sys.path)
from cluster import Cluster, NodeSpec, wait_until  # noqa: E402
import kafka_tools  # noqa: E402
from apache_kafka import die_with_parent  # noqa: E402

TOPIC = "nemesis"
GROUP = "nemesis-g"
PARTITIONS = 3
RF = 3
LAYOUT = [NodeSpec(1, "broker,controller", "a"),
          NodeSpec(2, "broker,controller", "b"),
          NodeSpec(3, "broker,controller", "c")]
EXTRA_CONFIG = {
    "replica.lag.time.max.ms": "5000",
    "broker.session.timeout.ms": "4000",
    "broker.heartbeat.interval.ms": "1000",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
    "offsets.topic.replication.factor": "3",
}
FAULTS = ("kill-leader", "sigstop-follower", "partition", "kill-controller-and-leader")
NFT_PREFIX = "sluice_nemesis_"
NFT_TABLE = f"{NFT_PREFIX}{os.getpid()}"  # one table per harness process: runs side by side leave each other alone
JAVA_VALUE_PREFIX = 7          # VerifiableProducer writes "<prefix>.<seq>"
COMMIT_EVERY = 200
READABLE_JARS = Path("/tmp/nemesis-kafka-jars")  # the jars where the nodes' uids can read them
CLIENT_LOG = logging.getLogger("nemesis.clients")  # librdkafka's logs: <run dir>/clients.log
CLIENT_LOG.propagate = False


# ---------------------------------------------------------------------------- timeline

class Timeline:
    """Events with seconds since the run's start and the wall clock (to match node logs)."""

    def __init__(self, echo: bool = True):
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.echo = echo

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, kind: str, **fields) -> dict:
        wall = time.time()
        e = {"t": round(self.now(), 3),
             "wall": time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}",
             "event": kind, **fields}
        with self.lock:
            self.events.append(e)
        if self.echo:
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            sys.stderr.write(f"[{e['t']:8.2f} {e['wall']}] {kind} {extra}\n")
            sys.stderr.flush()
        return e


# ---------------------------------------------------------------------------- cleanup

_CLEANUPS: list = []
_CLEANUP_LOCK = threading.Lock()


def on_cleanup(fn):
    with _CLEANUP_LOCK:
        _CLEANUPS.append(fn)
    return fn


def run_cleanups() -> None:
    with _CLEANUP_LOCK:
        fns = list(reversed(_CLEANUPS))
        _CLEANUPS.clear()
    for fn in fns:
        try:
            fn()
        except Exception as e:  # noqa: BLE001  (clean up what can be)
            print(f"nemesis: cleanup {getattr(fn, '__name__', fn)} failed: {e!r}", file=sys.stderr)


def start_watchdog(budget_s: float) -> threading.Timer:
    """Kill everything and exit if the run overshoots `budget_s` (a hung wait somewhere)."""
    def fire():
        print(f"nemesis: WATCHDOG: run exceeded its {budget_s:.0f}s budget; killing everything",
              file=sys.stderr, flush=True)
        run_cleanups()
        os._exit(124)
    t = threading.Timer(budget_s, fire)
    t.daemon = True
    t.start()
    return t


# ---------------------------------------------------------------------------- per-node uids

def node_uids(count: int) -> dict[int, tuple[int, int]] | None:
    """uid, gid of the users nemesis1..N (created when missing); None when not root or
    setpriv is missing (then the nodes run as this user and the partition fault is off)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    out = {}
    for i in range(1, count + 1):
        name = f"nemesis{i}"
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                           check=True, timeout=30, capture_output=True)
            pw = pwd.getpwnam(name)
        out[i] = (pw.pw_uid, pw.pw_gid)
    return out


def readable_jars() -> Path:
    """compat/.cache/kafka-jars is root-only (0700): hard links (or copies) of the jars in a
    world-readable directory, for the Kafka nodes running under their own uids."""
    src = kafka_tools.JARS_DIR
    READABLE_JARS.mkdir(parents=True, exist_ok=True)
    os.chmod(READABLE_JARS, 0o755)
    want = {p.name for p in src.glob("*.jar")}
    for stale in READABLE_JARS.glob("*.jar"):
        if stale.name not in want:
            stale.unlink()
    for name in want:
        dst = READABLE_JARS / name
        if dst.exists() and dst.stat().st_size == (src / name).stat().st_size:
            continue
        if dst.exists():
            dst.unlink()
        try:
            os.link(src / name, dst)
        except OSError:
            shutil.copy2(src / name, dst)
        os.chmod(dst, 0o644)
    return READABLE_JARS


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for f in files:
            os.chown(os.path.join(root, f), uid, gid)


class NemesisCluster(Cluster):
    """cluster.py's Cluster, each node under its own uid (setpriv) when `uids` is given, so
    nftables can tell the nodes' sockets apart by owner; Kafka reads its jars from a
    world-readable copy then."""

    def __init__(self, *args, uids=None, kafka_jvm_extra=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.uids = uids
        self.kafka_jvm_extra = list(kafka_jvm_extra)
        self.jars_dir = readable_jars() if (uids and self.impl == "kafka") else None
        if uids:
            os.chmod(self.workdir, 0o755)
            for n in self.nodes.values():
                chown_tree(n.workdir, *uids[n.id])

    def _as_node(self, node_id: int, cmd: list[str]) -> list[str]:
        if not self.uids:
            return cmd
        if self.jars_dir is not None:
            cmd = [c.replace(str(kafka_tools.JARS_DIR), str(self.jars_dir)) for c in cmd]
        uid, gid = self.uids[node_id]
        # A uid change clears the parent-death signal: setpriv sets it again after it.
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--pdeathsig=KILL", *cmd]

    def format_command(self, node_id: int) -> list[str]:
        return self._as_node(node_id, super().format_command(node_id))

    def start_command(self, node_id: int) -> list[str]:
        cmd = super().start_command(node_id)
        if self.impl == "kafka" and self.kafka_jvm_extra:
            cmd = [cmd[0], *self.kafka_jvm_extra, *cmd[1:]]
        return self._as_node(node_id, cmd)

    def spawn_many(self, ids, timeout: float = 120.0) -> None:
        """Start several stopped nodes at once (a quorum may need both), wait until they
        answer and every live broker lists every live broker."""
        for i in ids:
            self._spawn(i)
        self.wait_answering(ids, timeout)
        self.wait_brokers(self.live_broker_ids, timeout=timeout)

    def hard_kill_all(self) -> None:
        for n in self.nodes.values():
            if n.proc is not None and n.proc.poll() is None:
                try:
                    os.killpg(n.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ---------------------------------------------------------------------------- network partition

class Net:
    """The partition fault, by nftables in the output hook (every packet on loopback passes
    it once, at the sender). Each node runs under its own uid. At set-up, before the nodes
    start, a table tags every new connection with the uid of the socket that opened it
    (`ct mark`). To isolate node N, drop:

      - connections N opened (ct mark = uid N) towards the other nodes' listener ports,
      - connections the others opened (ct mark = their uids) towards N's listener ports,

    and the same by the sending socket's owner (`meta skuid`) for a connection opened
    before the tag rules. Replies on such connections (destination: an ephemeral port)
    pass, but get no new requests to answer. The conntrack tag matters: once a process
    closes a socket with unsent data (a request timed out), the kernel keeps sending it
    from an orphaned socket whose owner nftables cannot read any more (`meta skuid` does
    not match) -- seen here: a broker heartbeat got through that way and unfenced the
    isolated broker. Clients (root) are never cut."""

    def __init__(self, c: NemesisCluster, timeline: Timeline):
        self.c = c
        self.timeline = timeline
        self.reason = None
        self.isolated: int | None = None
        if not c.uids:
            self.reason = "nodes do not run under their own uids (not root, or no setpriv)"
        elif not self._nft_ready():
            pass  # reason set
        self.available = self.reason is None
        if self.available:
            self.drop_table()  # this process's, from a run before (--impl both)
            on_cleanup(self.drop_table)
            tags = "".join(f"    ct state new meta skuid {uid} ct mark set {uid}\n"
                           for uid in sorted({u for u, _ in c.uids.values()}))
            self._nft(f"table inet {NFT_TABLE} {{\n"
                      f"  chain tag {{\n    type filter hook output priority -150; policy accept;\n{tags}  }}\n"
                      f"  chain cut {{\n    type filter hook output priority 0; policy accept;\n  }}\n}}\n")

    @staticmethod
    def _nft(script: str) -> None:
        r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"nft -f failed: {r.stderr}\n{script}")

    def _nft_ready(self) -> bool:
        if not shutil.which("nft"):
            try:
                subprocess.run(["apt-get", "install", "-y", "nftables"], capture_output=True, timeout=300,
                               env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            except Exception as e:  # noqa: BLE001
                self.reason = f"apt-get install nftables failed: {e!r}"
                return False
        if not shutil.which("nft"):
            self.reason = "nft not found (apt-get install -y nftables did not provide it)"
            return False
        probe = subprocess.run(["nft", "add", "table", "inet", NFT_TABLE + "_probe"], capture_output=True, text=True)
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE + "_probe"], capture_output=True)
        self._drop_stale_tables()
        if probe.returncode != 0:
            self.reason = f"nft cannot add a table: {probe.stderr.strip()}"
            return False
        return True

    def ports(self, ids) -> list[int]:
        return sorted(p for i in ids for p in (self.c.node(i).port, self.c.node(i).controller_port) if p)

    def isolate(self, node_id: int) -> None:
        others = [i for i in self.c.node_ids if i != node_id]
        uid = self.c.uids[node_id][0]
        other_uids = ", ".join(str(self.c.uids[i][0]) for i in others)
        to_others = ", ".join(map(str, self.ports(others)))
        to_it = ", ".join(map(str, self.ports([node_id])))
        rules = (f"add rule inet {NFT_TABLE} cut ct mark {uid} tcp dport {{ {to_others} }} counter drop\n"
                 f"add rule inet {NFT_TABLE} cut ct mark {{ {other_uids} }} tcp dport {{ {to_it} }} counter drop\n"
                 f"add rule inet {NFT_TABLE} cut meta skuid {uid} tcp dport {{ {to_others} }} counter drop\n"
                 f"add rule inet {NFT_TABLE} cut meta skuid {{ {other_uids} }} tcp dport {{ {to_it} }} counter drop\n")
        self._nft(f"flush chain inet {NFT_TABLE} cut\n" + rules)
        self.isolated = node_id
        self.timeline.log("nft-isolate", node=node_id, rules=rules.replace("\n", "; "))

    def heal(self) -> None:
        """Remove the cut (the tagging stays)."""
        if not self.available:
            return
        counters = self.counters() if self.isolated is not None else ""
        r = subprocess.run(["nft", "flush", "chain", "inet", NFT_TABLE, "cut"], capture_output=True, text=True,
                           timeout=30)
        if self.isolated is not None:
            drops = [line.strip() for line in counters.splitlines() if "drop" in line]
            self.timeline.log("nft-heal", node=self.isolated, rc=r.returncode, dropped=drops)
        self.isolated = None

    @staticmethod
    def _drop_stale_tables() -> None:
        """Tables of harness processes that are gone (killed before their clean-up)."""
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=30).stdout
        for name in re.findall(rf"table inet ({NFT_PREFIX}(\d+))\b", out):
            table, pid = name
            if not Path(f"/proc/{pid}").exists():
                subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True, timeout=30)

    def drop_table(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, timeout=30)

    def counters(self) -> str:
        r = subprocess.run(["nft", "list", "chain", "inet", NFT_TABLE, "cut"], capture_output=True, text=True,
                           timeout=30)
        return r.stdout


# ---------------------------------------------------------------------------- load

def seconds_without(times: list[float], start: float, end: float) -> tuple[int, int, list[int]]:
    """(seconds in [start, end) with no event, the longest run of them, per-second counts)."""
    n = max(0, int(end - start))
    counts = [0] * n
    for t in times:
        k = int(t - start)
        if 0 <= k < n:
            counts[k] += 1
    zero = longest = run = 0
    for x in counts:
        if x == 0:
            zero += 1
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return zero, longest, counts


class PyProducer(threading.Thread):
    """confluent-kafka, enable.idempotence, acks=all; value p1-<seq> to partition seq % 3 at
    `rate` per second. Every delivery report kept: acked (partition, offset, time) or failed."""

    def __init__(self, bootstrap: str, timeline: Timeline, rate: float, prefix: str = "p1"):
        super().__init__(daemon=True, name=f"producer-{prefix}")
        self.bootstrap = bootstrap
        self.timeline = timeline
        self.rate = rate
        self.prefix = prefix
        self.stop_event = threading.Event()
        self.sent: dict[str, tuple[int, float]] = {}         # value -> (partition, t)
        self.acked: dict[str, tuple[int, int, float]] = {}   # value -> (partition, offset, t)
        self.failed: dict[str, str] = {}                     # value -> error
        self.errors = collections.Counter()                  # error_cb codes
        self.fatal: list[str] = []
        self.instances = 0
        self.started_at = self.stopped_at = None
        self.drain_left = 0
        self.drain_timeout = 60.0
        self._fatal_now = None

    def _new(self):
        from confluent_kafka import Producer
        self.instances += 1
        return Producer({
            "bootstrap.servers": self.bootstrap,
            "client.id": f"nemesis-{self.prefix}-{self.instances}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "request.timeout.ms": 10000,
            "topic.metadata.refresh.interval.ms": 2000,
            "error_cb": self._on_error,
            "logger": CLIENT_LOG,
        })

    def _on_error(self, err) -> None:
        self.errors[err.name()] += 1
        if err.fatal():
            self._fatal_now = err

    def _report(self, seq: int):
        value = f"{self.prefix}-{seq}"

        def cb(err, msg):
            now = self.timeline.now()
            if err is None:
                self.acked[value] = (msg.partition(), msg.offset(), now)
            else:
                self.failed[value] = f"{err.name()}: {err.str()}"
        return cb

    def run(self) -> None:
        from confluent_kafka import KafkaException
        p = self._new()
        self.started_at = self.timeline.now()
        seq = 0
        start = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if self._fatal_now is not None:
                    err, self._fatal_now = self._fatal_now, None
                    self.fatal.append(f"{err.name()}: {err.str()}")
                    self.timeline.log("producer-fatal", producer=self.prefix, error=f"{err.name()}: {err.str()}")
                    try:
                        p.flush(5)
                    except Exception:  # noqa: BLE001
                        pass
                    p = self._new()
                value = f"{self.prefix}-{seq}"
                partition = seq % PARTITIONS
                try:
                    p.produce(TOPIC, value=value.encode(), partition=partition, on_delivery=self._report(seq))
                except BufferError:
                    p.poll(0.1)
                    continue
                except KafkaException as e:
                    self.failed[value] = f"produce(): {e}"
                    seq += 1
                    continue
                self.sent[value] = (partition, self.timeline.now())
                seq += 1
                p.poll(0)
                wait = start + seq / self.rate - time.monotonic()
                while wait > 0 and not self.stop_event.is_set():
                    p.poll(min(wait, 0.05))
                    wait = start + seq / self.rate - time.monotonic()
        finally:
            self.stopped_at = self.timeline.now()
            self.drain_left = p.flush(self.drain_timeout)
            self.timeline.log("producer-stopped", producer=self.prefix, sent=len(self.sent),
                              acked=len(self.acked), failed=len(self.failed), undelivered=self.drain_left)

    def stop(self, drain_timeout: float = 60.0) -> None:
        self.drain_timeout = drain_timeout
        self.stop_event.set()
        self.join(drain_timeout + 30)


class JavaProducer:
    """Kafka's VerifiableProducer (kafka-tools jar), acks=-1, enable.idempotence=true: one
    JSON line per send result on stdout, read as they come (for the per-second acks)."""

    def __init__(self, bootstrap: str, timeline: Timeline, rate: int, workdir: Path):
        self.timeline = timeline
        self.acked: dict[str, tuple[int, int, float]] = {}
        self.failed: dict[str, str] = {}
        self.other = collections.Counter()
        self.started_at = self.stopped_at = None
        cfg = workdir / "java-producer.properties"
        # The file wins over the tool's own settings, which include retries=0 (refused with
        # idempotence).
        cfg.write_text("enable.idempotence=true\nacks=all\nretries=2147483647\ndelivery.timeout.ms=60000\n"
                       "request.timeout.ms=10000\nmetadata.max.age.ms=2000\nlinger.ms=5\n")
        self.out_path = workdir / "java-producer.out"
        self.err_path = workdir / "java-producer.err"
        cmd = ["java", "-Xmx160m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j2.configurationFile={kafka_tools.LOG4J2_CONFIG}",
               "-cp", str(kafka_tools.JARS_DIR / "*"), "org.apache.kafka.tools.VerifiableProducer",
               "--topic", TOPIC, "--bootstrap-server", bootstrap, "--throughput", str(rate),
               "--acks", "-1", "--command-config", str(cfg), "--value-prefix", str(JAVA_VALUE_PREFIX)]
        self.err_file = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err_file,
                                     start_new_session=True, preexec_fn=die_with_parent)
        on_cleanup(self.kill)
        self.started_at = timeline.now()
        self.reader = threading.Thread(target=self._read, daemon=True, name="java-producer-reader")
        self.reader.start()

    def _read(self) -> None:
        with open(self.out_path, "wb") as keep:
            for raw in self.proc.stdout:
                keep.write(raw)
                now = self.timeline.now()
                try:
                    e = json.loads(raw)
                except ValueError:
                    self.other["unparsed"] += 1
                    continue
                name = e.get("name")
                if name == "producer_send_success":
                    self.acked[str(e["value"])] = (int(e["partition"]), int(e["offset"]), now)
                elif name == "producer_send_error":
                    self.failed[str(e.get("value"))] = str(e.get("exception") or e.get("message"))
                else:
                    self.other[name] += 1

    def stop(self, drain_timeout: float = 60.0) -> None:
        """SIGTERM: its shutdown hook closes the producer (waits for what is in flight)."""
        self.stopped_at = self.timeline.now()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=drain_timeout)
            except subprocess.TimeoutExpired:
                self.timeline.log("java-producer-killed", reason=f"still running {drain_timeout:.0f}s after SIGTERM")
                self.kill()
        self.reader.join(10)
        self.err_file.close()
        self.timeline.log("producer-stopped", producer="java", acked=len(self.acked), failed=len(self.failed),
                          exit=self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


class GroupConsumer(threading.Thread):
    """One member of `nemesis-g`: reads, commits synchronously every COMMIT_EVERY records and
    keeps what each commit returned (partition -> committed offset)."""

    def __init__(self, bootstrap: str, timeline: Timeline, member: int, commits: list, consumed: dict):
        super().__init__(daemon=True, name=f"consumer-{member}")
        self.bootstrap = bootstrap
        self.timeline = timeline
        self.member = member
        self.commits = commits          # shared: (t, member, partition, offset)
        self.consumed = consumed        # shared: (partition, offset) -> {value read there: first t}
        self.stop_event = threading.Event()
        self.commit_errors = collections.Counter()
        self.rewinds: list[dict] = []   # a partition read again from below where it was, no rebalance between
        self.records = 0
        self.assignments = 0

    def _commit(self, c) -> None:
        from confluent_kafka import KafkaException
        try:
            result = c.commit(asynchronous=False)
        except KafkaException as e:
            self.commit_errors[e.args[0].name()] += 1
            return
        now = self.timeline.now()
        for tp in result or []:
            if tp.error is None and tp.offset >= 0:
                self.commits.append((now, self.member, tp.partition, tp.offset))
            elif tp.error is not None:
                self.commit_errors[tp.error.name()] += 1

    def run(self) -> None:
        from confluent_kafka import Consumer
        last: dict[int, int] = {}

        def on_assign(consumer, partitions):
            self.assignments += 1
            last.clear()
            self.timeline.log("group-assign", member=self.member, partitions=[tp.partition for tp in partitions])

        def on_revoke(consumer, partitions):
            last.clear()

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": GROUP,
                      "client.id": f"nemesis-consumer-{self.member}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
                      "topic.metadata.refresh.interval.ms": 2000, "logger": CLIENT_LOG,
                      "error_cb": lambda err: self.commit_errors.__setitem__(
                          "error_cb:" + err.name(), self.commit_errors["error_cb:" + err.name()] + 1)})
        c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
        since_commit = 0
        try:
            while not self.stop_event.is_set():
                msg = c.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    self.commit_errors["poll:" + msg.error().name()] += 1
                    continue
                p, off = msg.partition(), msg.offset()
                if p in last and off <= last[p]:
                    self.rewinds.append({"t": round(self.timeline.now(), 3), "member": self.member,
                                         "partition": p, "from": last[p], "to": off})
                last[p] = off
                self.consumed.setdefault((p, off), {}).setdefault(msg.value().decode(errors="replace"),
                                                                  round(self.timeline.now(), 3))
                self.records += 1
                since_commit += 1
                if since_commit >= COMMIT_EVERY:
                    self._commit(c)
                    since_commit = 0
            if since_commit:
                self._commit(c)
        finally:
            c.close()


# ---------------------------------------------------------------------------- cluster views

def topic_view(c: Cluster, node_id: int, timeout: float = 3.0) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr) as one broker's Metadata shows `nemesis`."""
    md = c.metadata(node_id, [TOPIC], timeout=timeout)
    (t,) = md.topics
    if t.error_code != 0:
        raise LookupError(f"node {node_id}: {TOPIC}: error {t.error_code}")
    return {p.partition_index: (p.leader_id, sorted(p.replica_nodes), sorted(p.isr_nodes)) for p in t.partitions}


def any_view(c: Cluster, exclude=()) -> tuple[int, dict]:
    last = None
    for i in random.sample(c.live_broker_ids, len(c.live_broker_ids)):
        if i in exclude:
            continue
        try:
            return i, topic_view(c, i)
        except Exception as e:  # noqa: BLE001
            last = e
    raise LookupError(f"no live broker answered Metadata: {last!r}")


def fully_replicated(c: Cluster) -> bool:
    """Every node up and every node's Metadata: each partition led by a live broker, ISR = 3 replicas."""
    if len(c.live_broker_ids) != len(c.broker_ids):
        return False
    for i in c.broker_ids:
        v = topic_view(c, i)
        if len(v) != PARTITIONS:
            return False
        for leader, replicas, isr in v.values():
            if leader < 0 or len(replicas) != RF or isr != replicas:
                return False
    return True


def current_leader(c: Cluster, partition: int) -> tuple[int, list[int], list[int]]:
    def find():
        _, v = any_view(c)
        leader, replicas, isr = v[partition]
        return (leader, replicas, isr) if leader >= 0 and leader in c.live_broker_ids else None
    return wait_until(find, f"a live leader of {TOPIC}-{partition}", 30, 0.25)


def create_topic(c: Cluster) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    fut = admin.create_topics([NewTopic(TOPIC, PARTITIONS, RF, config={"min.insync.replicas": "2"})],
                              request_timeout=30)
    fut[TOPIC].result(60)
    wait_until(lambda: fully_replicated(c), f"{TOPIC}: {PARTITIONS} partitions fully replicated", 60, 0.25)


# ---------------------------------------------------------------------------- faults

class LeaderWatch(threading.Thread):
    """From a leader's kill until its restart is done (+2 s, ≥ 12 s in all), Metadata from the other nodes:
    when another node is first named leader of the partition, and who is named leader once
    the restart is done. Only reads Metadata (nodes are started by the main thread:
    PR_SET_PDEATHSIG is per thread)."""

    def __init__(self, c: Cluster, partition: int, victim: int):
        super().__init__(daemon=True, name="leader-watch")
        self.c, self.p, self.victim = c, partition, victim
        self.t0 = time.monotonic()
        self.restarted = threading.Event()
        self.stop_at: float | None = None
        self.other = self.other_after = self.after_restart = None

    def run(self) -> None:
        while self.stop_at is None or time.monotonic() < self.stop_at:
            done = self.restarted.is_set()
            for i in self.c.live_broker_ids:
                if i == self.victim:
                    continue
                try:
                    leader = topic_view(self.c, i, timeout=2)[self.p][0]
                except Exception:  # noqa: BLE001
                    continue
                if leader >= 0 and leader != self.victim and self.other is None:
                    self.other, self.other_after = leader, round(time.monotonic() - self.t0, 3)
                if done:
                    self.after_restart = leader  # the last view, once the restart is done
                break
            time.sleep(0.2)

    def finish(self, rec: dict) -> None:
        self.restarted.set()
        # At least 12 s from the kill: a fast restart (Sluice's ~0.1 s) comes back within
        # broker.session.timeout.ms, before the controller fenced the old process and moved
        # its leaderships (Kafka's restart takes longer than the session).
        self.stop_at = max(time.monotonic() + 2.0, self.t0 + 12.0)
        self.join(10)
        rec.update(other_leader=self.other, other_leader_after_s=self.other_after,
                   leader_after_restart=self.after_restart)


class Nemesis:
    def __init__(self, c: NemesisCluster, net: Net, timeline: Timeline, rng: random.Random, faults: list[str]):
        self.c = c
        self.net = net
        self.timeline = timeline
        self.rng = rng
        self.faults = faults
        self.counts = collections.Counter()
        self.records: list[dict] = []      # one per fault, with its observations
        self.heal_timeouts = 0
        self.errors: list[str] = []

    def restart(self, ids) -> None:
        ids = [i for i in ids if not self.c.node(i).alive]
        if not ids:
            return
        t = time.monotonic()
        try:
            self.c.spawn_many(ids, timeout=120)
        except Exception as e:  # noqa: BLE001  (a node that does not come back is a finding)
            self.timeline.log("restart-failed", nodes=ids, error=repr(e)[:2000])
            self.errors.append(f"restart of {ids} failed: {e!r}"[:4000])
            for i in ids:  # one more try, from a clean state
                self.c.kill_9(i)
            self.c.spawn_many(ids, timeout=120)
        self.last_restart_s = round(time.monotonic() - t, 2)
        self.timeline.log("restarted", nodes=ids, seconds=self.last_restart_s)

    def wait_healed(self, timeout: float = 60.0) -> float | None:
        """Seconds until every node is up and sees every partition led, ISR = 3 replicas;
        None (and the views each node had, in the timeline) after `timeout`."""
        t = time.monotonic()
        try:
            wait_until(lambda: fully_replicated(self.c), "every partition fully replicated", timeout, 0.25)
        except AssertionError as e:
            self.heal_timeouts += 1
            views = {}
            for i in self.c.broker_ids:
                try:
                    views[i] = {p: {"leader": v[0], "isr": v[2]} for p, v in topic_view(self.c, i).items()}
                except Exception as err:  # noqa: BLE001
                    views[i] = repr(err)[:200]
            self.timeline.log("heal-timeout", seconds=timeout, views=views, alive=self.c.live_broker_ids)
            return None
        return round(time.monotonic() - t, 3)

    def run_one(self, fault: str) -> dict:
        rec = {"fault": fault, "t": round(self.timeline.now(), 3)}
        try:
            rec["controller_before"] = self.c.active_controller(timeout=10)
        except Exception as e:  # noqa: BLE001
            rec["controller_before"] = f"unknown: {e!r}"[:200]
        self.timeline.log("fault", name=fault, active_controller=rec["controller_before"])
        getattr(self, fault.replace("-", "_"))(rec)
        rec["healed_after_s"] = self.wait_healed()
        self.counts[fault] += 1
        self.records.append(rec)
        return rec

    # kill -9 of a partition's leader, restart after 1-3 s
    def kill_leader(self, rec: dict) -> None:
        p = self.rng.randrange(PARTITIONS)
        leader, _, isr = current_leader(self.c, p)
        rec.update(partition=p, node=leader, isr_before=isr)
        self.timeline.log("kill-leader", partition=p, node=leader, isr=isr)
        watch = LeaderWatch(self.c, p, leader)
        self.c.kill_9(leader)
        watch.start()
        time.sleep(self.rng.uniform(1.0, 3.0))
        rec["down_s"] = round(time.monotonic() - watch.t0, 3)
        try:
            self.restart([leader])
            rec["restart_s"] = self.last_restart_s
        finally:
            watch.finish(rec)
        self.timeline.log("leader-after-kill", partition=p, **{k: rec.get(k) for k in (
            "other_leader", "other_leader_after_s", "leader_after_restart")})

    # SIGSTOP a follower > replica.lag.time.max.ms; ISR shrink and expand seen in Metadata
    def sigstop_follower(self, rec: dict) -> None:
        p = self.rng.randrange(PARTITIONS)
        leader, replicas, isr = current_leader(self.c, p)
        follower = self.rng.choice([r for r in replicas if r != leader])
        rec.update(partition=p, leader=leader, node=follower)
        self.timeline.log("sigstop", partition=p, node=follower, leader=leader)
        self.c.sigstop(follower)
        t0 = time.monotonic()
        shrink = None
        while True:
            el = time.monotonic() - t0
            if el >= 12 or (el >= 8 and shrink is not None):
                break
            try:
                _, v = any_view(self.c, exclude=(follower,))
                if shrink is None and follower not in v[p][2]:
                    shrink = round(el, 3)
                    self.timeline.log("isr-shrunk", partition=p, node=follower, after_s=shrink, isr=v[p][2])
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.25)
        rec["isr_shrink_s"] = shrink
        rec["stopped_s"] = round(time.monotonic() - t0, 3)
        self.c.sigcont(follower)
        self.timeline.log("sigcont", node=follower)
        t1 = time.monotonic()
        expand = None
        while time.monotonic() - t1 < 30:
            try:  # not the follower's own view: stale until it has caught up with the metadata
                _, v = any_view(self.c, exclude=(follower,))
                if follower in v[p][2]:
                    expand = round(time.monotonic() - t1, 3)
                    self.timeline.log("isr-expanded", partition=p, node=follower, after_s=expand, isr=v[p][2])
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.25)
        rec["isr_expand_s"] = expand

    # the leader of a partition cut from the other two nodes (clients still reach it)
    def partition(self, rec: dict) -> None:
        p = self.rng.randrange(PARTITIONS)
        leader, _, isr = current_leader(self.c, p)
        others = [i for i in self.c.node_ids if i != leader]
        rec.update(partition=p, node=leader, isr_before=isr)
        self.net.isolate(leader)
        t0 = time.monotonic()
        hold = self.rng.uniform(10.0, 14.0)
        seen_new = seen_out = None
        iso_view = None
        while time.monotonic() - t0 < hold:
            try:
                v = topic_view(self.c, random.choice(others))
                if seen_new is None and v[p][0] >= 0 and v[p][0] != leader:
                    seen_new = round(time.monotonic() - t0, 3)
                    self.timeline.log("partition-new-leader", partition=p, leader=v[p][0], after_s=seen_new)
                if seen_out is None and leader not in v[p][2]:
                    seen_out = round(time.monotonic() - t0, 3)
                    self.timeline.log("partition-isr-without-isolated", partition=p, isr=v[p][2], after_s=seen_out)
                iso_view = topic_view(self.c, leader, timeout=2)[p]
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.3)
        rec.update(majority_new_leader_s=seen_new, majority_isr_shrunk_s=seen_out,
                   isolated_node_view_at_end=iso_view, held_s=round(time.monotonic() - t0, 3))
        self.net.heal()
        t1 = time.monotonic()
        back = None
        while time.monotonic() - t1 < 60:
            try:  # the majority's view (the isolated node's own is stale until it hears again)
                v = topic_view(self.c, random.choice(others))
                if leader in v[p][2]:
                    back = round(time.monotonic() - t1, 3)
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.25)
        rec["rejoined_isr_s"] = back
        self.timeline.log("partition-healed", partition=p, node=leader, rejoined_isr_s=back)

    # kill -9 the active controller and a partition's leader together
    def kill_controller_and_leader(self, rec: dict) -> None:
        controller = self.c.active_controller(timeout=30)
        p = self.rng.randrange(PARTITIONS)
        leader, _, isr = current_leader(self.c, p)
        victims = sorted({controller, leader})
        rec.update(partition=p, controller=controller, leader=leader, nodes=victims)
        self.timeline.log("kill-controller-and-leader", controller=controller, partition=p, leader=leader)
        watch = LeaderWatch(self.c, p, leader)
        for i in victims:
            self.c.kill_9(i)
        watch.start()
        time.sleep(self.rng.uniform(2.0, 5.0))
        try:
            self.restart(victims)
        finally:
            watch.finish(rec)

    def heal_all(self) -> None:
        if self.net.available:
            self.net.heal()
        for i in self.c.node_ids:
            if self.c.node(i).stopped_by_signal:
                self.c.sigcont(i)
        dead = [i for i in self.c.node_ids if not self.c.node(i).alive]
        if dead:
            self.timeline.log("final-restart", nodes=dead)
            self.restart(dead)


# ---------------------------------------------------------------------------- the checker

def stable_watermarks(c: Cluster, timeline: Timeline, timeout: float = 90.0) -> dict[int, tuple[int, int]]:
    """(low, high) per partition (read_committed: the LSO, = high watermark without
    transactions), once two reads 2 s apart agree."""
    from confluent_kafka import Consumer, TopicPartition
    probe = Consumer({"bootstrap.servers": c.bootstrap, "group.id": f"nemesis-probe-{uuid.uuid4().hex[:6]}",
                      "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        prev = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                cur = {p: probe.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10, cached=False)
                       for p in range(PARTITIONS)}
            except Exception as e:  # noqa: BLE001
                cur = None
                timeline.log("watermarks-error", error=repr(e))
            if cur is not None and cur == prev:
                return cur
            if time.monotonic() > deadline:
                raise TimeoutError(f"watermarks not stable after {timeout}s: {prev} then {cur}")
            prev = cur
            time.sleep(2)
    finally:
        probe.close()


def read_everything(c: Cluster, watermarks: dict, timeout: float = 180.0) -> tuple[list, dict]:
    """Every record of every partition from offset 0 to its high watermark: [(p, offset, value)]."""
    from confluent_kafka import Consumer, TopicPartition, KafkaError
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": f"nemesis-check-{uuid.uuid4().hex[:6]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    records = []
    nxt = {p: 0 for p in range(PARTITIONS)}
    try:
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        while any(nxt[p] < watermarks[p][1] for p in range(PARTITIONS)) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"nemesis: checker read error {msg.error()}", file=sys.stderr)
                continue
            p, off = msg.partition(), msg.offset()
            if off < watermarks[p][1]:
                records.append((p, off, msg.value().decode(errors="replace") if msg.value() is not None else None))
            nxt[p] = max(nxt[p], off + 1)
    finally:
        consumer.close()
    return records, nxt


def final_committed(c: Cluster) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=30)
        return {tp.partition: tp.offset for tp in got}
    finally:
        consumer.close()


def seq_of(value: str) -> tuple[str, int] | None:
    """('p1', seq) for p1-<seq>, ('java', seq) for 7.<seq>; None otherwise."""
    if value is None:
        return None
    if value.startswith("p1-") and value[3:].isdigit():
        return "p1", int(value[3:])
    head, _, tail = value.partition(".")
    if head == str(JAVA_VALUE_PREFIX) and tail.isdigit():
        return "java", int(tail)
    return None


def analyse(records, watermarks, read_next, producers: dict, commits, consumed, final_commits,
            timeline: Timeline) -> dict:
    by_value: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    at: dict[tuple[int, int], str] = {}
    for p, off, v in records:
        by_value[v].append((p, off))
        at[(p, off)] = v
    out: dict = {}
    expected = {p: watermarks[p][1] - watermarks[p][0] for p in range(PARTITIONS)}
    got = collections.Counter(p for p, _, _ in records)
    out["records_read"] = len(records)
    out["high_watermarks"] = {p: watermarks[p][1] for p in range(PARTITIONS)}
    out["log_start_offsets"] = {p: watermarks[p][0] for p in range(PARTITIONS)}
    out["read_complete"] = all(got[p] == expected[p] and read_next[p] >= watermarks[p][1] for p in range(PARTITIONS)) \
        and all(watermarks[p][0] == 0 for p in range(PARTITIONS))
    out["read_per_partition"] = {p: got[p] for p in range(PARTITIONS)}
    gaps = {p: expected[p] - got[p] for p in range(PARTITIONS) if expected[p] != got[p]}
    out["offset_gaps"] = gaps
    dups = {v: locs for v, locs in by_value.items() if len(locs) > 1}
    out["duplicated"] = len(dups)
    out["duplicated_sample"] = dict(list(dups.items())[:20])
    unknown = [v for v in by_value if seq_of(v) is None]
    out["unknown_values"] = len(unknown)

    lost_all = []
    for name, prod in producers.items():
        acked = prod["acked"]
        lost = [v for v in acked if v not in by_value]
        moved = [v for v in acked if v in by_value and tuple(acked[v][:2]) not in by_value[v]]
        present_unacked = [v for v in by_value if seq_of(v) and seq_of(v)[0] == name and v not in acked]
        failed_present = [v for v in present_unacked if v in prod["failed"]]
        out[name] = {
            "sent": prod.get("sent"),
            "acked": len(acked),
            "failed": len(prod["failed"]),
            "failed_by_error": dict(collections.Counter(e.split(":")[0] for e in prod["failed"].values())),
            "lost": len(lost),
            "acked_at_other_offset": len(moved),
            "acked_at_other_offset_sample": {v: {"acked": acked[v][:2], "found": by_value[v]} for v in moved[:10]},
            "unacked_but_present": len(present_unacked),
            "failed_but_present": len(failed_present),
            "unavailable_s": prod["unavailable_s"],
            "longest_no_ack_s": prod["longest_no_ack_s"],
            "unavailable_s_per_partition": prod["unavailable_s_per_partition"],
            "fatal_errors": prod.get("fatal", []),
            "producer_instances": prod.get("instances"),
            "client_errors": prod.get("errors", {}),
        }
        for v in lost:
            p, off, t = acked[v]
            lost_all.append({"value": v, "producer": name, "partition": p, "acked_offset": off, "acked_t": round(t, 3),
                             "now_at_that_offset": at.get((p, off)),
                             "high_watermark": watermarks[p][1],
                             "events_around": [e for e in timeline.events if t - 15 <= e["t"] <= t + 30
                                               and e["event"] not in ("group-assign",)][:40]})
    lost_all.sort(key=lambda d: (d["partition"], d["acked_offset"]))
    out["lost"] = len(lost_all)
    out["lost_sample"] = lost_all[:50]
    # lost values grouped: per partition the offset ranges acked then missing
    ranges = collections.defaultdict(list)
    for d in lost_all:
        r = ranges[d["partition"]]
        if r and d["acked_offset"] == r[-1][1] + 1:
            r[-1][1] = d["acked_offset"]
        else:
            r.append([d["acked_offset"], d["acked_offset"]])
    out["lost_offset_ranges"] = {p: r for p, r in ranges.items()}

    # order: per partition and producer, seqs in offset order must increase
    order = {}
    for p in range(PARTITIONS):
        seqs = collections.defaultdict(list)
        for part, off, v in sorted(records):
            if part == p and seq_of(v):
                name, s = seq_of(v)
                seqs[name].append((off, s))
        for name, lst in seqs.items():
            bad = [(lst[i - 1], lst[i]) for i in range(1, len(lst)) if lst[i][1] <= lst[i - 1][1]]
            order[f"{name}/p{p}"] = {"violations": len(bad), "sample": bad[:5]}
    out["order_violations"] = sum(o["violations"] for o in order.values())
    out["order_detail"] = order

    # committed offsets: per partition never below an earlier one
    regress = []
    best: dict[int, tuple[int, float, int]] = {}
    for t, member, p, off in sorted(commits):
        if p in best and off < best[p][0]:
            regress.append({"partition": p, "t": round(t, 3), "member": member, "offset": off,
                            "earlier": best[p][0], "earlier_t": round(best[p][1], 3), "earlier_member": best[p][2]})
        if p not in best or off > best[p][0]:
            best[p] = (off, t, member)
    out["commits"] = len(commits)
    out["committed_regressions"] = len(regress)
    out["committed_regressions_sample"] = regress[:20]
    out["final_committed"] = final_commits
    out["last_committed_by_group"] = {p: best[p][0] for p in best}
    out["final_committed_below_acknowledged"] = {p: {"final": final_commits.get(p), "acknowledged": best[p][0]}
                                                 for p in best if final_commits.get(p, -1) < best[p][0]}
    values_read = {v for seen in consumed.values() for v in seen}
    consumed_lost = [v for v in values_read if v not in by_value]
    out["consumed"] = len(consumed)
    out["consumed_but_absent"] = len(consumed_lost)
    out["consumed_but_absent_sample"] = sorted(consumed_lost)[:20]
    # A read the final log contradicts: the group got a record at (partition, offset) that
    # now holds another one (it read above the real high watermark: data later truncated).
    dirty = sorted((p, off, v, t, at.get((p, off))) for (p, off), seen in consumed.items()
                   for v, t in seen.items() if at.get((p, off)) != v)
    out["dirty_reads"] = len(dirty)
    out["dirty_reads_sample"] = [{"partition": p, "offset": off, "read": v, "read_t": t, "now": now}
                                 for p, off, v, t, now in dirty[:20]]
    return out


def _line_time(line: str) -> float | None:
    """Epoch seconds of a node log line: Sluice's `2026-01-01T10:00:00.123456Z` (UTC) or
    Kafka's `[2026-01-01 10:00:00,123]` (local time)."""
    import datetime
    try:
        if line[:1] == "[":
            return datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if len(line) > 20 and line[10] == "T":
            return datetime.datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None
    return None


def log_context(c: Cluster, partition: int, wall_from: float, wall_to: float, limit: int = 60) -> dict[int, list[str]]:
    """Per node, the log lines between two wall-clock times that concern `partition` of the
    topic (or fencing, leadership, controller changes)."""
    sluice_p = re.compile(rf"partition={partition}\b")
    kafka_p = f"{TOPIC}-{partition}"
    out = {}
    for i in c.node_ids:
        lines = []
        try:
            text = c.log_file(i).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in text:
            t = _line_time(line)
            if t is None or not (wall_from <= t <= wall_to):
                continue
            relevant = (sluice_p.search(line) and ("nemesis" in line or "topic_id" in line)) or kafka_p in line \
                or "fenc" in line.lower() or "controller" in line.lower() and "leader" in line.lower()
            if relevant and "openraft" not in line:
                lines.append(line[:400])
        out[i] = lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])
    return out


# ---------------------------------------------------------------------------- one implementation

def run_impl(impl: str, args, timeline: Timeline | None = None) -> dict:
    timeline = timeline or Timeline(echo=not args.quiet)
    rng = random.Random(args.seed)  # the same fault sequence for both implementations
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(args.workdir) / f"{impl}-{stamp}-s{args.seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    result: dict = {"impl": impl, "seed": args.seed, "duration_s": args.duration, "faults_enabled": args.faults,
                    "workdir": str(workdir), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for h in list(CLIENT_LOG.handlers):
        CLIENT_LOG.removeHandler(h)
        h.close()
    handler = logging.FileHandler(workdir / "clients.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    CLIENT_LOG.addHandler(handler)
    CLIENT_LOG.setLevel(logging.DEBUG)
    uids = node_uids(len(LAYOUT)) if args.uids else None
    closed = [str(d) for d in workdir.parents if not os.stat(d).st_mode & 0o001]
    if uids and closed:
        result["uids_off"] = f"work dir not reachable by other users through {closed}: nodes run as this user"
        print(f"nemesis: {result['uids_off']} (no partition fault)", file=sys.stderr)
        uids = None
    binary = args.binary if impl == "sluice" else None
    if binary:
        result["binary"] = str(binary)
    c = NemesisCluster(impl, workdir / "cluster", LAYOUT, extra_config=EXTRA_CONFIG, binary=binary, uids=uids,
                       kafka_jvm_extra=args.kafka_jvm.split() if args.kafka_jvm else ())
    if impl == "kafka" and args.kafka_jvm:
        result["kafka_jvm_extra"] = args.kafka_jvm
    on_cleanup(c.hard_kill_all)
    result["nodes"] = {i: {"port": c.node(i).port, "controller_port": c.node(i).controller_port,
                           "uid": uids[i][0] if uids else os.geteuid()} for i in c.node_ids}
    net = Net(c, timeline)
    result["partition_fault"] = "available" if net.available else f"unavailable: {net.reason}"
    faults = list(args.faults)
    if "partition" in faults and not net.available:
        print(f"nemesis: partition fault SKIPPED: {net.reason}", file=sys.stderr)
        timeline.log("partition-fault-skipped", reason=net.reason)
        faults.remove("partition")
    nemesis = Nemesis(c, net, timeline, rng, faults)
    java = pyprod = None
    consumers: list[GroupConsumer] = []
    commits: list = []
    consumed: dict = {}
    try:
        t = time.monotonic()
        c.start(timeout=180)
        timeline.log("cluster-started", impl=impl, seconds=round(time.monotonic() - t, 1), workdir=str(c.workdir))
        create_topic(c)
        timeline.log("topic-created", topic=TOPIC)
        for m in range(args.consumers):
            g = GroupConsumer(c.bootstrap, timeline, m + 1, commits, consumed)
            g.start()
            consumers.append(g)
        pyprod = PyProducer(c.bootstrap, timeline, args.rate)
        pyprod.start()
        if args.java_rate > 0:
            java = JavaProducer(c.bootstrap, timeline, args.java_rate, workdir)
        time.sleep(args.warmup)
        fault_end = time.monotonic() + args.duration
        schedule = list(args.schedule or [])
        while time.monotonic() < fault_end and faults:
            if args.schedule is not None:
                if not schedule:
                    break
                fault = schedule.pop(0)
            else:
                fault = rng.choice(faults)
            if args.max_faults and sum(nemesis.counts.values()) >= args.max_faults:
                break
            try:
                nemesis.run_one(fault)
            except Exception as e:  # noqa: BLE001  (the fault could not be carried out: record, heal, go on)
                timeline.log("fault-error", fault=fault, error=repr(e)[:2000])
                nemesis.errors.append(f"{fault}: {e!r}"[:4000])
                nemesis.heal_all()
                nemesis.wait_healed()
            left = fault_end - time.monotonic()
            if left > 0:
                time.sleep(min(args.interval, left))
        # The faults stop when the duration is up (the last one healed), or earlier when the
        # schedule or --max-faults is done: then the load goes on for --tail seconds more.
        left = fault_end - time.monotonic()
        if left > 0:
            time.sleep(min(left, args.tail) if (args.schedule is not None or args.max_faults) else left)
        timeline.log("faults-done", counts=dict(nemesis.counts))
        pyprod.stop(drain_timeout=args.drain)
        if java:
            java.stop(drain_timeout=args.drain)
        nemesis.heal_all()
        healed = nemesis.wait_healed(90)
        timeline.log("settled", healed_after_s=healed)
        time.sleep(min(10.0, args.drain))  # the group catches up, then commits once more
        for g in consumers:
            g.stop_event.set()
        for g in consumers:
            g.join(60)
        watermarks = stable_watermarks(c, timeline)
        timeline.log("watermarks", hw={p: w[1] for p, w in watermarks.items()})
        records, read_next = read_everything(c, watermarks)
        timeline.log("read", records=len(records))
        try:
            final_commits = final_committed(c)
        except Exception as e:  # noqa: BLE001
            final_commits = {}
            timeline.log("final-committed-error", error=repr(e))
        load_end = pyprod.stopped_at
        producers = {}
        for name, prod in (("p1", pyprod), ("java", java)):
            if prod is None:
                continue
            end = prod.stopped_at or load_end
            zero, longest, counts = seconds_without([a[2] for a in prod.acked.values()], prod.started_at, end)
            per_p = {p: seconds_without([a[2] for a in prod.acked.values() if a[0] == p], prod.started_at, end)[0]
                     for p in range(PARTITIONS)}
            producers[name] = {"acked": dict(prod.acked), "failed": dict(prod.failed),
                               "sent": len(prod.sent) if name == "p1" else None,
                               "unavailable_s": zero, "longest_no_ack_s": longest, "acks_per_second": counts,
                               "unavailable_s_per_partition": per_p,
                               "fatal": getattr(prod, "fatal", []), "instances": getattr(prod, "instances", None),
                               "errors": dict(getattr(prod, "errors", {}) or getattr(prod, "other", {}))}
        result["check"] = analyse(records, watermarks, read_next, producers, commits, consumed, final_commits, timeline)
        # Lost records: what each node logged about that partition around the acks.
        context = []
        for p, ranges in result["check"]["lost_offset_ranges"].items():
            for lo, hi in ranges[:5]:
                times = [d["acked_t"] for d in result["check"]["lost_sample"] if d["partition"] == p
                         and lo <= d["acked_offset"] <= hi] or [0.0]
                context.append({"partition": p, "offsets": [lo, hi],
                                "acked_wall": [timeline.wall0 + min(times), timeline.wall0 + max(times)],
                                "node_logs": log_context(c, p, timeline.wall0 + min(times) - 15,
                                                         timeline.wall0 + max(times) + 15)})
        result["check"]["lost_context"] = context
        result["acks_per_second"] = {n: p["acks_per_second"] for n, p in producers.items()}
        result["consumer_rewinds"] = [r for g in consumers for r in g.rewinds][:50]
        result["consumer_errors"] = {g.member: dict(g.commit_errors) for g in consumers}
        result["consumer_records"] = {g.member: g.records for g in consumers}
        result["completed"] = True
    except BaseException as e:
        result["completed"] = False
        result["error"] = "".join(traceback.format_exception(e))[-6000:]
        timeline.log("run-error", error=repr(e)[:2000])
        if isinstance(e, KeyboardInterrupt):
            raise
    finally:
        for g in consumers:
            g.stop_event.set()
        if pyprod is not None and pyprod.is_alive():
            pyprod.stop(drain_timeout=5)
        if java is not None:
            java.kill()
        if net.available:
            net.heal()
            net.drop_table()
        result["faults"] = dict(nemesis.counts)
        result["fault_records"] = nemesis.records
        result["fault_errors"] = nemesis.errors
        result["heal_timeouts"] = nemesis.heal_timeouts
        result["timeline"] = timeline.events
        result["node_log_tails"] = {i: c.tail(i, 40) for i in c.node_ids}
        try:
            c.stop()
        except Exception as e:  # noqa: BLE001
            c.hard_kill_all()
            result["stop_error"] = repr(e)
        result["node_logs"] = {i: str(c.log_file(i)) for i in c.node_ids}
        chk = result.get("check") or {}
        if (not result.get("completed") or chk.get("lost") or chk.get("duplicated")) and args.evidence_dir:
            dest = Path(args.evidence_dir) / workdir.name
            try:
                shutil.copytree(workdir, dest, dirs_exist_ok=True)
                (dest / "result.json").write_text(json.dumps(result, indent=1, default=str))
                result["evidence"] = str(dest)
                print(f"nemesis: evidence kept in {dest}", file=sys.stderr)
            except Exception as e:  # noqa: BLE001
                result["evidence_error"] = repr(e)
    return result


# ---------------------------------------------------------------------------- summary

def summary_rows(r: dict) -> list[tuple[str, str]]:
    chk = r.get("check") or {}
    p1 = chk.get("p1") or {}
    j = chk.get("java") or {}
    rows = [
        ("completed", r.get("completed")),
        *((f"faults: {f}", (r.get("faults") or {}).get(f, 0)) for f in FAULTS),
        ("fault errors / heal timeouts", f"{len(r.get('fault_errors') or [])} / {r.get('heal_timeouts')}"),
        ("p1 sent / acked / failed", f"{p1.get('sent')} / {p1.get('acked')} / {p1.get('failed')}"),
        ("java acked / failed", f"{j.get('acked')} / {j.get('failed')}" if j else "-"),
        ("records read (read complete)", f"{chk.get('records_read')} ({chk.get('read_complete')})"),
        ("LOST acked (p1 + java)", f"{chk.get('lost')} ({p1.get('lost')} + {j.get('lost', '-')})"),
        ("DUPLICATED values", chk.get("duplicated")),
        ("order violations", chk.get("order_violations")),
        ("acked at other offset (info)", f"{p1.get('acked_at_other_offset')} + {j.get('acked_at_other_offset', '-')}"),
        ("unacked but present (info)", f"{p1.get('unacked_but_present')} + {j.get('unacked_but_present', '-')}"),
        ("unknown values / offset gaps", f"{chk.get('unknown_values')} / {chk.get('offset_gaps')}"),
        ("p1 s without acks (longest)", f"{p1.get('unavailable_s')} ({p1.get('longest_no_ack_s')})"),
        ("p1 s without acks per partition", p1.get("unavailable_s_per_partition")),
        ("java s without acks (longest)", f"{j.get('unavailable_s')} ({j.get('longest_no_ack_s')})" if j else "-"),
        ("producer fatal errors", len(p1.get("fatal_errors") or [])),
        ("group commits / regressions", f"{chk.get('commits')} / {chk.get('committed_regressions')}"),
        ("final committed < acknowledged", len(chk.get("final_committed_below_acknowledged") or {})),
        ("consumed but absent from log", chk.get("consumed_but_absent")),
        ("group read, log now differs there", chk.get("dirty_reads")),
        ("consumer rewinds (info)", len(r.get("consumer_rewinds") or [])),
    ]
    recs = r.get("fault_records") or []
    shrink = [x.get("isr_shrink_s") for x in recs if x["fault"] == "sigstop-follower"]
    expand = [x.get("isr_expand_s") for x in recs if x["fault"] == "sigstop-follower"]
    if shrink:
        rows.append(("sigstop ISR shrink s", shrink))
        rows.append(("sigstop ISR expand s", expand))
    part = [x for x in recs if x["fault"] == "partition"]
    if part:
        rows.append(("partition: new leader s", [x.get("majority_new_leader_s") for x in part]))
        rows.append(("partition: rejoined ISR s", [x.get("rejoined_isr_s") for x in part]))
    kl = [x for x in recs if x["fault"] == "kill-leader"]
    kills = sorted(x["other_leader_after_s"] for x in kl if x.get("other_leader_after_s") is not None)
    if kl:
        rows.append(("kill-leader: another node led", f"{len(kills)} of {len(kl)}" + (
            f" (after {kills[len(kills) // 2]} s median, {kills[-1]} max)" if kills else "")))
        rows.append(("kill-leader: restart s (median)", sorted(x.get("restart_s", 0) for x in kl)[len(kl) // 2]))
        rows.append(("kill-leader: killed node leads after restart",
                     f"{sum(1 for x in kl if x.get('leader_after_restart') == x['node'])} of {len(kl)}"))
    rows.append(("partition fault", r.get("partition_fault")))
    return [(k, str(v)) for k, v in rows]


def print_summary(results: list[dict]) -> None:
    tables = [dict(summary_rows(r)) for r in results]
    keys: list[str] = []
    for r in results:  # every row any run has, in order
        for k, _ in summary_rows(r):
            if k not in keys:
                keys.append(k)
    names = [r["impl"] for r in results]
    w0 = max(len(k) for k in keys)
    widths = [min(70, max(len(names[i]), *(len(v) for v in tables[i].values()))) for i in range(len(results))]
    print()
    print(f"{'':{w0}}  " + "  ".join(f"{n:{widths[i]}}" for i, n in enumerate(names)))
    for key in keys:
        cells = [tables[i].get(key, "-") for i in range(len(results))]
        print(f"{key:{w0}}  " + "  ".join(f"{v[:70]:{widths[i]}}" for i, v in enumerate(cells)))
    for r in results:
        if r.get("check", {}).get("lost_sample"):
            print(f"\n{r['impl']}: first lost values:")
            for d in r["check"]["lost_sample"][:10]:
                print(f"  {d['value']} partition {d['partition']} acked offset {d['acked_offset']} at t={d['acked_t']}"
                      f" (now there: {d['now_at_that_offset']}, hw {d['high_watermark']})")
        if r.get("error"):
            print(f"\n{r['impl']}: run error:\n{r['error'][-2000:]}")
    print()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="both", choices=("sluice", "kafka", "both"))
    ap.add_argument("--duration", type=float, default=300, help="seconds of faults under load (default 300)")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    ap.add_argument("--schedule", default=None,
                    help="comma-separated faults run in this order (instead of random picks), until done or --duration")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="nemesis-results.json")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between a healed fault and the next")
    ap.add_argument("--max-faults", type=int, default=0,
                    help="stop injecting after this many (0: no limit); the load stops --tail s later")
    ap.add_argument("--tail", type=float, default=5.0,
                    help="seconds of load after the last fault when --schedule or --max-faults ended the faults")
    ap.add_argument("--rate", type=float, default=100.0, help="confluent-kafka producer records/s")
    ap.add_argument("--java-rate", type=int, default=50, help="Java VerifiableProducer records/s (0: none)")
    ap.add_argument("--consumers", type=int, default=2, help="members of the consumer group nemesis-g")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--drain", type=float, default=60.0, help="bound on the producers' final flush")
    ap.add_argument("--binary", default=os.environ.get("SLUICE_BIN") or None,
                    help="Sluice binary (default $SLUICE_BIN, else target/release/sluice)")
    ap.add_argument("--kafka-jvm", default="-XX:TieredStopAtLevel=1",
                    help="extra JVM options for the Kafka nodes, added to cluster.py's (default: C1 only, "
                         "which restarts a node under load in ~8 s instead of ~20-30 s on 2 cores; '' for none)")
    ap.add_argument("--workdir", default="/tmp/nemesis-runs")
    ap.add_argument("--evidence-dir", default="/tmp/nemesis-evidence")
    ap.add_argument("--no-uids", dest="uids", action="store_false",
                    help="run the nodes as this user (no partition fault)")
    ap.add_argument("--quiet", action="store_true", help="no timeline on stderr")
    args = ap.parse_args(argv)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    bad = [f for f in args.faults if f not in FAULTS]
    if args.schedule is not None:
        args.schedule = [f.strip() for f in args.schedule.split(",") if f.strip()]
        bad += [f for f in args.schedule if f not in FAULTS]
        args.faults = sorted(set(args.faults) | set(args.schedule))
    if bad:
        ap.error(f"unknown fault(s) {bad}; known: {', '.join(FAULTS)}")
    if args.binary is None:
        args.binary = str(cluster_mod.sluice_bin())
    return args


def budget(args) -> float:
    """Seconds one implementation's run may take at most: start-up, the faults (plus one
    fault that began just before the end), drain, heal and check."""
    return 240 + args.duration + 300 + 2 * args.drain + 120 + 240


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--summarize"]:  # the table again, from --out files: nemesis.py --summarize a.json b.json
        runs = [r for f in argv[1:] for r in json.loads(Path(f).read_text())["runs"]]
        print_summary(runs)
        return 0
    args = parse_args(argv)
    impls = ["sluice", "kafka"] if args.impl == "both" else [args.impl]
    start_watchdog(budget(args) * len(impls))

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    results = []
    try:
        for impl in impls:
            print(f"nemesis: --- {impl}", file=sys.stderr, flush=True)
            results.append(run_impl(impl, args))
            Path(args.out).write_text(json.dumps({"runs": results}, indent=1, default=str))
    finally:
        run_cleanups()
    print_summary(results)
    print(f"results: {Path(args.out).resolve()}")
    bad = [r for r in results if not r.get("completed") or (r.get("check") or {}).get("lost")
           or (r.get("check") or {}).get("duplicated")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
