"""confluent-kafka (librdkafka) with enable.idempotence=true while the broker is stopped
(SIGTERM) and started again mid-stream: every record is acknowledged, and stored exactly
once and in order.

The counterpart of the Java producer case in test_tools.py. compat/python's
test_crash_recovery.py covers kill -9, where unacknowledged records may be lost; here
the broker shuts down cleanly and nothing may be lost or duplicated.
"""

from __future__ import annotations

import time

import pytest

import clients
from test_tools import assert_exactly_once_in_order


@pytest.mark.restart
def test_librdkafka_idempotent_producer_across_broker_restart(restartable, tool_topic):
    topic = tool_topic
    broker = restartable
    n, partitions = 3000, 2
    clients.create_topic(broker, topic, partitions)
    producer = clients.ck_producer(broker, **{"enable.idempotence": True, "linger.ms": 5})
    reports: dict[int, tuple] = {}

    def on_delivery(err, msg):
        reports[int(msg.value())] = (err, msg.partition(), msg.offset())

    restarted_at = None
    deadline = time.monotonic() + 90
    for i in range(n):
        assert time.monotonic() < deadline, f"only {i} of {n} produced in time"
        producer.produce(topic, value=str(i).encode(), key=str(i % 7).encode(), on_delivery=on_delivery)
        producer.poll(0)
        time.sleep(0.002)  # ~500 records/s: the restart falls mid-stream
        if restarted_at is None and len(reports) >= 800:
            broker.stop()
            broker.restart()
            restarted_at = i
    assert restarted_at is not None and restarted_at < n - 1, "never restarted mid-stream"
    assert producer.flush(60) == 0, f"{len(producer)} records never acknowledged"

    failed = {v: r for v, r in reports.items() if r[0] is not None}
    assert not failed, f"{len(failed)} deliveries failed, e.g. {list(failed.items())[:3]}"
    assert sorted(reports) == list(range(n))
    records = clients.read_ck(broker, topic, partitions)
    assert_exactly_once_in_order(records, n)
    # Each acknowledgement names where the record really is.
    assert {int(r.value): (r.partition, r.offset) for r in records} == {
        v: (p, o) for v, (_, p, o) in reports.items()}
    assert sum(clients.end_offsets(broker, topic, partitions).values()) == n
