"""Start and stop a real single-node Apache Kafka (KRaft, combined broker+controller).

This is the reference for differential testing: the compat suite runs the same cases
against it (COMPAT_TARGET=kafka) to prove an expectation is Kafka's behaviour.

Standard library only, so it also works by hand, outside the test venv:

    compat/kafka/fetch-jars.sh
    python3 compat/kafka/apache_kafka.py      # prints the bootstrap address; Ctrl-C stops

The jars come from Maven Central (compat/kafka/pom.xml, fetched by fetch-jars.sh into
compat/.cache/kafka-jars/ or $KAFKA_JARS_DIR).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_JARS_DIR = HERE.parent / ".cache" / "kafka-jars"

# Kafka wants a small heap here: the machine has 2 cores shared with the clients.
JVM_OPTS = ["-Xmx512m", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]

LOG4J2_CONFIG = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""


def die_with_parent() -> None:
    """preexec_fn for broker processes: SIGKILL them if the process that started them dies
    (pytest killed by a CI timeout, say), so no broker outlives its test run. Linux only;
    elsewhere a no-op."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a Kafka broker answers ApiVersions v0 with error code 0.

    A listening socket is not enough: the broker must be serving requests. v0 is used
    because its request and response layouts are fixed and tiny (no tagged fields).
    """
    client_id = b"compat-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", header)
            payload = _recv_exact(s, size)
            correlation_id, error_code = struct.unpack(">ih", payload[:6])
            return correlation_id == 7 and error_code == 0
    except OSError:
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class ApacheKafka:
    """One Kafka JVM. start() formats storage the first time; restart() reuses it.

    Ports and the data directory are fixed at construction so that a restart (after
    stop() or kill()) comes back on the same address with the same log.

    Security and other set-ups (compat/python/test_security.py):
        listeners     listener names, each also its security protocol, e.g.
                      ("SASL_SSL", "SSL", "SASL_PLAINTEXT", "PLAINTEXT"); each gets a port on
                      127.0.0.1 (`ports` maps name -> port). PLAINTEXT must be one of them: it
                      is the inter-broker listener and the readiness probe's. The controller
                      listener (CONTROLLER) stays PLAINTEXT, as KRaft with SCRAM requires.
                      Default: PLAINTEXT alone, as before.
        extra_config  more server.properties keys (they win over the defaults), e.g. ssl.*,
                      sasl.enabled.mechanisms, listener.name.<l>.<mechanism>.sasl.jaas.config,
                      authorizer.class.name, super.users
        scram         SCRAM credentials created at format time, as with
                      `kafka-storage format --add-scram 'SCRAM-SHA-512=[name=u,password=p]'`
    `extra_config` is a plain attribute: server.properties is rewritten at every start, so a
    test may change it between stop() and restart().
    """

    def __init__(self, workdir: str | Path | None = None, jars_dir: str | Path | None = None,
                 java: str = "java", listeners: tuple[str, ...] | None = None,
                 extra_config: dict[str, str] | None = None, scram: tuple[str, ...] = ()):
        self.jars_dir = Path(jars_dir or os.environ.get("KAFKA_JARS_DIR") or DEFAULT_JARS_DIR)
        if not any(self.jars_dir.glob("kafka_2.13-*.jar")):
            raise FileNotFoundError(
                f"no Kafka jars in {self.jars_dir}: run compat/kafka/fetch-jars.sh first")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="apache-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.java = java
        self.listener_names = tuple(listeners) if listeners else ("PLAINTEXT",)
        if "PLAINTEXT" not in self.listener_names:
            raise ValueError("a PLAINTEXT listener is needed (inter-broker traffic, readiness probe)")
        self.extra_config = dict(extra_config or {})
        # JVM system properties (-Dkey=value), e.g. the OAuth URLs Kafka may reach.
        self.jvm_properties: dict[str, str] = {}
        self.scram = tuple(scram)
        self.port = free_port()
        self.ports = {"PLAINTEXT": self.port}
        taken = {self.port}
        for name in self.listener_names:
            if name != "PLAINTEXT":
                self.ports[name] = self._free_port_not_in(taken)
        self.ports = {n: self.ports[n] for n in self.listener_names}
        self.controller_port = self._free_port_not_in(taken)
        self.log_dir = self.workdir / "data"
        self.config_file = self.workdir / "server.properties"
        self.log_file = self.workdir / "server.log"
        self.stdout_file = self.workdir / "stdout.log"
        self.proc: subprocess.Popen | None = None
        self._formatted = False

    @staticmethod
    def _free_port_not_in(taken: set[int]) -> int:
        port = free_port()
        while port in taken:
            port = free_port()
        taken.add(port)
        return port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def bootstrap_for(self, listener: str) -> str:
        """host:port of one listener (by name, e.g. SASL_SSL)."""
        return f"127.0.0.1:{self.ports[listener]}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        # A classpath wildcard: the JVM expands it to every jar in the folder.
        return str(self.jars_dir / "*")

    def _write_config(self) -> None:
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": ",".join([f"{n}://127.0.0.1:{p}" for n, p in self.ports.items()]
                                  + [f"CONTROLLER://127.0.0.1:{self.controller_port}"]),
            "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in self.ports.items()),
            "listener.security.protocol.map": ",".join(
                [f"{n}:{n}" for n in self.ports] + ["CONTROLLER:PLAINTEXT"]),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.backoff.ms": "1000",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
        }
        config.update(self.extra_config)
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        (self.workdir / "log4j2.properties").write_text(
            LOG4J2_CONFIG.format(log_file=self.log_file))

    def _java(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([self.java, *JVM_OPTS, "-cp", self._classpath(), *args],
                              capture_output=True, text=True, timeout=120, **kwargs)

    def _format(self) -> None:
        """kafka-storage random-uuid + format (static quorum: no --standalone needed)."""
        uuid = self._java("kafka.tools.StorageTool", "random-uuid").stdout.strip().splitlines()[-1]
        scram = [a for spec in self.scram for a in ("--add-scram", spec)]
        result = self._java("kafka.tools.StorageTool", "format", "-t", uuid,
                            "-c", str(self.config_file), *scram)
        if result.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{result.stdout}\n{result.stderr}")
        self._formatted = True

    def start(self, timeout: float = 90.0) -> "ApacheKafka":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("Kafka is already running")
        self._write_config()  # every start: extra_config may have changed since the last
        if not self._formatted:
            self._format()
        with open(self.stdout_file, "ab") as out:
            self.proc = subprocess.Popen(
                [self.java, *JVM_OPTS,
                 *(f"-D{k}={v}" for k, v in self.jvm_properties.items()),
                 f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                 "-cp", self._classpath(), "kafka.Kafka", str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Kafka exited with {self.proc.returncode} during start-up; "
                    f"see {self.log_file} and {self.stdout_file}")
            if api_versions_ok("127.0.0.1", self.port):
                return self
            time.sleep(0.25)
        self.kill()
        raise TimeoutError(f"Kafka did not answer on {self.bootstrap} within {timeout}s; "
                           f"see {self.log_file}")

    def restart(self, timeout: float = 120.0) -> "ApacheKafka":
        """Start again on the same ports and data directory (after stop() or kill())."""
        return self.start(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a controlled shutdown), then SIGKILL if it lingers. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: a crash, no shutdown hooks, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self) -> "ApacheKafka":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    kafka = ApacheKafka()
    kafka.start()
    print(f"Apache Kafka on {kafka.bootstrap} (data and logs in {kafka.workdir}); Ctrl-C stops it",
          flush=True)
    try:
        kafka.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"stopped, exit code {kafka.stop()}")
