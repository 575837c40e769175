"""Kafka transactions as users run them: transactional producers of both clients
(confluent-kafka / librdkafka and kafka-python), read back by read_committed and
read_uncommitted consumers of both clients.

What the user sees:
- a committed transaction's records are read once, in order, with their keys, values
  and headers; an aborted one's are never seen by read_committed consumers (they are
  in the log: read_uncommitted consumers see them);
- each partition a transaction wrote to gets one control record (its commit or abort
  marker) after the transaction's records: it takes an offset, which no consumer ever
  returns, so after a transaction of k records the next record is at offset k + 1;
- while a transaction is open, read_committed consumers stop at its first record (the
  last stable offset, LSO), also for the records other producers append after it, and
  ListOffsets "latest" with isolation read_committed answers the LSO;
- consume-transform-produce with send_offsets_to_transaction: the group's offsets move
  with the commit and only with it;
- a second producer with the same transactional.id fences the first and aborts its open
  transaction; a transaction left open past transaction.timeout.ms is aborted by the
  broker.

What the broker must do for these to pass: FindCoordinator (key type transaction),
InitProducerId with a transactional id (bumping the epoch, aborting an open transaction
first), AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, control batches
written to every partition of the transaction, the LSO (ListOffsets and Fetch with
isolation_level=1, aborted transactions in Fetch responses), transaction timeouts, and
OffsetFetch of offsets committed in a transaction.

commit_transaction() returns once the coordinator has decided; Kafka writes the markers
a moment later. So before looking at offsets, the cases wait (bounded) until no
transaction is open in the partitions (the LSO has caught up with the high watermark).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter

import confluent_kafka
import kafka
import kafka.errors
import pytest
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka import TopicPartition as KpTopicPartition
from kafka.structs import OffsetAndMetadata

import clients
from clients import Msg, Rec, wait_until

PRODUCERS = ["confluent-kafka", "kafka-python"]
READERS = ["confluent-kafka", "kafka-python"]
TXN_TIMEOUT = 30.0  # seconds, for init/commit/abort to complete: a bound, never a measure
READ_COMMITTED, READ_UNCOMMITTED = "read_committed", "read_uncommitted"


# ------------------------------------------------------------------ a transactional producer

class Transactional:
    """One transactional producer of either client, making the calls a user makes."""

    def __init__(self, client: str, broker, txn_id: str, **config):
        self.client, self.txn_id = client, txn_id
        if client == "confluent-kafka":
            self.producer = clients.ck_producer(broker, **{"transactional.id": txn_id, **config})
        else:
            self.producer = clients.kp_producer(broker, transactional_id=txn_id,
                                                max_block_ms=int(TXN_TIMEOUT * 1000), **config)

    def init(self) -> None:
        if self.client == "confluent-kafka":
            self.producer.init_transactions(TXN_TIMEOUT)
        else:
            self.producer.init_transactions()

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, topic: str, messages: list[Msg]) -> list[tuple[int, int]]:
        """Produce in order and wait until each is acknowledged (in the log, not yet
        committed); (partition, offset) of each."""
        if self.client == "confluent-kafka":
            kwargs = []
            for m in messages:
                k = {"key": m.key, "value": m.value}
                if m.headers:
                    k["headers"] = list(m.headers)
                if m.partition is not None:
                    k["partition"] = m.partition
                kwargs.append(k)
            reports = clients.ck_produce_all(self.producer, topic, kwargs)
            errors = [err for err, _, _ in reports if err is not None]
            assert not errors, f"{len(errors)} deliveries failed, first: {errors[0]}"
            return [(p, o) for _, p, o in reports]
        futures = [self.producer.send(topic, key=m.key, value=m.value, headers=list(m.headers),
                                      partition=m.partition) for m in messages]
        self.producer.flush(timeout=clients.READ_TIMEOUT)
        return [(md.partition, md.offset) for md in (f.get(timeout=clients.READ_TIMEOUT)
                                                       for f in futures)]

    def commit(self) -> None:
        if self.client == "confluent-kafka":
            self.producer.commit_transaction(TXN_TIMEOUT)
        else:
            self.producer.commit_transaction()

    def abort(self) -> None:
        if self.client == "confluent-kafka":
            self.producer.abort_transaction(TXN_TIMEOUT)
        else:
            self.producer.abort_transaction()

    def send_offsets(self, offsets: dict[tuple[str, int], int], group_metadata) -> None:
        """send_offsets_to_transaction: commit these consumer offsets with the transaction."""
        if self.client == "confluent-kafka":
            tps = [CkTopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
            self.producer.send_offsets_to_transaction(tps, group_metadata, TXN_TIMEOUT)
        else:
            self.producer.send_offsets_to_transaction(
                {KpTopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()},
                group_metadata)

    def close(self) -> None:
        # librdkafka aborts a transaction still open at close(); a fenced producer can't,
        # and says so in a warning. Either client may complain on its way out.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if self.client == "confluent-kafka":
                    self.producer.close()
                else:
                    self.producer.close(timeout=5)
            except Exception:  # noqa: BLE001
                pass


@pytest.fixture
def producers():
    """start(client, broker, transactional_id, **config): a Transactional producer, after
    init_transactions(). Every one is closed at the end of the test."""
    made: list[Transactional] = []

    def start(client, broker, txn_id, **config) -> Transactional:
        p = Transactional(client, broker, txn_id, **config)
        made.append(p)
        p.init()
        return p

    try:
        yield start
    finally:
        for p in made:
            p.close()


def txn_name(prefix: str) -> str:
    return clients.unique_name(f"txn-{prefix}")


def send_plain(broker, topic: str, messages: list[Msg]) -> list[tuple[int, int]]:
    """Non-transactional records (kafka-python, idempotent, acks=all), acknowledged."""
    return clients.send_kp(broker, topic, messages, acks="all")


# ------------------------------------------------------------------ what consumers see

def end_offsets(broker, topic: str, partitions: int, isolation: str) -> dict[int, int]:
    """ListOffsets "latest" as a consumer with this isolation level asks for it
    (kafka-python end_offsets): the high watermark for read_uncommitted, the last
    stable offset for read_committed."""
    consumer = clients.kp_consumer(broker, isolation_level=isolation)
    try:
        ends = consumer.end_offsets([KpTopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: o for tp, o in ends.items()}
    finally:
        consumer.close()


def wait_no_open_transaction(broker, topic: str, partitions: int,
                             timeout: float = clients.READ_TIMEOUT) -> dict[int, int]:
    """Wait until the last stable offset of every partition is its high watermark (the
    markers of the transactions that just ended are written). Returns the end offsets."""
    last = {}

    def stable():
        last["lso"] = end_offsets(broker, topic, partitions, READ_COMMITTED)
        last["hwm"] = end_offsets(broker, topic, partitions, READ_UNCOMMITTED)
        return last["lso"] == last["hwm"] and last["hwm"]

    try:
        return wait_until(stable, f"the last stable offsets of {topic} to reach its end", timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen LSO {last.get('lso')} HWM {last.get('hwm')}") from None


def read_kp(broker, topic: str, partitions: int, isolation: str, start: int | None = None,
            **config) -> list[Rec]:
    """kafka-python, assign + seek to the beginning (or to offset `start` in every
    partition): every record up to the end offsets it is given at the start (the LSO for
    read_committed), sorted by (partition, offset)."""
    consumer = clients.kp_consumer(broker, isolation_level=isolation, **config)
    try:
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        if start is None:
            consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                consumer.seek(tp, start)
        end = consumer.end_offsets(tps)

        def done(_):
            return all(consumer.position(tp) >= end[tp] for tp in tps)

        out = clients.kp_poll_until(consumer, done)
        assert done(out), (f"kafka-python {isolation}: read {len(out)} records, positions "
                           f"{[consumer.position(tp) for tp in tps]} never reached {end}")
        positions = {tp.partition: consumer.position(tp) for tp in tps}
        # A consumer steps over markers and aborted records: its position is the end.
        assert positions == {tp.partition: o for tp, o in end.items()}, (positions, end)
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def read_ck(broker, topic: str, partitions: int, isolation: str, start: int | None = None,
            **config) -> list[Rec]:
    """confluent-kafka, assign from the beginning (or from offset `start` in every
    partition): every record until it reports the end of each partition
    (enable.partition.eof) at or past the end offset it is given at the start
    (librdkafka's get_watermark_offsets answers the LSO for read_committed), sorted by
    (partition, offset)."""
    consumer = clients.ck_consumer(broker, **{"isolation.level": isolation,
                                              "enable.partition.eof": True, **config})
    try:
        end = {p: consumer.get_watermark_offsets(CkTopicPartition(topic, p), timeout=10)[1]
               for p in range(partitions)}
        first = confluent_kafka.OFFSET_BEGINNING if start is None else start
        consumer.assign([CkTopicPartition(topic, p, first) for p in range(partitions)])
        out: list[Rec] = []
        eof: dict[int, int] = {}
        deadline = time.monotonic() + clients.READ_TIMEOUT

        def done():
            return all(eof.get(p, -1) >= end[p] for p in range(partitions))

        while not done() and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    eof[m.partition()] = m.offset()
                    continue
                raise confluent_kafka.KafkaException(m.error())
            out.append(clients.ck_record(m))
        assert done(), (f"confluent-kafka {isolation}: read {len(out)} records, end of "
                        f"partitions reported at {eof}, never reached {end}")
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


READ = {"kafka-python": read_kp, "confluent-kafka": read_ck}


def seen(records: list[Rec]) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of each record."""
    return [(r.partition, r.offset, r.key, r.value) for r in records]


def values(records: list[Rec]) -> list[bytes | None]:
    return [r.value for r in records]


def assert_both_read(broker, topic: str, partitions: int, isolation: str, expected) -> None:
    """Both consumers, with this isolation level, read exactly `expected`
    ((partition, offset, key, value) sorted by partition and offset)."""
    for reader in READERS:
        got = seen(READ[reader](broker, topic, partitions, isolation))
        assert got == expected, f"{reader} {isolation} read {got}, expected {expected}"


# ------------------------------------------------------------------ committed

@pytest.mark.parametrize("client", PRODUCERS)
def test_committed_transaction_is_read_once_in_order_after_its_markers(broker, topic, client,
                                                                        producers):
    """One transaction over two partitions of one topic and a partition of a second:
    acknowledged at offsets 0, 1, ... in each partition; once committed, each partition
    ends one past its records (the commit marker), read_committed consumers of both
    clients read exactly the records, in order, with keys, values and headers, and the
    next record written to a partition lands after the marker."""
    second = clients.unique_name(f"{topic}-second")
    clients.create_topic(broker, topic, 2)
    clients.create_topic(broker, second, 1)
    producer = producers(client, broker, txn_name("commit"))

    first_msgs = [Msg(f"k{i}".encode(), f"v{i}".encode(), partition=0 if i < 4 else 1)
                  for i in range(10)]
    first_msgs[5] = first_msgs[5]._replace(headers=(("trace", b"t-5"), ("x", b"")))
    second_msgs = [Msg(f"s{i}".encode(), f"w{i}".encode(), partition=0) for i in range(3)]
    producer.begin()
    placed = producer.send(topic, first_msgs)
    placed_second = producer.send(second, second_msgs)
    producer.commit()

    assert placed == [(0, i) for i in range(4)] + [(1, i) for i in range(6)]
    assert placed_second == [(0, i) for i in range(3)]
    # Each partition: its records, then one commit marker.
    assert wait_no_open_transaction(broker, topic, 2) == {0: 5, 1: 7}
    assert wait_no_open_transaction(broker, second, 1) == {0: 4}

    for reader in READERS:
        records = READ[reader](broker, topic, 2, READ_COMMITTED)
        assert [(r.partition, r.offset) for r in records] == placed, reader
        assert [r.content() for r in records] == [m.content() for m in first_msgs], reader
        assert seen(READ[reader](broker, second, 1, READ_COMMITTED)) == [
            (0, i, f"s{i}".encode(), f"w{i}".encode()) for i in range(3)], reader

    # The markers took offsets 4 and 6: the next records go after them.
    assert send_plain(broker, topic, [Msg(None, b"after-0", partition=0),
                                      Msg(None, b"after-1", partition=1)]) == [(0, 5), (1, 7)]
    producer.begin()
    assert producer.send(second, [Msg(b"s3", b"w3", partition=0)]) == [(0, 4)]
    producer.commit()
    assert wait_no_open_transaction(broker, second, 1) == {0: 6}
    assert_both_read(broker, second, 1, READ_COMMITTED,
                     [(0, i, f"s{i}".encode(), f"w{i}".encode()) for i in range(3)]
                     + [(0, 4, b"s3", b"w3")])


# ------------------------------------------------------------------ aborted

@pytest.mark.parametrize("client", PRODUCERS)
def test_aborted_transaction_is_seen_by_read_uncommitted_only(broker, topic, client, producers):
    """Records acknowledged in a transaction that is then aborted stay in the log behind
    an abort marker: read_uncommitted consumers see them all, read_committed consumers
    none. The producer goes on: its next transaction is committed and seen."""
    clients.create_topic(broker, topic, 2)
    producer = producers(client, broker, txn_name("abort"))
    msgs = [Msg(f"k{i}".encode(), f"aborted-{i}".encode(), partition=i % 2) for i in range(6)]
    producer.begin()
    placed = producer.send(topic, msgs)
    producer.abort()
    assert sorted(placed) == [(p, i) for p in (0, 1) for i in range(3)]
    assert wait_no_open_transaction(broker, topic, 2) == {0: 4, 1: 4}  # 3 records + abort marker

    assert_both_read(broker, topic, 2, READ_COMMITTED, [])
    assert_both_read(broker, topic, 2, READ_UNCOMMITTED, sorted(
        (p, o, m.key, m.value) for m, (p, o) in zip(msgs, placed)))

    producer.begin()
    assert producer.send(topic, [Msg(b"k", b"committed", partition=1)]) == [(1, 4)]
    producer.commit()
    assert wait_no_open_transaction(broker, topic, 2) == {0: 4, 1: 6}
    assert_both_read(broker, topic, 2, READ_COMMITTED, [(1, 4, b"k", b"committed")])


# ------------------------------------------------------------------ interleaved

@pytest.mark.parametrize("client", PRODUCERS)
def test_interleaved_transactions_and_plain_records(broker, topic, client, producers):
    """Committed, aborted and committed transactions, with records of a non-transactional
    producer between them and inside them: read_committed consumers see exactly the
    committed and the non-transactional records, in offset order; read_uncommitted ones
    every record but the markers."""
    clients.create_topic(broker, topic, 1)
    producer = producers(client, broker, txn_name("interleave"))

    def txn_send(value):
        return producer.send(topic, [Msg(None, value, partition=0)])[0][1]

    def plain(value):
        return send_plain(broker, topic, [Msg(None, value, partition=0)])[0][1]

    at = {}
    producer.begin()
    at[b"c1"], at[b"c2"] = txn_send(b"c1"), txn_send(b"c2")
    producer.commit()
    wait_no_open_transaction(broker, topic, 1)                  # marker at 2
    at[b"n1"] = plain(b"n1")
    producer.begin()
    at[b"a1"] = txn_send(b"a1")
    at[b"n-in-aborted"] = plain(b"n-in-aborted")
    at[b"a2"] = txn_send(b"a2")
    producer.abort()
    wait_no_open_transaction(broker, topic, 1)                  # marker at 7
    at[b"n2"] = plain(b"n2")
    producer.begin()
    at[b"c3"] = txn_send(b"c3")
    at[b"n-in-committed"] = plain(b"n-in-committed")
    at[b"c4"] = txn_send(b"c4")
    producer.commit()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 13}  # marker at 12

    assert at == {b"c1": 0, b"c2": 1, b"n1": 3, b"a1": 4, b"n-in-aborted": 5, b"a2": 6,
                  b"n2": 8, b"c3": 9, b"n-in-committed": 10, b"c4": 11}
    committed = [b"c1", b"c2", b"n1", b"n-in-aborted", b"n2", b"c3", b"n-in-committed", b"c4"]
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, at[v], None, v) for v in committed])
    assert_both_read(broker, topic, 1, READ_UNCOMMITTED,
                     sorted((0, o, None, v) for v, o in at.items()))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_transactions_with_each_codec(broker, topic, codec, producers):
    """Transactional batches compressed with each codec (librdkafka, linger.ms=20: many
    records a batch): committed ones are read, aborted ones not, by both consumers."""
    clients.create_topic(broker, topic, 2)
    producer = producers("confluent-kafka", broker, txn_name(f"codec-{codec}"),
                         **{"compression.type": codec, "linger.ms": 20})

    def txn(tag, commit):
        producer.begin()
        placed = producer.send(topic, [Msg(f"{tag}-{i}".encode(), f"{tag} value {i} ".encode() * 5,
                                           partition=i % 2) for i in range(40)])
        if commit:
            producer.commit()
        else:
            producer.abort()
        wait_no_open_transaction(broker, topic, 2)
        return [(p, o, f"{tag}-{i}".encode(), f"{tag} value {i} ".encode() * 5)
                for i, (p, o) in enumerate(placed)]

    first = txn("first", commit=True)
    aborted = txn("aborted", commit=False)
    last = txn("last", commit=True)
    assert wait_no_open_transaction(broker, topic, 2) == {0: 63, 1: 63}  # 3 x (20 + marker)
    assert_both_read(broker, topic, 2, READ_COMMITTED, sorted(first + last))
    assert_both_read(broker, topic, 2, READ_UNCOMMITTED, sorted(first + aborted + last))
    # On disk, the client's batches carry its codec (the markers are at 20, 41 and 62).
    for p in (0, 1):
        assert {b.codec for b in clients.stored_batches(broker, topic, p)
                if b.base_offset not in (20, 41, 62)} == {codec}


# ------------------------------------------------------------------ open

@pytest.mark.parametrize("client", PRODUCERS)
def test_open_transaction_holds_read_committed_at_its_first_record(broker, topic, client,
                                                                   producers):
    """While a transaction is open, read_committed consumers stop at its first record,
    the last stable offset (LSO): also the non-transactional records appended after it
    wait. ListOffsets latest with read_committed answers the LSO (kafka-python
    end_offsets, librdkafka get_watermark_offsets); read_uncommitted, the high
    watermark. Another partition, without the transaction, is not held. A consumer
    waiting at the LSO gets the rest, in offset order, once the transaction commits."""
    clients.create_topic(broker, topic, 2)
    producer = producers(client, broker, txn_name("open"))
    assert send_plain(broker, topic, [Msg(None, b"n0", partition=0), Msg(None, b"n1", partition=0),
                                      Msg(None, b"p1-0", partition=1)]) == [(0, 0), (0, 1), (1, 0)]
    producer.begin()
    assert producer.send(topic, [Msg(None, b"open-1", partition=0)]) == [(0, 2)]
    assert send_plain(broker, topic, [Msg(None, b"n2", partition=0),
                                      Msg(None, b"p1-1", partition=1)]) == [(0, 3), (1, 1)]
    assert producer.send(topic, [Msg(None, b"open-2", partition=0)]) == [(0, 4)]

    assert end_offsets(broker, topic, 2, READ_COMMITTED) == {0: 2, 1: 2}
    assert end_offsets(broker, topic, 2, READ_UNCOMMITTED) == {0: 5, 1: 2}
    probe = clients.ck_consumer(broker, **{"isolation.level": READ_COMMITTED})
    try:
        assert probe.get_watermark_offsets(CkTopicPartition(topic, 0), timeout=10) == (0, 2)
    finally:
        probe.close()
    held = [(0, 0, None, b"n0"), (0, 1, None, b"n1"), (1, 0, None, b"p1-0"), (1, 1, None, b"p1-1")]
    assert_both_read(broker, topic, 2, READ_COMMITTED, held)

    # A consumer already waiting at the LSO ...
    waiting = clients.ck_consumer(broker, **{"isolation.level": READ_COMMITTED,
                                             "enable.partition.eof": True})
    try:
        waiting.assign([CkTopicPartition(topic, 0, 0)])
        before: list = []

        def at_lso():
            m = waiting.poll(0.5)
            if m is not None and not m.error():
                before.append(clients.ck_record(m))
            return m is not None and m.error() is not None and \
                m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF and m.offset()

        assert wait_until(at_lso, "the end of partition 0 for read_committed", interval=0) == 2
        assert values(before) == [b"n0", b"n1"]

        producer.commit()
        # ... gets the rest once the transaction commits.
        rest = clients.ck_poll_until(waiting, lambda rs: len(rs) >= 3)
        assert seen(rest) == [(0, 2, None, b"open-1"), (0, 3, None, b"n2"), (0, 4, None, b"open-2")]
    finally:
        waiting.close()

    assert wait_no_open_transaction(broker, topic, 2) == {0: 6, 1: 2}
    assert_both_read(broker, topic, 2, READ_COMMITTED, [
        (0, 0, None, b"n0"), (0, 1, None, b"n1"), (0, 2, None, b"open-1"), (0, 3, None, b"n2"),
        (0, 4, None, b"open-2"), (1, 0, None, b"p1-0"), (1, 1, None, b"p1-1")])


@pytest.mark.parametrize("client", PRODUCERS)
def test_earliest_open_transaction_holds_the_last_stable_offset(broker, topic, client, producers):
    """Two producers with transactions open in the same partition: the LSO is the first
    record of the earlier one. Committing the later one does not release anything; once
    the earlier one ends (aborted here), everything up to the end is readable: the later
    transaction's records and the plain ones, not the aborted ones."""
    clients.create_topic(broker, topic, 1)
    early = producers(client, broker, txn_name("early"))
    late = producers(client, broker, txn_name("late"))
    assert send_plain(broker, topic, [Msg(None, b"n0")]) == [(0, 0)]
    early.begin()
    late.begin()
    assert early.send(topic, [Msg(None, b"early-1")]) == [(0, 1)]
    assert late.send(topic, [Msg(None, b"late-1")]) == [(0, 2)]
    assert send_plain(broker, topic, [Msg(None, b"n1")]) == [(0, 3)]
    assert early.send(topic, [Msg(None, b"early-2")]) == [(0, 4)]
    assert end_offsets(broker, topic, 1, READ_COMMITTED) == {0: 1}

    late.commit()
    # Its marker (at 5) is written a moment after commit returns; the LSO stays at 1.
    wait_until(lambda: end_offsets(broker, topic, 1, READ_UNCOMMITTED) == {0: 6},
               "the commit marker of the later transaction")
    assert end_offsets(broker, topic, 1, READ_COMMITTED) == {0: 1}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 0, None, b"n0")])

    early.abort()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 7}  # abort marker at 6
    assert_both_read(broker, topic, 1, READ_COMMITTED,
                     [(0, 0, None, b"n0"), (0, 2, None, b"late-1"), (0, 3, None, b"n1")])


SMALL_FETCHES = {"kafka-python": {"max_partition_fetch_bytes": 1024, "fetch_max_bytes": 1024},
                 "confluent-kafka": {"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
                                     "message.max.bytes": 1000}}


def test_aborted_transaction_is_skipped_from_any_offset_in_small_fetches(broker, topic, producers):
    """A long aborted transaction (many batches) with plain records between its batches,
    read with fetches of about one batch each: from the beginning and from an offset in
    the middle of the transaction, read_committed consumers get exactly the plain records
    (and those of a committed transaction after it), never an aborted one. A fetch that
    starts inside the transaction must still learn that it was aborted."""
    clients.create_topic(broker, topic, 1)
    producer = producers("confluent-kafka", broker, txn_name("long-abort"), **{"linger.ms": 0})
    plain = clients.ck_producer(broker, **{"enable.idempotence": True, "linger.ms": 0})
    padding = b"." * 150
    expected = []  # (partition, offset, key, value) of what read_committed must see
    aborted_offsets = []
    try:
        producer.begin()
        for i in range(15):
            placed = producer.send(topic, [Msg(b"a", b"aborted-%d-%d-" % (i, j) + padding,
                                               partition=0) for j in range(4)])
            aborted_offsets += [o for _, o in placed]
            (err, p, o), = clients.ck_produce_all(plain, topic, [
                {"key": b"n", "value": b"plain-%d-" % i + padding, "partition": 0}])
            assert err is None, err
            expected.append((p, o, b"n", b"plain-%d-" % i + padding))
        producer.abort()
        wait_no_open_transaction(broker, topic, 1)
        producer.begin()
        placed = producer.send(topic, [Msg(b"c", b"committed-%d-" % j + padding, partition=0)
                                       for j in range(4)])
        producer.commit()
    finally:
        plain.close()
    expected += [(p, o, b"c", b"committed-%d-" % j + padding) for j, (p, o) in enumerate(placed)]
    end = wait_no_open_transaction(broker, topic, 1)
    assert end == {0: expected[-1][1] + 2}  # the commit marker, then the end

    middle = aborted_offsets[len(aborted_offsets) // 2]  # inside the aborted transaction
    for reader in READERS:
        for start in (None, middle):
            got = seen(READ[reader](broker, topic, 1, READ_COMMITTED, start=start,
                                    **SMALL_FETCHES[reader]))
            want = [r for r in expected if start is None or r[1] >= start]
            assert got == want, f"{reader} from {start}: read {[(o, v[:12]) for _, o, _, v in got]}"


# ------------------------------------------------------------------ exactly once

class Pipeline:
    """consume-transform-produce as users write it: a consumer of a group (subscribe,
    no auto commit) and a transactional producer that writes what it made of the records
    and commits the consumer's positions with the transaction."""

    def __init__(self, client: str, broker, group: str, topic_in: str, txn_id: str, producers):
        self.client = client
        self.producer = producers(client, broker, txn_id)
        if client == "confluent-kafka":
            self.consumer = confluent_kafka.Consumer({
                "bootstrap.servers": broker.bootstrap, "group.id": group,
                "client.id": "compat-ck-eos", "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "isolation.level": READ_COMMITTED})
        else:
            self.consumer = kafka.KafkaConsumer(
                bootstrap_servers=broker.bootstrap, group_id=group, client_id="compat-kp-eos",
                enable_auto_commit=False, auto_offset_reset="earliest",
                isolation_level=READ_COMMITTED, request_timeout_ms=20000)
        self.consumer.subscribe([topic_in])

    def poll(self, n: int) -> list[Rec]:
        """Poll until n records came (bounded)."""
        if self.client == "confluent-kafka":
            out = clients.ck_poll_until(self.consumer, lambda rs: len(rs) >= n)
        else:
            out = clients.kp_poll_until(self.consumer, lambda rs: len(rs) >= n)
        assert len(out) == n, f"{self.client}: polled {len(out)} records, expected {n}"
        return out

    def positions(self) -> dict[tuple[str, int], int]:
        if self.client == "confluent-kafka":
            return {(tp.topic, tp.partition): tp.offset
                    for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0}
        return {(tp.topic, tp.partition): self.consumer.position(tp)
                for tp in self.consumer.assignment()}

    def group_metadata(self):
        if self.client == "confluent-kafka":
            return self.consumer.consumer_group_metadata()
        return self.consumer.group_metadata()

    def process(self, records: list[Rec], topic_out: str, commit: bool) -> dict:
        """One transaction: each record's value, upper-cased, to topic_out (keyed by the
        original value), with the consumer's positions; committed or aborted. Returns the
        positions sent."""
        positions = self.positions()
        self.producer.begin()
        self.producer.send(topic_out, [Msg(r.value, r.value.upper()) for r in records])
        self.producer.send_offsets(positions, self.group_metadata())
        if commit:
            self.producer.commit()
        else:
            self.producer.abort()
        return positions

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()


def committed_offsets(broker, group: str) -> dict[tuple[str, int], int]:
    return {tp: o for tp, (o, _) in clients.group_offsets(broker, group).items()}


def wait_committed(broker, group: str, want: dict[tuple[str, int], int]) -> None:
    last = {}

    def done():
        last["committed"] = committed_offsets(broker, group)
        return last["committed"] == want

    try:
        wait_until(done, f"the committed offsets of {group} to be {want}", interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {last.get('committed')}") from None


@pytest.mark.parametrize("client", PRODUCERS)
def test_consume_transform_produce_commits_offsets_with_the_transaction(broker, topic, client,
                                                                        producers):
    """send_offsets_to_transaction: once committed, the group's committed offsets are the
    consumer's positions (the input's end) and the output is visible read_committed. An
    aborted round moves neither: its output stays invisible and the group's offsets stay
    where they were, so the next instance of the application (same group, same
    transactional.id) consumes that input again. In the end each input record is in the
    output exactly once."""
    topic_in, topic_out = topic, clients.unique_name(f"{topic}-out")
    clients.create_topic(broker, topic_in, 2)
    clients.create_topic(broker, topic_out, 1)
    group, txn_id = clients.unique_name("g-eos"), txn_name("eos")

    round1 = clients.produce_counts(broker, topic_in, {0: 5, 1: 7}, "r1")
    app = Pipeline(client, broker, group, topic_in, txn_id, producers)
    try:
        records = app.poll(len(round1))
        assert app.process(records, topic_out, commit=True) == {(topic_in, 0): 5, (topic_in, 1): 7}
        wait_committed(broker, group, {(topic_in, 0): 5, (topic_in, 1): 7})
        assert wait_no_open_transaction(broker, topic_out, 1) == {0: 13}  # 12 records + marker
        assert sorted(values(read_ck(broker, topic_out, 1, READ_COMMITTED))) == sorted(
            v.upper().encode() for v in round1)

        round2 = clients.produce_counts(broker, topic_in, {0: 2, 1: 3}, "r2")
        records = app.poll(len(round2))
        assert sorted(r.value.decode() for r in records) == sorted(round2)
        assert app.process(records, topic_out, commit=False) == {(topic_in, 0): 7, (topic_in, 1): 10}
        assert wait_no_open_transaction(broker, topic_out, 1) == {0: 19}  # + 5 records + marker
        assert committed_offsets(broker, group) == {(topic_in, 0): 5, (topic_in, 1): 7}
        assert sorted(values(read_kp(broker, topic_out, 1, READ_COMMITTED))) == sorted(
            v.upper().encode() for v in round1)
        assert len(read_kp(broker, topic_out, 1, READ_UNCOMMITTED)) == 17
    finally:
        app.close()

    # The next instance resumes from the committed offsets: the aborted round's input again.
    app = Pipeline(client, broker, group, topic_in, txn_id, producers)
    try:
        records = app.poll(len(round2))
        assert sorted(r.value.decode() for r in records) == sorted(round2)
        app.process(records, topic_out, commit=True)
    finally:
        app.close()
    wait_committed(broker, group, {(topic_in, 0): 7, (topic_in, 1): 10})
    assert wait_no_open_transaction(broker, topic_out, 1) == {0: 25}
    for reader in READERS:
        out = Counter(values(READ[reader](broker, topic_out, 1, READ_COMMITTED)))
        assert out == Counter(v.upper().encode() for v in round1 + round2), reader


def split_between(apps: list[Pipeline], partitions: int, timeout=clients.READ_TIMEOUT) -> None:
    """Poll every app's consumer (dropping what they get) until each owns a partition
    and together all: the group rebalanced to them."""
    def split():
        for app in apps:
            if app.client == "confluent-kafka":
                app.consumer.poll(0.2)
            else:
                app.consumer.poll(timeout_ms=200)
        owned = [{tp.partition for tp in app.consumer.assignment()} for app in apps]
        return all(owned) and sorted(p for ps in owned for p in ps) == list(range(partitions))

    wait_until(split, f"{len(apps)} consumers to split {partitions} partitions", timeout, interval=0)


@pytest.mark.parametrize("client", PRODUCERS)
def test_offsets_of_a_stale_group_member_are_refused(broker, topic, client, producers):
    """KIP-447: an instance whose consumer's group has rebalanced since it took its group
    metadata (a zombie, as far as the group is concerned) cannot commit offsets in a
    transaction: the broker answers ILLEGAL_GENERATION (confluent-kafka: an abortable
    KafkaException ILLEGAL_GENERATION; kafka-python: CommitFailedError). The producer
    aborts; nothing is committed for the group, its output is not visible."""
    topic_in, topic_out = topic, clients.unique_name(f"{topic}-out")
    clients.create_topic(broker, topic_in, 2)
    clients.create_topic(broker, topic_out, 1)
    group = clients.unique_name("g-stale")
    clients.produce_counts(broker, topic_in, {0: 3, 1: 3}, "in")
    first = Pipeline(client, broker, group, topic_in, txn_name("stale-1"), producers)
    second = None
    try:
        first.poll(6)
        stale = first.group_metadata()
        second = Pipeline(client, broker, group, topic_in, txn_name("stale-2"), producers)
        split_between([first, second], 2)

        first.producer.begin()
        first.producer.send(topic_out, [Msg(None, b"from-a-zombie")])
        offsets = {(topic_in, 0): 3, (topic_in, 1): 3}
        if client == "confluent-kafka":
            with pytest.raises(confluent_kafka.KafkaException) as raised:
                first.producer.send_offsets(offsets, stale)
            error = raised.value.args[0]
            assert (error.code(), error.txn_requires_abort(), error.fatal()) == (
                confluent_kafka.KafkaError.ILLEGAL_GENERATION, True, False), error
        else:
            with pytest.raises(kafka.errors.CommitFailedError):
                first.producer.send_offsets(offsets, stale)
        first.producer.abort()
    finally:
        first.close()
        if second is not None:
            second.close()
    assert wait_no_open_transaction(broker, topic_out, 1) == {0: 2}  # the record, the abort marker
    assert committed_offsets(broker, group) == {}
    assert_both_read(broker, topic_out, 1, READ_COMMITTED, [])


@pytest.mark.parametrize("client", PRODUCERS)
def test_new_consumer_waits_for_offsets_pending_in_a_transaction(broker, topic, client, producers):
    """KIP-447: an application instance consumed, produced and sent its offsets in a
    transaction, then its consumer left the group before the commit. A new consumer of
    the group (read_committed: OffsetFetch with require_stable) does not start from what
    is committed so far (nothing: it would read everything again): the broker answers
    UNSTABLE_OFFSET_COMMIT until the transaction ends, and the consumer starts at the
    offsets the transaction committed, reading only the record produced after them."""
    topic_in, topic_out = topic, clients.unique_name(f"{topic}-out")
    clients.create_topic(broker, topic_in, 1)
    clients.create_topic(broker, topic_out, 1)
    group = clients.unique_name("g-pending")
    clients.produce_counts(broker, topic_in, {0: 5}, "before")
    app = Pipeline(client, broker, group, topic_in, txn_name("pending"), producers)
    records = app.poll(5)
    app.producer.begin()
    app.producer.send(topic_out, [Msg(r.value, r.value.upper()) for r in records])
    app.producer.send_offsets(app.positions(), app.group_metadata())
    app.consumer.close()
    after = clients.produce_counts(broker, topic_in, {0: 1}, "after")

    # Commit a little later, while the new consumer is (most likely) already asking for
    # the group's offsets. Had it asked after the commit, it would start at 5 all the same.
    outcome: list = []

    def commit_later():
        time.sleep(3)
        try:
            app.producer.commit()
            outcome.append(None)
        except Exception as e:  # noqa: BLE001  (reported by the test below)
            outcome.append(e)

    committer = threading.Thread(target=commit_later, daemon=True)
    committer.start()
    if client == "confluent-kafka":
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": "compat-ck-next",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": READ_COMMITTED})
        poll_until = clients.ck_poll_until
    else:
        consumer = kafka.KafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id=group, client_id="compat-kp-next",
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level=READ_COMMITTED, request_timeout_ms=20000)
        poll_until = clients.kp_poll_until
    try:
        consumer.subscribe([topic_in])
        got = poll_until(consumer, lambda rs: len(rs) >= 1)
    finally:
        consumer.close()
        committer.join(timeout=TXN_TIMEOUT + 5)
    assert outcome == [None], f"commit_transaction failed: {outcome}"
    assert [(r.offset, r.value.decode()) for r in got] == [(5, after[0])], \
        "the new consumer did not start at the offsets committed in the transaction"
    assert committed_offsets(broker, group) == {(topic_in, 0): 5}


@pytest.mark.parametrize("client", PRODUCERS)
def test_transaction_timeout_above_the_broker_maximum_is_refused(broker, client):
    """transaction.timeout.ms above the broker's transaction.max.timeout.ms (15 minutes
    by default): init_transactions fails with INVALID_TRANSACTION_TIMEOUT (50), fatal
    for confluent-kafka; kafka-python raises a KafkaError naming
    InvalidTransactionTimeoutError."""
    txn_id = txn_name("too-long")
    if client == "confluent-kafka":
        producer = Transactional(client, broker, txn_id, **{"transaction.timeout.ms": 900_001})
        try:
            with pytest.raises(confluent_kafka.KafkaException) as raised:
                producer.init()
        finally:
            producer.close()
        error = raised.value.args[0]
        assert (error.code(), error.fatal()) == (
            confluent_kafka.KafkaError.INVALID_TRANSACTION_TIMEOUT, True), error
    else:
        producer = Transactional(client, broker, txn_id, transaction_timeout_ms=900_001)
        try:
            with pytest.raises(kafka.errors.KafkaError, match="InvalidTransactionTimeoutError"):
                producer.init()
        finally:
            producer.close()


# ------------------------------------------------------------------ fencing

@pytest.mark.parametrize("zombie_does", ["produce", "commit"])
@pytest.mark.parametrize("client", PRODUCERS)
def test_second_producer_with_the_same_transactional_id_fences_the_first(broker, topic, client,
                                                                         zombie_does, producers):
    """init_transactions of a second producer with the same transactional.id aborts the
    first one's open transaction (its records never become visible read_committed) and
    fences it: the first producer's next produce or commit fails, fatally. What each
    client reports, against Kafka:
    - confluent-kafka: KafkaException, fatal, code _FENCED, from flush() after a produce
      (the broker answered the Produce with INVALID_PRODUCER_EPOCH) or from
      commit_transaction() (EndTxn answered PRODUCER_FENCED);
    - kafka-python: the send's future fails with InvalidProducerEpochError (47);
      commit_transaction() raises ProducerFencedError (90).
    The new producer then commits its own transaction."""
    clients.create_topic(broker, topic, 1)
    txn_id = txn_name("fence")
    first = producers(client, broker, txn_id)
    first.begin()
    assert first.send(topic, [Msg(None, b"zombie-1"), Msg(None, b"zombie-2")]) == [(0, 0), (0, 1)]
    assert end_offsets(broker, topic, 1, READ_COMMITTED) == {0: 0}

    second = producers(client, broker, txn_id)
    # The first's transaction is aborted: a marker at 2, nothing open.
    assert wait_no_open_transaction(broker, topic, 1) == {0: 3}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [])

    if client == "confluent-kafka":
        with pytest.raises(confluent_kafka.KafkaException) as raised:
            if zombie_does == "produce":
                first.producer.produce(topic, value=b"zombie-3", partition=0)
                first.producer.flush(TXN_TIMEOUT)
            first.producer.commit_transaction(TXN_TIMEOUT)
        error = raised.value.args[0]
        assert (error.code(), error.fatal()) == (confluent_kafka.KafkaError._FENCED, True), error
    elif zombie_does == "produce":
        with pytest.raises(kafka.errors.InvalidProducerEpochError):
            first.producer.send(topic, value=b"zombie-3", partition=0).get(timeout=TXN_TIMEOUT)
    else:
        with pytest.raises(kafka.errors.ProducerFencedError):
            first.producer.commit_transaction()

    second.begin()
    assert second.send(topic, [Msg(None, b"second")]) == [(0, 3)]
    second.commit()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 5}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 3, None, b"second")])
    assert_both_read(broker, topic, 1, READ_UNCOMMITTED, [
        (0, 0, None, b"zombie-1"), (0, 1, None, b"zombie-2"), (0, 3, None, b"second")])


# ------------------------------------------------------------------ timeout

# Kafka looks for timed-out transactions every
# transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s by default): a
# transaction with a 3 s timeout is aborted between 3 and ~13 s after it began.
ABANDON_WAIT = 45.0


def test_transaction_left_open_past_its_timeout_is_aborted(broker, topic, producers):
    """A producer begins a transaction (transaction.timeout.ms=3000), writes, and then
    does nothing: the broker aborts the transaction. A read_committed consumer that was
    held at its first record then reads on (the non-transactional record after it, not
    the abandoned one). The producer learns it when it tries to commit: confluent-kafka
    raises a fatal _FENCED (Kafka bumped the epoch when it aborted; EndTxn answers
    PRODUCER_FENCED)."""
    clients.create_topic(broker, topic, 1)
    producer = producers("confluent-kafka", broker, txn_name("timeout"),
                         **{"transaction.timeout.ms": 3000})
    producer.begin()
    assert producer.send(topic, [Msg(None, b"abandoned")]) == [(0, 0)]
    assert send_plain(broker, topic, [Msg(None, b"after")]) == [(0, 1)]

    consumer = clients.ck_consumer(broker, **{"isolation.level": READ_COMMITTED})
    try:
        consumer.assign([CkTopicPartition(topic, 0, 0)])
        got = clients.ck_poll_until(consumer, lambda rs: len(rs) >= 1, timeout=ABANDON_WAIT)
        assert seen(got) == [(0, 1, None, b"after")], "read_committed never got past the abandoned transaction"
    finally:
        consumer.close()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 3}  # the abort marker at 2
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 1, None, b"after")])

    with pytest.raises(confluent_kafka.KafkaException) as raised:
        producer.commit()
    error = raised.value.args[0]
    assert (error.code(), error.fatal()) == (confluent_kafka.KafkaError._FENCED, True), error


# ------------------------------------------------------------------ kill -9

@pytest.mark.crash
def test_transactions_survive_kill_9(own_broker, topic, producers):
    """Committed, aborted and open transactions, then kill -9 and a restart on the same
    data: read_committed consumers read what they read before (the open transaction
    still holds them at its first record), read_uncommitted ones everything; the
    producer of the open transaction, still running, commits it. Sluice only (the
    own_broker fixture): Kafka passes it too (COMPAT_KAFKA_CRASH_TESTS=1 -m crash)."""
    broker = own_broker
    clients.create_topic(broker, topic, 2)
    done = producers("confluent-kafka", broker, txn_name("crash-done"))
    done.begin()
    done.send(topic, [Msg(b"k", b"c1", partition=0), Msg(b"k", b"c2", partition=1)])
    done.commit()
    wait_no_open_transaction(broker, topic, 2)                       # markers at 1, 1
    done.begin()
    done.send(topic, [Msg(b"k", b"a1", partition=0), Msg(b"k", b"a2", partition=1)])
    done.abort()
    assert wait_no_open_transaction(broker, topic, 2) == {0: 4, 1: 4}  # markers at 3, 3
    pending = producers("confluent-kafka", broker, txn_name("crash-open"),
                        **{"transaction.timeout.ms": 120000})
    pending.begin()
    assert pending.send(topic, [Msg(b"k", b"o1", partition=0)]) == [(0, 4)]
    assert send_plain(broker, topic, [Msg(b"k", b"n1", partition=0),
                                      Msg(b"k", b"n2", partition=1)]) == [(0, 5), (1, 4)]

    committed = [(0, 0, b"k", b"c1"), (1, 0, b"k", b"c2"), (1, 4, b"k", b"n2")]
    everything = sorted(committed + [(0, 2, b"k", b"a1"), (1, 2, b"k", b"a2"),
                                     (0, 4, b"k", b"o1"), (0, 5, b"k", b"n1")])

    def check_held():
        assert end_offsets(broker, topic, 2, READ_COMMITTED) == {0: 4, 1: 5}
        assert end_offsets(broker, topic, 2, READ_UNCOMMITTED) == {0: 6, 1: 5}
        assert_both_read(broker, topic, 2, READ_COMMITTED, committed)
        assert_both_read(broker, topic, 2, READ_UNCOMMITTED, everything)

    check_held()
    broker.kill()
    broker.restart()
    clients.wait_for_serving(broker, topic, 2, timeout=60)
    check_held()

    pending.commit()
    assert wait_no_open_transaction(broker, topic, 2) == {0: 7, 1: 5}  # marker at 6
    assert_both_read(broker, topic, 2, READ_COMMITTED, sorted(
        committed + [(0, 4, b"k", b"o1"), (0, 5, b"k", b"n1")]))


def test_old_versions_get_the_errors_they_know(broker, topic):
    """A fenced producer epoch: AddPartitionsToTxn v0 and v1 predate PRODUCER_FENCED
    (KIP-588) and get INVALID_PRODUCER_EPOCH, as Kafka answers them; v2+ get PRODUCER_FENCED."""
    from kafka.protocol.producer.transaction import (AddPartitionsToTxnRequest,
                                                     InitProducerIdRequest)

    clients.create_topic(broker, topic, 1)
    txn_id = clients.unique_name("old-versions")
    raw = clients.RawGroupClient(broker)
    try:
        raw.find_coordinator(txn_id, key_type=1)  # creates the transaction state topic

        def init():
            deadline = time.monotonic() + 30
            while True:
                r = raw.call(InitProducerIdRequest(transactional_id=txn_id,
                                                   transaction_timeout_ms=60000,
                                                   producer_id=-1, producer_epoch=-1))
                # The transaction state topic may still be coming up.
                if r.error_code == 0 or time.monotonic() > deadline:
                    return r
                time.sleep(0.2)

        first = init()
        assert first.error_code == 0, first
        second = init()
        assert (second.error_code, second.producer_id) == (0, first.producer_id)

        def add(version: int) -> int:
            topics = [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic, partitions=[0])]
            r = raw.call(AddPartitionsToTxnRequest(
                v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=first.producer_id,
                v3_and_below_producer_epoch=first.producer_epoch, v3_and_below_topics=topics),
                version=version)
            return r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code

        assert [add(v) for v in (0, 1, 2, 3)] == [47, 47, 90, 90]  # INVALID_PRODUCER_EPOCH, PRODUCER_FENCED
    finally:
        raw.close()
