"""kill -9 and restart on the same data: acknowledged records survive, torn tails go.

Sluice only (the own_broker fixture skips them for Apache Kafka, which keeps its log
the same way and passes them too: COMPAT_KAFKA_CRASH_TESTS=1 -m crash).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

import clients
from clients import Msg

pytestmark = pytest.mark.crash


def test_acknowledged_records_survive_kill_9(own_broker, topic):
    broker = own_broker
    clients.create_topic(broker, topic, 2)
    producer = clients.ck_producer(broker, **{
        "acks": -1, "enable.idempotence": True, "linger.ms": 5,
        # After the kill, what was not acknowledged fails quickly instead of retrying.
        "message.timeout.ms": 5000})

    acked: dict[tuple[int, int], bytes] = {}
    failed: list[bytes] = []

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed.append(msg.value())

    kill_after_acks, sent, in_flight_at_kill, killed_at = 3000, 0, None, None
    deadline = time.monotonic() + 60
    # Keep producing through the kill: the broker dies with requests in flight.
    while time.monotonic() < deadline and (killed_at is None or sent < killed_at + 2000):
        if len(producer) >= 2000:  # bounded backlog, so acknowledgements keep pace
            producer.poll(0.01)
            continue
        value = f"{sent:08d}".encode()
        try:
            producer.produce(topic, value=value, key=value, partition=sent % 2,
                             on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
        # Killed while records are outstanding (on a loaded machine the producer can
        # fall behind the broker and have none at the moment the count is reached).
        if killed_at is None and len(acked) >= kill_after_acks and len(producer) > 0:
            in_flight_at_kill = len(producer)
            broker.kill()
            killed_at = sent
    assert killed_at is not None, f"only {len(acked)} acknowledged of {sent} before giving up"
    assert producer.flush(30) == 0
    producer.close()  # no reconnect attempts (and log spam) while the broker restarts
    assert in_flight_at_kill > 0 and failed, "the kill did not catch the producer mid-send"

    broker.restart()
    records = clients.read_ck(broker, topic, 2)
    print(f"sent {sent}, acknowledged {len(acked)}, failed {len(failed)}, "
          f"in flight at the kill {in_flight_at_kill}, stored after restart {len(records)}")
    at = {(r.partition, r.offset): r.value for r in records}
    lost = {pos: v for pos, v in acked.items() if at.get(pos) != v}
    assert not lost, f"{len(lost)} acknowledged records lost or moved, e.g. {sorted(lost.items())[:5]}"

    # Per partition: offsets 0..n-1, values in the order they were sent, each once, and
    # only values that were sent to that partition (unacknowledged ones may survive,
    # but only in order and after nothing they should precede).
    by_partition = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r)
    for p, rs in by_partition.items():
        assert [r.offset for r in rs] == list(range(len(rs)))
        numbers = [int(r.value) for r in rs]
        assert numbers == sorted(set(numbers)), f"partition {p} out of order or duplicated"
        assert all(n % 2 == p for n in numbers)
    # No gaps before an acknowledgement: the idempotent producer's sequence numbers make
    # a record acknowledged only after all earlier ones of its partition were written.
    for p in range(2):
        acked_numbers = [int(v) for (pp, _), v in acked.items() if pp == p]
        stored = {int(r.value) for r in by_partition[p]}
        missing = [n for n in range(p, max(acked_numbers, default=-1) + 1, 2) if n not in stored]
        assert not missing, f"partition {p}: sent before an acknowledged record but absent: {missing[:5]}"

    # And the log goes on where it ended.
    next_offsets = {p: len(by_partition[p]) for p in range(2)}
    placed = clients.send_ck(broker, topic, [Msg(b"after", b"restart", partition=p)
                                             for p in range(2)], acks=-1)
    assert placed == [(p, next_offsets[p]) for p in range(2)]


def corrupt_tail(segment: Path, kind: str, rng: random.Random) -> int:
    """Append bytes to the segment that are not a valid batch. Returns how many."""
    data = segment.read_bytes()
    if kind == "random":
        garbage = bytes(rng.getrandbits(8) for _ in range(3000))
    elif kind == "torn-batch":
        # The first half of a real batch: a header whose length runs past the end of file.
        first_len = 12 + int.from_bytes(data[8:12], "big")
        garbage = data[: first_len // 2]
    elif kind == "bad-crc":
        # A whole batch, well framed, with one byte of its records flipped: CRC mismatch.
        first_len = 12 + int.from_bytes(data[8:12], "big")
        batch = bytearray(data[:first_len])
        batch[-3] ^= 0xFF
        garbage = bytes(batch)
    else:
        raise ValueError(kind)
    with open(segment, "ab") as f:
        f.write(garbage)
    return len(garbage)


@pytest.mark.parametrize("kind", ["random", "torn-batch", "bad-crc"])
def test_garbage_tail_is_truncated_on_restart(own_broker, topic, kind):
    broker = own_broker
    clients.create_topic(broker, topic, 1)
    messages = [Msg(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)]
    # Several produce requests, so the segment holds several batches.
    acked = []
    for chunk in range(4):
        acked += clients.send_kp(broker, topic, messages[chunk * 25:(chunk + 1) * 25], acks="all")
    assert acked == [(0, i) for i in range(100)]

    broker.kill()
    segment = Path(broker.log_dir) / f"{topic}-0" / "00000000000000000000.log"
    assert segment.is_file(), f"no active segment at {segment}"
    assert clients.stored_batches(broker, topic, 0)[-1].last_offset == 99
    corrupt_tail(segment, kind, random.Random(f"{kind}-20261126"))

    broker.restart()
    records = clients.read_ck(broker, topic)
    assert [(r.offset, r.key, r.value) for r in records] == [
        (i, m.key, m.value) for i, m in enumerate(messages)]

    more = [Msg(b"again", f"w{i}".encode()) for i in range(5)]
    assert clients.send_kp(broker, topic, more, acks="all") == [(0, 100 + i) for i in range(5)]
    records = clients.read_kp(broker, topic)
    assert [(r.offset, r.value) for r in records] == (
        [(i, m.value) for i, m in enumerate(messages)] + [(100 + i, m.value) for i, m in enumerate(more)])
