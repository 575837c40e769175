"""What operators see: the Prometheus endpoint's numbers match what real
clients did (records in and out per topic, offsets per partition, a group's
committed offsets and lag), deleted topics and groups leave the output, and
the JSON log format writes one valid JSON object per line."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import urllib.request

import confluent_kafka.admin  # noqa: F401  (clients.ck_admin needs it loaded)
import kafka
import pytest

import brokers
import clients
from clients import Msg

pytestmark = pytest.mark.skipif(brokers.target() != "sluice", reason="Sluice's own endpoint and log format")


def start(tmp_path, *overrides: str) -> brokers.Sluice:
    return brokers.Sluice(tmp_path / "sluice", overrides=overrides).start()


def metrics_url(broker: brokers.Sluice) -> str:
    text = broker.log_file.read_text(errors="replace")
    m = re.search(r"metrics on (http://[\d.]+:\d+/metrics)", text)
    assert m, f"no metrics address in {broker.log_file}"
    return m.group(1)


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Samples by (name, labels)."""
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"not Prometheus text format: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_match_what_clients_did(tmp_path):
    broker = start(tmp_path, "metrics.prometheus.address=127.0.0.1:0")
    try:
        url = metrics_url(broker)
        topic, group = "observed", "observers"
        clients.create_topic(broker, topic, 2)
        sent = [Msg(f"k{i}".encode(), b"x" * 100, partition=i % 2) for i in range(500)]
        placed = clients.send_ck(broker, topic, sent, acks=-1)
        assert len(placed) == 500
        # A group consumes 300 of them and commits.
        consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group,
                                       enable_auto_commit=False, auto_offset_reset="earliest")
        consumer.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 60
        while got < 300 and time.monotonic() < deadline:
            for records in consumer.poll(1000, max_records=300 - got).values():
                got += len(records)
        assert got == 300
        consumer.commit()
        committed = clients.group_offsets(broker, group)
        consumer.close()

        samples = scrape(url)
        assert value(samples, "sluice_topic_records_in_total", topic=topic) == 500
        assert value(samples, "sluice_topic_records_out_total", topic=topic) >= 300
        assert value(samples, "sluice_topic_produce_requests_total", topic=topic) >= 1
        for p in (0, 1):
            assert value(samples, "sluice_partition_log_end_offset", topic=topic, partition=str(p)) == 250
            assert value(samples, "sluice_partition_high_watermark", topic=topic, partition=str(p)) == 250
            assert value(samples, "sluice_partition_log_start_offset", topic=topic, partition=str(p)) == 0
            assert value(samples, "sluice_partition_segments", topic=topic, partition=str(p)) == 1
            assert value(samples, "sluice_partition_size_bytes", topic=topic, partition=str(p)) > 250 * 100
            offset = committed[(topic, p)][0]
            assert value(samples, "sluice_group_committed_offset", group=group, topic=topic, partition=str(p)) == offset
            assert value(samples, "sluice_group_lag", group=group, topic=topic, partition=str(p)) == 250 - offset
        assert sum(250 - committed[(topic, p)][0] for p in (0, 1)) == 200
        assert value(samples, "sluice_group_state", group=group, state="Empty") == 1
        assert value(samples, "sluice_group_members", group=group) == 0
        assert value(samples, "sluice_requests_total", api="Produce") >= 1
        assert value(samples, "sluice_request_duration_seconds_count", api="Fetch") >= 1
        assert value(samples, "sluice_connections_accepted_total", listener="PLAINTEXT") >= 1
        assert value(samples, "sluice_process_resident_memory_bytes") > 1_000_000
        assert value(samples, "sluice_process_open_fds") > 3
        # Deleted topics and groups leave the output: cardinality stays bounded.
        admin = clients.ck_admin(broker)
        admin.delete_consumer_groups([group])[group].result(30)
        admin.delete_topics([topic])[topic].result(30)
        samples = scrape(url)
        assert not any(dict(labels).get("topic") == topic for (_, labels) in samples)
        assert not any(dict(labels).get("group") == group for (_, labels) in samples)
        # Only /metrics is served.
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
    finally:
        assert broker.stop() == 0


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def api_versions_round_trips(bootstrap: str, count: int, connections: int = 4, depth: int = 200) -> None:
    """`count` ApiVersions v0 requests, `depth` in flight on each connection."""
    host, port = bootstrap.rsplit(":", 1)
    body = struct.pack(">hhih", 18, 0, 1, 1) + b"x"
    window = (struct.pack(">i", len(body)) + body) * depth

    def one_connection(rounds: int) -> None:
        with socket.create_connection((host, int(port)), timeout=30) as s:
            pending = b""
            for _ in range(rounds):
                s.sendall(window)
                answered = 0
                while answered < depth:
                    chunk = s.recv(1 << 20)
                    assert chunk, "connection closed"
                    pending += chunk
                    while len(pending) >= 4 and len(pending) >= 4 + struct.unpack(">i", pending[:4])[0]:
                        pending = pending[4 + struct.unpack(">i", pending[:4])[0]:]
                        answered += 1

    rounds = max(1, count // (connections * depth))
    threads = [threading.Thread(target=one_connection, args=(rounds,)) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_an_unscraped_broker_does_not_grow_with_requests(tmp_path):
    """Metrics on and nobody scraping: each request's duration sample is folded
    into its histogram's buckets in the background, so memory does not grow
    with the number of requests (it grew by ~16 bytes a request, without bound)."""
    broker = start(tmp_path, "metrics.prometheus.address=127.0.0.1:0")
    try:
        api_versions_round_trips(broker.bootstrap, 200_000)
        time.sleep(1.5)
        before = rss_kib(broker.proc.pid)
        api_versions_round_trips(broker.bootstrap, 1_000_000)
        time.sleep(1.5)
        grown_mib = (rss_kib(broker.proc.pid) - before) / 1024
        print(f"RSS grew {grown_mib:.1f} MiB over 1,000,000 requests")
        # Without upkeep it grows ~15 MiB here; allocator noise is a few MiB.
        assert grown_mib < 6, f"RSS grew {grown_mib:.1f} MiB over 1,000,000 requests"
        # What the requests recorded is still all there.
        samples = scrape(metrics_url(broker))
        counted = value(samples, "sluice_request_duration_seconds_count", api="ApiVersions")
        assert counted is not None and counted >= 1_200_000, counted
    finally:
        broker.stop()


def test_json_logs_are_one_object_per_line(tmp_path):
    broker = start(tmp_path, "logging.format=json")
    try:
        topic = "logged"
        clients.create_topic(broker, topic, 1)
        clients.send_kp(broker, topic, [Msg(b"k", b"v")], acks="all")
    finally:
        assert broker.stop() == 0
    lines = [l for l in broker.log_file.read_text().splitlines() if l and not l.startswith("===")]
    assert len(lines) >= 3
    records = [json.loads(l) for l in lines]  # raises on any line that is not JSON
    # The log file holds stdout too, where the broker's one ready line goes.
    assert [r["sluice"] for r in records if "sluice" in r] == ["ready"]
    records = [r for r in records if "sluice" not in r]
    messages = [r["fields"]["message"] for r in records]
    assert any("listening on PLAINTEXT://127.0.0.1:" in m for m in messages)
    assert any("created topic" in m for m in messages)
    assert all(r["level"] in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR") for r in records)
    # A request's log lines carry its connection (listener, client address) and
    # the request itself (API, correlation id, client id).
    created = next(r for r in records if "created topic" in r["fields"]["message"])
    connection, request = created["spans"]
    assert connection["listener"] == "PLAINTEXT" and connection["peer"].startswith("127.0.0.1:")
    assert request["api"] == "CreateTopics" and request["correlation_id"] >= 0 and request["client_id"]
