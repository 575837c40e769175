"""A multi-process cluster of Apache Kafka or Sluice nodes on 127.0.0.1, for tests and benches.

Both implementations get the same Kafka configuration keys, one file per node:

    process.roles                   broker,controller | broker | controller
    node.id                         1, 2, ...
    controller.quorum.voters        1@127.0.0.1:C1,2@127.0.0.1:C2,...   (static quorum)
    listeners                       PLAINTEXT://127.0.0.1:P,CONTROLLER://127.0.0.1:C
    advertised.listeners            PLAINTEXT://127.0.0.1:P
    controller.listener.names       CONTROLLER
    listener.security.protocol.map  PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
    inter.broker.listener.name      PLAINTEXT
    broker.rack                     when the node's spec has one
    log.dirs                        <node dir>/data
    offsets / transaction state / share state replication factors: min(3, brokers),
    min.isr min(2, brokers); offsets.topic.num.partitions 10 (Kafka's 50 is slow to create)

and are formatted the same way before the first start:

    Kafka:  kafka-storage format -t <cluster id> -c <file>   (kafka.tools.StorageTool, Maven jars)
    Sluice: sluice format -t <cluster id> -c <file>          ($SLUICE_BIN)

then run as `java ... kafka.Kafka <file>` / `sluice --config <file>`. Each node has a
directory of its own (server.properties, data/, its log file: `Node.log_file`).

All voters start before any port is waited on: a KRaft node opens its client listener only
after it has joined the quorum. Ready means: every node answers ApiVersions (brokers on
PLAINTEXT, controller-only nodes on CONTROLLER) and every broker's Metadata lists every
broker (registered and unfenced).

    with Cluster("kafka", workdir, combined(3, racks=("a", "b", "c"))) as c:
        c.bootstrap                  # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
        c.active_controller()        # DescribeQuorum through a broker: the Raft leader's id
        c.kill_9(1); c.restart(1)    # also stop_node (SIGTERM), sigstop/sigcont

Every wait is bounded; everything started is stopped by stop() (also from __exit__, and
a node dies with the Python process that started it: PR_SET_PDEATHSIG). Standard library
plus kafka-python (the raw requests: its generated protocol classes via compat/python's
RawGroupClient).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
COMPAT_DIR = CLUSTER_DIR.parent
REPO_DIR = COMPAT_DIR.parent
for _d in (COMPAT_DIR / "kafka", COMPAT_DIR / "python", COMPAT_DIR / "java"):
    if str(_d) not in sys.path:
        sys.path.insert(0, str(_d))

from apache_kafka import LOG4J2_CONFIG, api_versions_ok, die_with_parent, free_port  # noqa: E402
import brokers  # noqa: E402  (sluice_bin)
import kafka_tools  # noqa: E402  (the Kafka tools: jars, JVM options, run())

IMPLEMENTATIONS = ("kafka", "sluice")

# Tools that compat/java/kafka_tools.py does not list yet, by their Kafka 4.4.0 main
# classes (bin/kafka-storage.sh, bin/kafka-metadata-quorum.sh), so kafka_tools.run()
# runs them like the others.
kafka_tools.MAIN_CLASS.setdefault("kafka-storage", "kafka.tools.StorageTool")
kafka_tools.MAIN_CLASS.setdefault("kafka-metadata-quorum", "org.apache.kafka.tools.MetadataQuorumCommand")
kafka_tools.MAIN_CLASS.setdefault("kafka-cluster", "org.apache.kafka.tools.ClusterTool")
kafka_tools.MAIN_CLASS.setdefault("kafka-leader-election", "org.apache.kafka.tools.LeaderElectionCommand")
kafka_tools.MAIN_CLASS.setdefault("kafka-log-dirs", "org.apache.kafka.tools.LogDirsCommand")
kafka_tools.MAIN_CLASS.setdefault("kafka-reassign-partitions",
                                  "org.apache.kafka.tools.reassign.ReassignPartitionsCommand")

# Per Kafka node: a small heap (2 cores and shared memory), the serial collector (no
# parallel GC threads competing for the two cores), full JIT.
KAFKA_JVM_OPTS = ["-Xmx256m", "-Xms128m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]


def sluice_bin() -> Path:
    """$SLUICE_BIN, else <repo>/target/release/sluice (compat/python's rule)."""
    return brokers.sluice_bin()


def random_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64 without
    padding, never starting with '-' (Kafka's Uuid.randomUuid rule)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class NodeSpec:
    node_id: int
    roles: str = "broker,controller"
    rack: str | None = None
    # A controller of a dynamic quorum that is not one of its initial voters: formatted with
    # --no-initial-controllers, made a voter later (kafka-metadata-quorum add-controller).
    joining: bool = False

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles.split(",")

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles.split(",")


def combined(n: int, racks: tuple[str, ...] | None = None) -> list[NodeSpec]:
    """n nodes that are each broker and controller (ids 1..n); racks[i % len] each."""
    return [NodeSpec(i, "broker,controller", racks[(i - 1) % len(racks)] if racks else None)
            for i in range(1, n + 1)]


def wait_until(predicate, what: str, timeout: float, interval: float = 0.2):
    """predicate() until it returns something truthy (returned), or AssertionError naming
    `what` after `timeout` seconds. Exceptions from predicate count as 'not yet'; the last
    one is named in the failure."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001  (not yet: a node restarting, a timeout)
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Node:
    """One process of the cluster. `port` is its PLAINTEXT port (None on a controller-only
    node), `controller_port` its CONTROLLER port (None on a broker-only node)."""

    def __init__(self, spec: NodeSpec, workdir: Path, port: int | None, controller_port: int | None,
                 sasl_port: int | None = None):
        self.spec = spec
        self.id = spec.node_id
        self.workdir = workdir
        self.port = port
        self.controller_port = controller_port
        self.sasl_port = sasl_port  # SASL_PLAINTEXT (SCRAM), when the cluster has SCRAM users
        self.config_file = workdir / "server.properties"
        self.data_dir = workdir / "data"
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None  # perf_counter of the last Popen
        self.formatted = False
        self.stopped_by_signal = False  # SIGSTOP sent and no SIGCONT yet

    @property
    def is_broker(self) -> bool:
        return self.spec.is_broker

    @property
    def is_controller(self) -> bool:
        return self.spec.is_controller

    @property
    def rack(self) -> str | None:
        return self.spec.rack

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise ValueError(f"node {self.id} is controller-only: no client listener")
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __repr__(self) -> str:
        return f"<node {self.id} {self.spec.roles} rack={self.rack} port={self.port} " \
               f"controller_port={self.controller_port} {'up' if self.alive else 'down'}>"


class Cluster:
    """N nodes of one implementation ("kafka" or "sluice"), formatted and started together.

    impl          "kafka" (jars from compat/.cache/kafka-jars or $KAFKA_JARS_DIR) or
                  "sluice" (binary: `binary`, else $SLUICE_BIN, else target/release/sluice)
    nodes         a list of NodeSpec, or a number of combined nodes
    extra_config  more keys for every node's file (they win over the defaults); a dict, or
                  a function NodeSpec -> dict for per-node keys
    dynamic_quorum  KIP-853's dynamic quorum instead of the static one: every node gets
                  controller.quorum.bootstrap.servers (no controller.quorum.voters), the
                  controllers are formatted with --initial-controllers id@host:port:dir-id
                  (a directory id each: `directory_ids`), or with --standalone when there is
                  only one, the broker-only nodes with --no-initial-controllers
    scram_users   `--add-scram` specs ("SCRAM-SHA-512=[name=alice,password=...]") for the
                  format step; when given, every broker also has a SASL_PLAINTEXT listener
                  (SCRAM-SHA-256/512, `Node.sasl_port`) beside PLAINTEXT
    """

    def __init__(self, impl: str, workdir: str | Path | None = None,
                 nodes: list[NodeSpec] | int = 3, extra_config=None,
                 binary: str | Path | None = None, cluster_id: str | None = None,
                 dynamic_quorum: bool = False, scram_users: tuple[str, ...] = ()):
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, not {impl!r}")
        self.impl = impl
        specs = combined(nodes) if isinstance(nodes, int) else list(nodes)
        if len({s.node_id for s in specs}) != len(specs):
            raise ValueError("node ids must be unique")
        if not any(s.is_controller for s in specs) or not any(s.is_broker for s in specs):
            raise ValueError("a cluster needs at least one controller and one broker")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"cluster-{impl}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_config = extra_config or {}
        self.cluster_id = cluster_id or random_cluster_id()
        self.dynamic_quorum = dynamic_quorum
        self.scram_users = tuple(scram_users)
        self.directory_ids = {s.node_id: random_cluster_id() for s in specs if s.is_controller}
        if impl == "kafka":
            if not kafka_tools.jars_present():
                raise FileNotFoundError(f"no Kafka jars in {kafka_tools.JARS_DIR}: run compat/setup "
                                        f"(or compat/kafka/fetch-jars.sh)")
            self.binary = None
        else:
            self.binary = Path(binary or sluice_bin()).absolute()
            if not self.binary.is_file():
                raise FileNotFoundError(f"no Sluice binary at {self.binary}: build it "
                                        f"(cargo build --release) or set SLUICE_BIN")
        taken: set[int] = set()

        def port() -> int:
            p = free_port()
            while p in taken:
                p = free_port()
            taken.add(p)
            return p

        self.nodes: dict[int, Node] = {}
        for s in sorted(specs, key=lambda s: s.node_id):
            d = self.workdir / f"node-{s.node_id}"
            d.mkdir(parents=True, exist_ok=True)
            self.nodes[s.node_id] = Node(s, d, port() if s.is_broker else None,
                                         port() if s.is_controller else None,
                                         port() if s.is_broker and self.scram_users else None)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what is where

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.nodes)

    @property
    def broker_ids(self) -> list[int]:
        return [i for i in self.node_ids if self.nodes[i].is_broker]

    @property
    def controller_ids(self) -> list[int]:
        return [i for i in self.node_ids if self.nodes[i].is_controller]

    @property
    def initial_controller_ids(self) -> list[int]:
        """The controllers the quorum starts with (all but the joining ones)."""
        return [i for i in self.controller_ids if not self.nodes[i].spec.joining]

    @property
    def live_broker_ids(self) -> list[int]:
        return [i for i in self.broker_ids if self.nodes[i].alive and not self.nodes[i].stopped_by_signal]

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    @property
    def bootstrap(self) -> str:
        """Every broker's PLAINTEXT address, comma-separated (dead ones too: clients skip them)."""
        return self.bootstrap_of(self.broker_ids)

    def bootstrap_of(self, node_ids) -> str:
        return ",".join(self.nodes[i].bootstrap for i in node_ids)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{i}@127.0.0.1:{self.nodes[i].controller_port}" for i in self.initial_controller_ids)

    @property
    def quorum_bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.nodes[i].controller_port}" for i in self.initial_controller_ids)

    @property
    def initial_controllers(self) -> str:
        return ",".join(f"{i}@127.0.0.1:{self.nodes[i].controller_port}:{self.directory_ids[i]}"
                        for i in self.initial_controller_ids)

    def meta_properties(self, node_id: int) -> dict[str, str]:
        """The node's meta.properties (its log dir's), as written by the format step."""
        text = (self.nodes[node_id].data_dir / "meta.properties").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))

    def log_file(self, node_id: int) -> Path:
        """The node's own log: Kafka's log4j file, or Sluice's stderr."""
        n = self.nodes[node_id]
        return n.workdir / ("server.log" if self.impl == "kafka" else "sluice.log")

    def stdout_file(self, node_id: int) -> Path:
        return self.nodes[node_id].workdir / "stdout.log"

    def tail(self, node_id: int, lines: int = 30) -> str:
        out = []
        for f in (self.log_file(node_id), self.stdout_file(node_id)):
            try:
                text = f.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if text:
                out.append(f"--- {f} (last {min(lines, len(text))} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(out) or f"(node {node_id}: no log yet)"

    def describe(self) -> str:
        return f"{self.impl} cluster {self.cluster_id} in {self.workdir}: " + \
               ", ".join(repr(n) for n in self.nodes.values())

    # ------------------------------------------------------------------ configuration

    def config(self, node_id: int) -> dict[str, str]:
        n = self.nodes[node_id]
        brokers_n = len(self.broker_ids)
        rf, min_isr = str(min(3, brokers_n)), str(min(2, brokers_n))
        listeners, advertised = [], []
        if n.is_broker:
            listeners.append(f"PLAINTEXT://127.0.0.1:{n.port}")
            advertised.append(f"PLAINTEXT://127.0.0.1:{n.port}")
        if n.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{n.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{n.sasl_port}")
        if n.is_controller:
            listeners.append(f"CONTROLLER://127.0.0.1:{n.controller_port}")
        config = {
            "process.roles": n.spec.roles,
            "node.id": str(n.id),
            **({"controller.quorum.bootstrap.servers": self.quorum_bootstrap_servers} if self.dynamic_quorum
               else {"controller.quorum.voters": self.quorum_voters}),
            "listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(n.data_dir),
        }
        if self.scram_users:
            config["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            config["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
            for mechanism in ("scram-sha-256", "scram-sha-512"):
                config[f"listener.name.sasl_plaintext.{mechanism}.sasl.jaas.config"] = \
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        if n.is_broker:
            config["advertised.listeners"] = ",".join(advertised)
            config["inter.broker.listener.name"] = "PLAINTEXT"
            if n.rack:
                config["broker.rack"] = n.rack
        config.update({
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        })
        if self.impl == "kafka":
            # The log cleaner's dedupe buffer is 128 MiB by default: with several JVMs of
            # 256 MiB heap each, a node dies of OutOfMemoryError while starting its cleaner.
            config["log.cleaner.dedupe.buffer.size"] = str(16 * 1024 * 1024)
        extra = self.extra_config(n.spec) if callable(self.extra_config) else self.extra_config
        config.update(extra)
        return config

    def _write_config(self, node_id: int) -> None:
        n = self.nodes[node_id]
        n.config_file.write_text("".join(f"{k}={v}\n" for k, v in self.config(node_id).items()))
        if self.impl == "kafka":
            (n.workdir / "log4j2.properties").write_text(
                LOG4J2_CONFIG.format(log_file=self.log_file(node_id)))

    # ------------------------------------------------------------------ format and start

    def format_command(self, node_id: int) -> list[str]:
        n = self.nodes[node_id]
        args = ["format", "-t", self.cluster_id, "-c", str(n.config_file)]
        if self.dynamic_quorum and (not n.is_controller or n.spec.joining):
            args.append("--no-initial-controllers")
        elif self.dynamic_quorum and len(self.initial_controller_ids) == 1:
            args.append("--standalone")  # a quorum of one, its directory id chosen by the format step
        elif self.dynamic_quorum:
            args += ["--initial-controllers", self.initial_controllers]
        for spec in self.scram_users:
            args += ["--add-scram", spec]
        if self.impl == "kafka":
            return kafka_tools.command_line("kafka-storage", *args)
        return [str(self.binary), *args]

    def start_command(self, node_id: int) -> list[str]:
        n = self.nodes[node_id]
        if self.impl == "kafka":
            return ["java", *KAFKA_JVM_OPTS, f"-Dlog4j2.configurationFile={n.workdir / 'log4j2.properties'}",
                    "-cp", str(kafka_tools.JARS_DIR / "*"), "kafka.Kafka", str(n.config_file)]
        return [str(self.binary), "--config", str(n.config_file)]

    def format(self, node_ids=None, timeout: float = 120.0) -> None:
        """Format the nodes' storage (all of them at once: each Kafka format is a JVM)."""
        ids = [i for i in (node_ids or self.node_ids) if not self.nodes[i].formatted]
        running = []
        for i in ids:
            self._write_config(i)
            cmd = self.format_command(i)
            out = open(self.nodes[i].workdir / "format.log", "wb")
            out.write(f"=== {' '.join(cmd)}\n".encode())
            out.flush()
            running.append((i, cmd, out, subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.nodes[i].workdir, start_new_session=True, preexec_fn=die_with_parent)))
        failures = []
        deadline = time.monotonic() + timeout
        for i, cmd, out, proc in running:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            out.close()
            if proc.returncode != 0:
                text = (self.nodes[i].workdir / "format.log").read_text(errors="replace")
                failures.append(f"node {i}: `{' '.join(cmd)}` exited {proc.returncode}:\n{text[-3000:]}")
            else:
                self.nodes[i].formatted = True
        if failures:
            raise RuntimeError(f"{self.impl} format failed\n" + "\n".join(failures))

    def _spawn(self, node_id: int) -> None:
        n = self.nodes[node_id]
        if n.alive:
            raise RuntimeError(f"node {node_id} is already running")
        self._write_config(node_id)  # every start: extra_config may have changed
        cmd = self.start_command(node_id)
        stdout = open(self.stdout_file(node_id) if self.impl == "kafka" else self.log_file(node_id), "ab")
        stdout.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        stdout.flush()
        n.started_at = time.perf_counter()
        n.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT,
                                  cwd=n.workdir, start_new_session=True, preexec_fn=die_with_parent)
        stdout.close()  # the child has its own descriptor
        n.stopped_by_signal = False

    def answers(self, node_id: int, timeout: float = 2.0) -> bool:
        """The node answers ApiVersions (brokers on PLAINTEXT, controller-only on CONTROLLER)."""
        n = self.nodes[node_id]
        return api_versions_ok("127.0.0.1", n.port if n.is_broker else n.controller_port, timeout)

    def wait_answering(self, node_ids, timeout: float) -> dict[int, float]:
        """Wait until each node answers ApiVersions; seconds from its start to that answer.
        Fails at once, with its log, if one exits."""
        pending = set(node_ids)
        ready: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for i in sorted(pending):
                n = self.nodes[i]
                if n.proc is None or n.proc.poll() is not None:
                    code = None if n.proc is None else n.proc.returncode
                    raise RuntimeError(f"{self.impl} node {i} exited with {code} during start-up\n"
                                       f"{self.tail(i)}")
                if self.answers(i, timeout=1.0):
                    ready[i] = time.perf_counter() - n.started_at
                    pending.discard(i)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"{self.impl} nodes {sorted(pending)} did not answer within {timeout:.0f}s\n"
                                   + "\n".join(self.tail(i) for i in sorted(pending)))
            if pending:
                time.sleep(0.1)
        return ready

    def start(self, timeout: float = 180.0, node_ids=None) -> "Cluster":
        """Format (first time), start every node (or only `node_ids`: the others join
        later, as new brokers do), wait until they answer and every started broker is
        registered everywhere. On failure everything started is stopped again."""
        ids = sorted(node_ids or self.node_ids)
        try:
            self.format(ids, timeout=timeout)
            for i in ids:  # all voters first: no one opens its port before the quorum
                if not self.nodes[i].alive:
                    self._spawn(i)
            self.ready_seconds = self.wait_answering(ids, timeout)
            self.wait_brokers([i for i in self.broker_ids if i in ids], timeout=timeout)
            self.registered_seconds = time.perf_counter() - min(self.nodes[i].started_at for i in ids)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node_id: int, timeout: float = 120.0) -> float:
        """Start one node (formatted before if it never was); seconds until it answers."""
        self.format([node_id], timeout=timeout)
        self._spawn(node_id)
        return self.wait_answering([node_id], timeout)[node_id]

    def restart(self, node_id: int, timeout: float = 120.0) -> float:
        """Start a stopped or killed node again on its data and ports, wait until it answers
        and (a broker) is registered again in every live broker's Metadata."""
        n = self.nodes[node_id]
        if n.alive:
            raise RuntimeError(f"node {node_id} is still running: stop or kill it first")
        t = self.start_node(node_id, timeout)
        if n.is_broker:
            self.wait_brokers(self.live_broker_ids, timeout=timeout)
        return t

    # ------------------------------------------------------------------ stopping

    def stop_node(self, node_id: int, timeout: float = 60.0) -> int | None:
        """SIGTERM (a controlled shutdown), SIGKILL after `timeout`; the exit code."""
        n = self.nodes[node_id]
        if n.proc is None:
            return None
        if n.proc.poll() is None:
            if n.stopped_by_signal:
                self.sigcont(node_id)
            n.proc.send_signal(signal.SIGTERM)
            try:
                n.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._killpg(n)
        return n.proc.returncode

    def kill_9(self, node_id: int) -> None:
        """SIGKILL: a crash, no shutdown hooks."""
        n = self.nodes[node_id]
        if n.alive:
            self._killpg(n)

    def sigstop(self, node_id: int) -> None:
        """Freeze the node (SIGSTOP): its sockets stay open but it answers nothing."""
        n = self.nodes[node_id]
        if n.alive:
            os.killpg(n.proc.pid, signal.SIGSTOP)
            n.stopped_by_signal = True

    def sigcont(self, node_id: int) -> None:
        n = self.nodes[node_id]
        if n.alive:
            os.killpg(n.proc.pid, signal.SIGCONT)
        n.stopped_by_signal = False

    @staticmethod
    def _killpg(n: Node) -> None:
        try:
            os.killpg(n.proc.pid, signal.SIGKILL)  # its own session: the node and nothing else
        except ProcessLookupError:
            pass
        n.proc.wait(timeout=30)
        n.stopped_by_signal = False

    def stop(self, timeout: float = 20.0) -> dict[int, int | None]:
        """Stop every node: SIGCONT the frozen, SIGTERM all at once, SIGKILL what is still
        there after `timeout` (a broker whose controllers are gone cannot finish a
        controlled shutdown). Returns the exit codes."""
        with self._lock:
            live = [n for n in self.nodes.values() if n.alive]
            for n in live:
                if n.stopped_by_signal:
                    self.sigcont(n.id)
            # Brokers first, so they can still reach the controllers for a controlled shutdown.
            for n in live:
                if not n.is_controller:
                    n.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout / 2
            for n in live:
                if not n.is_controller:
                    try:
                        n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        pass
            for n in live:
                if n.alive:
                    n.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for n in live:
                try:
                    n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._killpg(n)
            return {n.id: n.proc.returncode for n in self.nodes.values() if n.proc is not None}

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ raw requests

    def raw(self, node_id: int, timeout: float = 10.0):
        """A raw connection to one broker (compat/python's RawGroupClient: kafka-python's
        generated request classes, versions agreed by ApiVersions). Close it after use."""
        import clients  # the client venv's kafka-python; imported late so this file loads anywhere
        n = self.nodes[node_id]
        if not n.is_broker:
            raise ValueError(f"node {node_id} has no client listener")
        return clients.RawGroupClient(n, client_id="cluster-harness", timeout=timeout)

    def request(self, node_id: int, request, version: int | None = None, timeout: float = 10.0):
        """One request to one broker on a fresh connection; the decoded response."""
        c = self.raw(node_id, timeout)
        try:
            if version is None and request.API_KEY not in c.max_versions:
                raise RuntimeError(f"{self.impl} node {node_id} does not offer {type(request).__name__[:-7]} "
                                   f"(API key {request.API_KEY}) in its ApiVersions")
            return c.call(request, version=version)
        finally:
            c.close()

    def metadata(self, node_id: int, topics: list[str] | None = None, timeout: float = 10.0):
        """Metadata as that broker alone sees it (topics None: all)."""
        from kafka.protocol.metadata import MetadataRequest
        Topic = MetadataRequest.MetadataRequestTopic
        return self.request(node_id, MetadataRequest(
            topics=None if topics is None else [Topic(name=t) for t in topics],
            allow_auto_topic_creation=False, include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False), timeout=timeout)

    def describe_quorum(self, node_id: int, timeout: float = 10.0):
        """DescribeQuorum of __cluster_metadata, asked of one broker (it forwards to the quorum)."""
        from kafka.protocol.admin import DescribeQuorumRequest
        T = DescribeQuorumRequest.TopicData
        return self.request(node_id, DescribeQuorumRequest(topics=[T(
            topic_name="__cluster_metadata", partitions=[T.PartitionData(partition_index=0)])]),
            timeout=timeout)

    def active_controller(self, timeout: float = 60.0, exclude: tuple[int, ...] = (),
                          via: int | None = None) -> int:
        """The quorum leader's node id (DescribeQuorum, as kafka-metadata-quorum asks it),
        from the first live broker that knows one; waits for one not in `exclude` (e.g.
        the controller just killed)."""
        def leader():
            last = None
            for i in ([via] if via is not None else self.live_broker_ids):
                try:
                    r = self.describe_quorum(i, timeout=5.0)
                except Exception as e:  # noqa: BLE001  (that broker is restarting: ask another)
                    last = e
                    continue
                p = r.topics[0].partitions[0] if r.error_code == 0 and r.topics else None
                if p is not None and p.error_code == 0 and p.leader_id >= 0 and p.leader_id not in exclude:
                    return p.leader_id
                last = f"node {i}: {r}"
            # Named in wait_until's failure when it gives up.
            raise last if isinstance(last, Exception) else LookupError(last or "no live broker")
        return wait_until(leader, f"an active controller (not {list(exclude)})", timeout, 0.2)

    def registered_brokers(self, node_id: int) -> dict[int, tuple[str, int, str | None]]:
        """id -> (host, port, rack) of the brokers that one broker's Metadata lists."""
        md = self.metadata(node_id, topics=[])
        return {b.node_id: (b.host, b.port, b.rack) for b in md.brokers}

    def wait_brokers(self, ids, timeout: float = 60.0) -> None:
        """Every live broker's Metadata lists exactly the brokers `ids`."""
        want = set(ids)

        def listed():
            seen = {i: sorted(self.registered_brokers(i)) for i in self.live_broker_ids}
            if all(set(s) == want for s in seen.values()):
                return seen
            raise LookupError("; ".join(f"node {i} lists {s}" for i, s in seen.items()))  # named on timeout
        wait_until(listed, f"every live broker to list brokers {sorted(want)}", timeout, 0.25)

    def topics_seen(self, node_id: int) -> dict[str, object]:
        """name -> topic metadata, every topic that one broker's Metadata lists (no errors)."""
        md = self.metadata(node_id)
        return {t.name: t for t in md.topics if t.error_code == 0}

    def wait_topics_everywhere(self, topics, timeout: float = 60.0, node_ids=None) -> None:
        """Every given broker (default: all live) lists every topic in `topics`."""
        want = set(topics)
        ids = list(node_ids or self.live_broker_ids)
        missing: dict[int, set[str]] = {}

        def everywhere():
            for i in ids:
                missing[i] = want - set(self.topics_seen(i))
            return not any(missing.values())
        try:
            wait_until(everywhere, f"{len(want)} topics listed by brokers {ids}", timeout, 0.25)
        except AssertionError as e:
            raise AssertionError(f"{e}; missing: " + ", ".join(
                f"node {i}: {sorted(m)[:10]} ({len(m)})" for i, m in missing.items() if m)) from None


if __name__ == "__main__":  # python3 compat/cluster/cluster.py [kafka|sluice] [N]: run one by hand
    impl = sys.argv[1] if len(sys.argv) > 1 else "kafka"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    c = Cluster(impl, nodes=count)
    c.start()
    print(f"{c.describe()}\nbootstrap {c.bootstrap}; active controller {c.active_controller()}; "
          f"Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        print(f"stopped: {c.stop()}")
