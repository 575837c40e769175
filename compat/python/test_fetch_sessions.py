"""Incremental fetch sessions (KIP-227), seen on the wire: a full fetch with
epoch 0 opens a session; later fetches name nothing and are answered with the
partitions that have news only; forgotten partitions leave the session; a
wrong epoch or an unknown session is refused with Kafka's error codes. Raw
Fetch v11 (the last version by topic name, before flexible encoding), so
that what is and is not in a response is what the broker sent. Then the
clients that use sessions (the Java consumer, kafka-python) read a topic of
many partitions whole."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import brokers
import clients
import security
from apache_kafka import DEFAULT_JARS_DIR
from raw_fetch import FetchConnection

JARS_DIR = Path(os.environ.get("KAFKA_JARS_DIR") or DEFAULT_JARS_DIR)

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
PARTITIONS = 8


def produce(broker, topic: str, counts: dict[int, int]) -> None:
    clients.produce_counts(broker, topic, counts, "v")


def test_a_session_answers_only_partitions_with_news(broker, topic):
    clients.create_topic(broker, topic, PARTITIONS)
    produce(broker, topic, {p: 2 for p in range(PARTITIONS)})
    c = FetchConnection(broker.bootstrap)
    try:
        everything = {(topic, p): 0 for p in range(PARTITIONS)}
        full = c.fetch(0, 0, everything)
        assert full["error"] == 0
        assert full["session_id"] != 0, "a full fetch with epoch 0 opened no session"
        assert set(full["partitions"]) == set(everything)
        assert all(e == 0 and hw == 2 and n > 0 for e, hw, n in full["partitions"].values())
        sid = full["session_id"]

        # Nothing new: an incremental fetch naming the new offsets gets nothing back.
        caught_up = {(topic, p): 2 for p in range(PARTITIONS)}
        quiet = c.fetch(sid, 1, caught_up)
        assert (quiet["error"], quiet["session_id"]) == (0, sid)
        assert quiet["partitions"] == {}

        # Records on two partitions: only those come back, naming nothing.
        produce(broker, topic, {3: 1, 5: 4})
        news = c.fetch(sid, 2, {})
        assert set(news["partitions"]) == {(topic, 3), (topic, 5)}
        assert news["partitions"][(topic, 3)][1] == 3 and news["partitions"][(topic, 5)][1] == 6
        assert all(n > 0 for _, _, n in news["partitions"].values())

        # The session keeps the last offsets it was given: the same records
        # again until the fetcher moves them on.
        again = c.fetch(sid, 3, {})
        assert set(again["partitions"]) == {(topic, 3), (topic, 5)}
        moved_on = c.fetch(sid, 4, {(topic, 3): 3, (topic, 5): 6})
        assert moved_on["partitions"] == {}

        # A forgotten partition is not answered, whatever arrives there.
        c.fetch(sid, 5, {}, forgotten={topic: [0]})
        produce(broker, topic, {0: 1, 1: 1})
        after = c.fetch(sid, 6, {})
        assert set(after["partitions"]) == {(topic, 1)}
    finally:
        c.close()


def test_session_errors_are_kafkas(broker, topic):
    clients.create_topic(broker, topic, 2)
    produce(broker, topic, {0: 1, 1: 1})
    c = FetchConnection(broker.bootstrap)
    try:
        full = c.fetch(0, 0, {(topic, 0): 0, (topic, 1): 0})
        sid = full["session_id"]
        assert sid != 0
        wrong_epoch = c.fetch(sid, 7, {})
        assert (wrong_epoch["error"], wrong_epoch["partitions"]) == (INVALID_FETCH_SESSION_EPOCH, {})
        unknown = c.fetch(sid ^ 0x5A5A5A, 1, {})
        assert (unknown["error"], unknown["partitions"]) == (FETCH_SESSION_ID_NOT_FOUND, {})
        # The session is still there after the refused ones.
        ok = c.fetch(sid, 1, {(topic, 0): 1, (topic, 1): 1})
        assert (ok["error"], ok["session_id"], ok["partitions"]) == (0, sid, {})
        # A full fetch with the final epoch closes it and opens none.
        final = c.fetch(sid, -1, {(topic, 0): 0})
        assert (final["error"], final["session_id"]) == (0, 0)
        assert set(final["partitions"]) == {(topic, 0)}
        closed = c.fetch(sid, 2, {})
        assert closed["error"] == FETCH_SESSION_ID_NOT_FOUND
    finally:
        c.close()


def test_a_quiet_session_waits_for_news_and_wakes_on_it(broker, topic):
    clients.create_topic(broker, topic, 2)
    produce(broker, topic, {0: 1, 1: 1})
    c = FetchConnection(broker.bootstrap)
    try:
        sid = c.fetch(0, 0, {(topic, 0): 1, (topic, 1): 1})["session_id"]
        assert sid != 0
        threading.Timer(0.5, produce, (broker, topic, {1: 1})).start()
        start = time.monotonic()
        woke = c.fetch(sid, 1, {}, max_wait_ms=10_000)
        assert time.monotonic() - start < 8, "the long poll was not woken by the append"
        assert set(woke["partitions"]) == {(topic, 1)}
    finally:
        c.close()


def test_clients_with_sessions_read_many_partitions_whole(broker, topic, tmp_path_factory):
    """kafka-python and the Java console consumer fetch with sessions."""
    partitions = 24
    clients.create_topic(broker, topic, partitions)
    counts = {p: 20 + p for p in range(partitions)}
    values = clients.produce_counts(broker, topic, counts, "v")
    read = clients.read_kp(broker, topic, partitions)
    assert sorted(r.value.decode() for r in read) == sorted(values)
    consumed = security.java_tool(
        JARS_DIR, security.tools_log4j(tmp_path_factory), "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server", broker.bootstrap, "--topic", topic, "--from-beginning",
        "--max-messages", str(len(values)), "--timeout-ms", "30000", timeout=120)
    assert consumed.returncode == 0, consumed.stderr[-2000:]
    assert sorted(consumed.stdout.splitlines()) == sorted(values)


def one_partition_fetch(broker, sessions: int) -> list[dict]:
    """Full fetches with epoch 0 of a new topic from `sessions` connections, one after another."""
    topic = clients.unique_name("slots")
    clients.create_topic(broker, topic, 1)
    connections = [FetchConnection(broker.bootstrap) for _ in range(sessions)]
    try:
        return [c.fetch(0, 0, {(topic, 0): 0}) for c in connections]
    finally:
        for c in connections:
            c.close()


@pytest.mark.skipif(brokers.target() == "kafka", reason=(
    "Kafka 4.4 splits its cache into shards of slots/8 each (seen: with 1 slot it opens "
    "no session at all); Sluice holds exactly the slots configured"))
def test_one_slot_holds_one_session(tmp_path):
    """The second fetcher gets no session (the first is too young to evict) and is answered in full."""
    b = brokers.make_broker(tmp_path, **{"max.incremental.fetch.session.cache.slots": "1"})
    try:
        first, second = one_partition_fetch(b, 2)
        assert first["session_id"] != 0
        assert (second["error"], second["session_id"], len(second["partitions"])) == (0, 0, 1)
    finally:
        b.stop()


def test_no_slots_means_no_sessions(tmp_path):
    b = brokers.make_broker(tmp_path, **{"max.incremental.fetch.session.cache.slots": "0"})
    try:
        (only,) = one_partition_fetch(b, 1)
        assert (only["error"], only["session_id"], len(only["partitions"])) == (0, 0, 1)
    finally:
        b.stop()
