"""A short kill -9 soak: three cycles of SIGKILL and restart under acks=all idempotent load
from confluent-kafka and kafka-python; nothing acknowledged may be lost, nothing duplicated.

The core of bench/kill9-soak (bench/kill9_soak.py), with small numbers; the bench runs
100 cycles. Sluice only, like the other crash cases (own_broker skips them for Kafka).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import kill9_soak  # noqa: E402

pytestmark = pytest.mark.crash


# About 10 s on Sluice; Kafka (COMPAT_KAFKA_CRASH_TESTS=1) takes some 20 s per restart here.
@pytest.mark.timeout(400)
def test_kill9_soak_three_cycles(own_broker, topic):
    slow = own_broker.kind == "kafka"
    result = kill9_soak.soak(own_broker, topic, cycles=3, partitions=2, ck_rate=1000, kp_rate=100,
                             acks_before_kill=300, cycle_timeout=120 if slow else 30,
                             message_timeout=60 if slow else 30)
    kill9_soak.report(result, own_broker.kind)
    c = result.counts
    assert result.stalled is None, result.stalled
    assert len(result.cycles) == 3
    assert c["acked"] > 0 and c["sent"] == c["acked"] + c["failed"] + c["unanswered"]
    assert c["lost"] == 0, result.examples["lost"]
    assert c["duplicated"] == 0, result.examples["duplicated"]
    assert c["moved"] == 0, result.examples["moved"]
    assert c["unexpected"] == 0, result.examples["unexpected"]
