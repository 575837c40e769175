"""A deleted topic's files are renamed aside at once (`<topic>-<n>.<id>-delete`:
gone from the log) and removed `log.segment.delete.delay.ms` later (topic key
`file.delete.delay.ms`, 60 s by default), as Kafka removes them, so that a
large deletion does not land on the disk in the middle of the traffic."""

from __future__ import annotations

import time

import confluent_kafka.admin  # noqa: F401  (clients.ck_admin needs it loaded)
import pytest

import brokers
import clients
from clients import Msg

DELAY_MS = 4000


def deleted_dirs(broker, topic: str) -> list[str]:
    return sorted(p.name for p in broker.log_dir.iterdir()
                  if p.name.startswith(f"{topic}-0.") and p.name.endswith("-delete"))


@pytest.fixture
def delaying_broker(tmp_path):
    b = brokers.make_broker(tmp_path / brokers.target(), **{"log.segment.delete.delay.ms": str(DELAY_MS)})
    try:
        yield b
    finally:
        b.stop()


def test_a_deleted_topics_files_stay_aside_for_the_delay(delaying_broker, topic):
    broker = delaying_broker
    clients.create_topic(broker, topic, 1)
    clients.send_ck(broker, topic, [Msg(b"k", b"v" * 1000) for _ in range(100)], acks=-1)
    assert (broker.log_dir / f"{topic}-0").is_dir()

    admin = clients.ck_admin(broker)
    assert admin.delete_topics([topic], operation_timeout=20)[topic].result(timeout=30) is None
    aside = clients.wait_until(lambda: deleted_dirs(broker, topic), f"{topic}-0 renamed aside", interval=0.05)
    seen = time.monotonic()
    assert not (broker.log_dir / f"{topic}-0").exists()
    assert any(f.name.endswith(".log") for f in (broker.log_dir / aside[0]).iterdir()), aside

    # Kept for the delay (checked well inside it), then removed.
    time.sleep(DELAY_MS / 1000 / 4)
    assert deleted_dirs(broker, topic) == aside, "removed before log.segment.delete.delay.ms"
    clients.wait_until(lambda: not deleted_dirs(broker, topic), f"{aside[0]} removed",
                       timeout=DELAY_MS / 1000 + 60, interval=0.05)
    print(f"{broker.kind}: {aside[0]} removed {time.monotonic() - seen:.1f} s after it was seen")
