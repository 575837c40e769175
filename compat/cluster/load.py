"""Client load that keeps running while an operator changes the cluster, and the checker
that counts what it was promised.

AckedProducer   confluent-kafka (librdkafka), acks=all and idempotent, a steady rate of
                numbered records; keeps each acknowledged (partition, offset, value) and
                every error the client reported, by name
check_acked     reads every partition from the start and counts acked records that are
                missing and values read more than once (idempotence: none)
"""

from __future__ import annotations

import collections
import threading
import time

import confluent_kafka
import confluent_kafka.admin

# Errors a Kafka client retries by itself: what a user may see in the client's log while
# leadership or replicas move, without losing anything.
RETRIABLE = {"NOT_LEADER_OR_FOLLOWER", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
             "LEADER_NOT_AVAILABLE", "REQUEST_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN",
             "UNKNOWN_TOPIC_OR_PARTITION", "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH",
             "_MSG_TIMED_OUT", "NETWORK_EXCEPTION", "KAFKA_STORAGE_ERROR", "_TIMED_OUT"}


class AckedProducer(threading.Thread):
    """Produces `rate` records a second to `topic` until stopped (or `limit` records)."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 200.0, size: int = 100,
                 limit: int | None = None, **config):
        super().__init__(daemon=True)
        self.topic, self.rate, self.limit = topic, rate, limit
        self.padding = b"x" * max(0, size - 16)
        self.acked: list[tuple[int, int, bytes]] = []
        # (seconds from produce() to its acknowledgement, when it was acknowledged: monotonic)
        self.latencies: list[tuple[float, float]] = []
        self.failed: collections.Counter = collections.Counter()  # delivery failures by error
        self.client_errors: collections.Counter = collections.Counter()  # error_cb by error
        self.sent = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 120000, "error_cb": self._on_error, **config})

    def _on_error(self, err) -> None:
        with self._lock:
            self.client_errors[err.name()] += 1

    def _delivered(self, err, msg) -> None:
        with self._lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))
                self.latencies.append((msg.latency() or 0.0, time.monotonic()))
            else:
                self.failed[err.name()] += 1

    def run(self) -> None:
        start = time.monotonic()
        while not self._halt.is_set() and (self.limit is None or self.sent < self.limit):
            due = int((time.monotonic() - start) * self.rate) + 1
            while self.sent < due and (self.limit is None or self.sent < self.limit):
                value = b"%015d:" % self.sent + self.padding
                try:
                    self.producer.produce(self.topic, value, on_delivery=self._delivered)
                    self.sent += 1
                except BufferError:
                    break
            self.producer.poll(0.01)

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self, drain_timeout: float = 120.0) -> None:
        self._halt.set()
        self.join(30)
        left = self.producer.flush(drain_timeout)
        assert left == 0, f"{left} records still unanswered {drain_timeout:.0f} s after the producer stopped"

    def unexpected_errors(self) -> dict[str, int]:
        """Errors the client reported that it does not retry by itself."""
        seen = self.failed + self.client_errors
        return {k: v for k, v in seen.items() if k not in RETRIABLE}


def check_acked(bootstrap: str, topic: str, acked, timeout: float = 120.0) -> dict[str, int]:
    """Reads the whole topic (read_committed off: plain records) and counts the acked values
    missing and those read more than once ("read": how many acked values were read)."""
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic, timeout=30)
    partitions = sorted(md.topics[topic].partitions)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        ends = {}
        for p in partitions:
            ends[p] = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=30)[1]
        consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in partitions])
        seen: collections.Counter = collections.Counter()
        wanted = {v for _, _, v in acked}  # other records in the topic are not counted
        position = {p: 0 for p in partitions}
        deadline = time.monotonic() + timeout
        while any(position[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"read {position} of {ends} in {timeout:.0f} s"
            for m in consumer.consume(1000, 1.0):
                if m.error():
                    continue
                if m.value() in wanted:
                    seen[m.value()] += 1
                position[m.partition()] = m.offset() + 1
    finally:
        consumer.close()
    values = [v for _, _, v in acked]
    missing = sum(1 for v in values if seen[v] == 0)
    duplicated = sum(1 for v in set(values) if seen[v] > 1)
    return {"acked": len(values), "read": sum(seen.values()), "missing": missing, "duplicated": duplicated}
