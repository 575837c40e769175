"""Clients that send Fetch and never read the answer: each asks for 10 MiB of a topic,
the socket's buffers fill, and the response waits. The broker must not hold those
responses in memory (Kafka sends them from the log files as the socket takes them,
sendfile; Sluice reads them from the files a piece at a time), while everyone else is
served: a consumer reads the whole topic meanwhile.

What a user sees: the broker's resident memory (VmRSS, sampled while the slow clients
wait) stays far below what the waiting responses come to (100 x 10 MiB). The memory
bound is Sluice's (a JVM's resident size says little about its heap); on Kafka the case
checks that the consumer is served.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import confluent_kafka

import clients

MIB = 1 << 20
SLOW_CLIENTS = 100
TOPIC_MIB = 10
# The responses waiting come to SLOW_CLIENTS x TOPIC_MIB = 1,000 MiB.
SLUICE_RSS_LIMIT = 200 * MIB


def fetch_v4(topic: str, correlation: int) -> bytes:
    """A Fetch v4 of partition 0 from offset 0, up to 64 MiB (10 MiB for the partition)."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 1, 64 * MIB, 0)  # replica, max wait, min bytes, max bytes, isolation
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, 0, TOPIC_MIB * MIB)
    client = b"slow-reader"
    header = struct.pack(">hhih", 1, 4, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def rss(broker) -> int:
    for line in Path(f"/proc/{broker.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def fill(broker, topic: str) -> int:
    producer = clients.ck_producer(broker, **{"linger.ms": 5, "batch.size": 1_000_000, "acks": 1})
    value = b"f" * 1024
    for _ in range(TOPIC_MIB * 1024):
        while True:
            try:
                producer.produce(topic, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0
    return TOPIC_MIB * 1024


def test_fetch_responses_never_read_do_not_pile_up_in_memory(fresh_broker):
    broker = fresh_broker
    topic = clients.create_topic(broker, clients.unique_name("slow-readers"))
    records = fill(broker, topic)
    host, port = broker.bootstrap.split(":")
    slow = []
    peak = 0
    try:
        for i in range(SLOW_CLIENTS):
            s = socket.socket()
            # Small buffers: the kernel takes little of each response.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.connect((host, int(port)))
            s.sendall(fetch_v4(topic, i))
            slow.append(s)
        # The responses are ready at once; sample while they wait, and read the
        # whole topic with a consumer meanwhile.
        consumer = clients.ck_consumer(broker, **{"group.id": clients.unique_name("beside-slow")})
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        read, deadline = 0, time.monotonic() + 60
        while read < records and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                assert not m.error(), m.error()
                read += 1
            peak = max(peak, rss(broker))
        consumer.close()
        for _ in range(4):
            time.sleep(0.5)
            peak = max(peak, rss(broker))
        assert read == records, f"the consumer read {read} of {records} beside the slow clients"
        # They are still connected, their answers unread.
        assert all(s.fileno() >= 0 for s in slow)
    finally:
        for s in slow:
            s.close()
    print(f"{broker.kind} RSS peak with {SLOW_CLIENTS} slow readers: {peak / MIB:.1f} MiB")
    if broker.kind == "sluice":
        assert peak < SLUICE_RSS_LIMIT, f"RSS {peak / MIB:.0f} MiB"
