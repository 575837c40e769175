"""The Dockerfile's commands, run in order outside a container (no Docker
engine here), so that the image recipe cannot rot: the build command builds,
the entrypoint (docker/run, the apache/kafka image's conventions) starts a
broker from the environment of apache/kafka's single-node compose example,
and the HEALTHCHECK command sees it healthy. Then the entrypoint's rules on
their own: how KAFKA_ variables become keys, a mounted server.properties,
and what it refuses."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

import brokers

REPO = brokers.REPO_DIR
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    return json.loads(args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


pytestmark = pytest.mark.skipif(brokers.target() != "sluice", reason="the Dockerfile builds Sluice")

ENTRYPOINT = REPO / "docker" / "run"


def clean_environment() -> dict[str, str]:
    """This process's environment without Kafka's or Sluice's variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLUICE_", "CLUSTER_ID"))}


def single_node_compose(tmp_path: Path, port: int, controller_port: int) -> dict[str, str]:
    """The environment of apache/kafka's single-node PLAINTEXT compose example,
    with ports of this test's and the data in tmp_path."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://localhost:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller_port}",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "3",
        "KAFKA_LOG_DIRS": str(tmp_path / "data"),
        # The JVM's variables mean nothing to Sluice and are not config keys.
        "KAFKA_HEAP_OPTS": "-Xmx1G -Xms1G",
    }


def outside_a_container(tmp_path: Path, binary: Path, env: dict[str, str]) -> dict[str, str]:
    """The image's paths mapped into tmp_path."""
    return {**clean_environment(), **env, "SLUICE_BIN": str(binary),
            "SLUICE_DOCKER_CONFIG_DIR": str(tmp_path / "opt-kafka-config"),
            "SLUICE_DOCKER_SHARED_CONFIG": str(tmp_path / "mnt-shared-config")}


def render(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = outside_a_container(tmp_path, brokers.sluice_bin(), {**env, "SLUICE_DOCKER_RENDER_ONLY": "1"})
    return subprocess.run([str(ENTRYPOINT), *args], env=full, capture_output=True, text=True, timeout=30)


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_dockerfile_commands_run_in_order(tmp_path):
    steps = instructions()
    kinds = [k for k, _ in steps]
    # The recipe's shape, as apache/kafka's: two stages, a non-root user, its volumes, the Kafka port.
    assert kinds.count("FROM") == 2
    assert ("USER", "appuser") in steps
    assert ("EXPOSE", "9092") in steps
    assert any(k == "VOLUME" and "/var/lib/kafka/data" in a and "/mnt/shared/config" in a for k, a in steps)

    # 1. The build stage's cargo command (a no-op when the release build is fresh).
    build = [a for k, a in steps if k == "RUN" and a.startswith("cargo ")]
    assert len(build) == 1, build
    subprocess.run(shlex.split(build[0]), cwd=REPO, check=True, timeout=1800)
    binary = REPO / "target" / "release" / "sluice"
    assert binary.is_file()

    # 2. The files the runtime stage copies in, mapped to this checkout.
    copies = {}
    for k, a in steps:
        if k == "COPY" and not a.startswith("--from") and not a.startswith(". "):
            src, dest = a.split()
            copies[dest] = REPO / src
    assert all(p.is_file() for p in copies.values()), copies

    # 3. The command, with the environment of a compose file written for apache/kafka.
    assert "ENTRYPOINT" not in kinds, "a command, as apache/kafka's, that Testcontainers can replace"
    cmd = [a for k, a in steps if k == "CMD"]
    assert len(cmd) == 1
    assert exec_form(cmd[0]) == ["/etc/kafka/docker/run"], "apache/kafka's path"
    command = [str(copies.get(arg, arg)) for arg in exec_form(cmd[0])]
    assert command == [str(ENTRYPOINT)]
    port, controller_port = free_port(), free_port()
    env = outside_a_container(tmp_path, binary, single_node_compose(tmp_path, port, controller_port))

    def start() -> subprocess.Popen:
        log = open(tmp_path / "sluice.log", "ab")
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)

    proc = start()
    try:
        # 4. The HEALTHCHECK command, pointed at the same broker.
        health = [a for k, a in steps if k == "HEALTHCHECK"]
        assert len(health) == 1
        check = exec_form(health[0][health[0].index("CMD") + 3:].strip())
        check[0] = str(binary)
        check = [c.replace("localhost:9092", f"localhost:{port}") for c in check]
        deadline = time.monotonic() + 20
        while True:
            result = subprocess.run(check, capture_output=True, timeout=10)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert result.returncode == 0, result.stderr
        text = (tmp_path / "sluice.log").read_text()
        assert f"listening on PLAINTEXT://127.0.0.1:{port}" in text, text
        assert "unknown config key" not in text, text
        # Formatted with the image's default cluster id.
        meta = properties((tmp_path / "data" / "meta.properties").read_text())
        assert meta["cluster.id"] == "5L6g3nShT-eMCtK--X86sw"
        # What a client of the compose file sees: localhost, and the image's partitions.
        producer = KafkaProducer(bootstrap_servers=f"localhost:{port}")
        sent = producer.send("compose", b"kept").get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=f"localhost:{port}")
        assert len(consumer.partitions_for_topic("compose")) == 3
        consumer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # A stopped broker is not healthy.
    assert subprocess.run(check, capture_output=True, timeout=10).returncode == 1

    # 5. A container restarted on its volume: formatted already, the record still there.
    proc = start()
    try:
        consumer = KafkaConsumer(bootstrap_servers=f"localhost:{port}", auto_offset_reset="earliest",
                                 consumer_timeout_ms=15_000)
        tp = TopicPartition("compose", sent.partition)
        consumer.assign([tp])
        assert next(consumer).value == b"kept"
        consumer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_kafka_variables_become_keys_as_the_kafka_image_maps_them(tmp_path):
    done = render(tmp_path, {"KAFKA_NODE_ID": "7", "KAFKA_LOG_RETENTION_MS": "1000",
                             "KAFKA_SOME___DASHED__UNDERSCORED_DOTTED": "x",
                             "KAFKA_OPTS": "-Dignored", "KAFKA_HEAP_OPTS": "-Xmx1g",
                             "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://kafka:9092,SSL://kafka:9093"},
                  "KAFKA_NUM_PARTITIONS=5")
    assert done.returncode == 0, done.stderr
    rendered = properties(done.stdout)
    assert rendered == {
        "node.id": "7",
        "log.retention.ms": "1000",
        "some-dashed_underscored.dotted": "x",
        "num.partitions": "5",  # an argument KEY=VALUE is a variable
        "advertised.listeners": "PLAINTEXT://kafka:9092,SSL://kafka:9093",
        # Listeners unset: the advertised ones on every interface.
        "listeners": "PLAINTEXT://0.0.0.0:9092,SSL://0.0.0.0:9093",
    }


def test_a_mounted_server_properties_gets_the_variables_appended(tmp_path):
    shared = tmp_path / "mnt-shared-config"
    shared.mkdir()
    (shared / "server.properties").write_text("num.partitions=2\nlog.retention.hours=1\n")
    done = render(tmp_path, {"KAFKA_NUM_PARTITIONS": "4"})
    assert done.returncode == 0, done.stderr
    lines = [l for l in done.stdout.splitlines() if "=" in l]
    # The file first, the variable after it: the later one wins.
    assert lines == ["num.partitions=2", "log.retention.hours=1", "num.partitions=4"]


def test_no_configuration_at_all_is_one_combined_node_on_9092(tmp_path):
    done = render(tmp_path, {})
    assert done.returncode == 0, done.stderr
    rendered = properties(done.stdout)
    assert rendered["process.roles"] == "broker,controller"
    assert rendered["listeners"] == "PLAINTEXT://:9092,CONTROLLER://:9093"
    assert rendered["advertised.listeners"] == "PLAINTEXT://localhost:9092"
    # The default file is one the broker takes without complaint.
    loaded = subprocess.run([str(brokers.sluice_bin()), "--config", str(REPO / "docker" / "server.properties"),
                             "--healthcheck", "127.0.0.1:1"], capture_output=True, text=True, timeout=30)
    assert loaded.returncode == 1 and "unknown config key" not in loaded.stderr


def test_a_controller_may_not_advertise(tmp_path):
    done = render(tmp_path, {"KAFKA_PROCESS_ROLES": "controller",
                             "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092"})
    assert done.returncode == 1
    assert "KAFKA_ADVERTISED_LISTENERS is not supported on a KRaft controller." in done.stderr


def cluster_compose_node(tmp_path: Path, node: int, ports: dict[int, dict[str, int]]) -> dict[str, str]:
    """A node of apache/kafka's three-node combined PLAINTEXT compose example, its
    host names (kafka-1, ...) replaced by 127.0.0.1 with ports of this test's."""
    mine = ports[node]
    voters = ",".join(f"{n}@127.0.0.1:{p['CONTROLLER']}" for n, p in ports.items())
    return {
        "KAFKA_NODE_ID": str(node),
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT_HOST://localhost:{mine['PLAINTEXT_HOST']},"
                                      f"PLAINTEXT://127.0.0.1:{mine['PLAINTEXT']}",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": voters,
        "KAFKA_LISTENERS": f"CONTROLLER://127.0.0.1:{mine['CONTROLLER']},"
                           f"PLAINTEXT_HOST://127.0.0.1:{mine['PLAINTEXT_HOST']},"
                           f"PLAINTEXT://127.0.0.1:{mine['PLAINTEXT']}",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_LOG_DIRS": str(tmp_path / f"kafka-{node}" / "kraft-combined-logs"),
    }


def test_a_three_node_cluster_from_its_compose_environments(tmp_path):
    ports = {n: {name: free_port() for name in ("CONTROLLER", "PLAINTEXT", "PLAINTEXT_HOST")} for n in (1, 2, 3)}
    procs = {}
    try:
        for node in ports:
            home = tmp_path / f"kafka-{node}"
            home.mkdir()
            env = outside_a_container(home, brokers.sluice_bin(), cluster_compose_node(tmp_path, node, ports))
            procs[node] = subprocess.Popen([str(ENTRYPOINT)], cwd=home, env=env, stdout=subprocess.PIPE,
                                           stderr=open(home / "sluice.log", "wb"), text=True)
        for node, proc in procs.items():
            # The entrypoint's own lines, then the broker's ready line.
            for line in proc.stdout:
                if line.startswith("{"):
                    assert json.loads(line)["node_id"] == node
                    break
            else:
                pytest.fail(f"node {node} exited ({proc.wait()}): "
                            + (tmp_path / f"kafka-{node}" / "sluice.log").read_text()[-3000:])
        # A client of the compose file reaches the cluster on localhost, any node.
        bootstrap = [f"localhost:{p['PLAINTEXT_HOST']}" for p in ports.values()]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        deadline = time.monotonic() + 60
        while len(admin.describe_cluster()["brokers"]) < 3:
            assert time.monotonic() < deadline, admin.describe_cluster()
            time.sleep(0.2)
        admin.create_topics([NewTopic("replicated", num_partitions=2, replication_factor=3)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10)
        producer.send("replicated", b"three copies").get(timeout=60)
        producer.close()
        consumer = KafkaConsumer("replicated", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=30_000)
        assert next(consumer).value == b"three copies"
        consumer.close()
        for node in ports:
            meta = properties((tmp_path / f"kafka-{node}" / "kraft-combined-logs" / "meta.properties").read_text())
            assert meta["cluster.id"] == "4L6g3nShT-eMCtK--X86sw" and meta["node.id"] == str(node)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            assert proc.wait(60) == 0


def test_testcontainers_kafka_container_starts_it(tmp_path):
    """What Testcontainers' KafkaContainer (org.testcontainers.kafka, for apache/kafka)
    does: its environment, its command (wait for a starter script, run it), a starter
    script that exports the advertised listeners and runs /etc/kafka/docker/run, and
    its wait strategy, a log line matching .*Transitioning from RECOVERY to RUNNING.*"""
    port, broker_port, controller_port = free_port(), free_port(), free_port()
    env = {
        "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},BROKER://127.0.0.1:{broker_port},"
                           f"CONTROLLER://127.0.0.1:{controller_port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_NODE_ID": "1",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller_port}",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_LOG_FLUSH_INTERVAL_MESSAGES": str(2**63 - 1),
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        # Not Testcontainers': the image's data path, mapped out of the container.
        "KAFKA_LOG_DIRS": str(tmp_path / "data"),
    }
    starter = tmp_path / "testcontainers_start.sh"
    command = ["sh", "-c", f"while [ ! -f {starter} ]; do sleep 0.1; done; {starter}"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=outside_a_container(tmp_path, brokers.sluice_bin(), env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Written once the container runs, with the mapped port it now knows.
        starter.write_text("#!/bin/bash\n"
                           f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:{port},"
                           f"BROKER://localhost:{broker_port}\n"
                           f"{ENTRYPOINT} \n")
        starter.chmod(0o777)
        waited = re.compile(r".*Transitioning from RECOVERY to RUNNING.*")
        for line in proc.stdout:
            if waited.match(line):
                break
        else:
            pytest.fail(f"exited ({proc.wait()}) without the line Testcontainers waits for")
        # Its log goes on into the pipe: keep reading it, as docker does.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        producer = KafkaProducer(bootstrap_servers=f"localhost:{port}")
        producer.send("containers", b"tested").get(timeout=30)
        producer.close()
        consumer = KafkaConsumer("containers", bootstrap_servers=f"localhost:{port}",
                                 auto_offset_reset="earliest", consumer_timeout_ms=15_000)
        assert next(consumer).value == b"tested"
        consumer.close()
    finally:
        # docker stop: SIGTERM to the container's processes.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
