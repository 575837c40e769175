"""Transactions seen through the official Apache Kafka 4.4 tools (and so the Java client),
and transactions across a clean broker restart.

- kafka-transactions (org.apache.kafka.tools.TransactionsCommand): `list`, `describe`
  and `describe-producers` show an open transaction (its producer id and epoch, state,
  timeout, partitions, and in each partition the offset it started at), then the same
  transaction completed;
- kafka-producer-perf-test --transactional-id --transaction-duration-ms: many small
  transactions, every record visible read_committed exactly once;
- kafka-console-consumer --isolation-level read_committed skips an aborted transaction;
- across a broker restart (SIGTERM, start again on the same data): committed stays
  committed, aborted stays aborted, an open transaction still holds read_committed
  consumers at its first record, and its producer can still commit it.

The expectations are Apache Kafka 4.4's own behaviour (COMPAT_TARGET=kafka runs the same
cases against it). The Python helpers (a transactional producer of either client, readers
with an isolation level) are test_transactions.py's.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import clients
import kafka_tools
from clients import Msg
from kafka_tools import parse_dump_log
from test_tools import PERF_RESULT, consume, create, dump_log, ok, tool
from test_transactions import (READ_COMMITTED, READ_UNCOMMITTED, assert_both_read, end_offsets,
                               read_ck, send_plain, txn_name, values, wait_no_open_transaction)
from test_transactions import producers  # noqa: F401  (a fixture, found by its name)


def transactions(broker, *args) -> kafka_tools.Result:
    return tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, *args)


def parse_tab_table(stdout: str) -> list[dict]:
    """kafka-transactions' tables: a header row and data rows, cells separated by tabs
    and padded with spaces. One dict per row, keyed by the header."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, f"no table in {stdout!r}"
    header = [c.strip() for c in lines[0].split("\t")]
    while header and not header[-1]:
        header.pop()
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t")][:len(header)]
        assert len(cells) == len(header), f"row {line!r} does not fit header {header}"
        rows.append(dict(zip(header, cells)))
    return rows


def describe(broker, txn_id: str) -> dict:
    r = ok("kafka-transactions", "--bootstrap-server", broker.bootstrap,
           "describe", "--transactional-id", txn_id)
    (row,) = parse_tab_table(r.stdout)
    return row


def describe_producers(broker, topic: str, partition: int) -> list[dict]:
    r = ok("kafka-transactions", "--bootstrap-server", broker.bootstrap,
           "describe-producers", "--topic", topic, "--partition", partition)
    return parse_tab_table(r.stdout)


def listed(broker, *args) -> dict[str, dict]:
    r = ok("kafka-transactions", "--bootstrap-server", broker.bootstrap, "list", *args)
    return {row["TransactionalId"]: row for row in parse_tab_table(r.stdout)}


def partitions_cell(cell: str) -> set[str]:
    return {p for p in cell.split(",") if p}


# ------------------------------------------------------------------ kafka-transactions

def test_kafka_transactions_list_describe_and_describe_producers(broker, tool_topic, producers):
    """An open transaction as kafka-transactions shows it: `list` names it Ongoing with
    its producer id; `describe` gives the same producer id, its epoch, Ongoing, the
    producer's transaction.timeout.ms, a start time, and the partitions written to;
    `describe-producers` shows that producer in each partition with the offset of the
    transaction's first record there (CurrentTransactionStartOffset), beside an
    idempotent non-transactional producer with none. Once committed: CompleteCommit, no
    partitions, no start offsets. An unknown transactional id is an error."""
    topic = tool_topic
    create(broker, topic, 2)
    txn_id = txn_name("tool-describe")
    producer = producers("confluent-kafka", broker, txn_id, **{"transaction.timeout.ms": 45000})

    before = describe(broker, txn_id)
    assert (before["TransactionalId"], before["TransactionState"], before["TransactionTimeoutMs"],
            before["TopicPartitions"]) == (txn_id, "Empty", "45000", "")
    producer_id, epoch = before["ProducerId"], before["ProducerEpoch"]
    assert int(producer_id) >= 0 and int(epoch) >= 0

    assert send_plain(broker, topic, [Msg(None, b"plain-1", partition=1),
                                      Msg(None, b"plain-2", partition=1)]) == [(1, 0), (1, 1)]
    began_ms = int(time.time() * 1000)
    producer.begin()
    assert producer.send(topic, [Msg(None, b"t0", partition=0), Msg(None, b"t1", partition=1),
                                 Msg(None, b"t2", partition=1)]) == [(0, 0), (1, 2), (1, 3)]

    ongoing = describe(broker, txn_id)
    assert (ongoing["ProducerId"], ongoing["ProducerEpoch"], ongoing["TransactionState"],
            ongoing["TransactionTimeoutMs"]) == (producer_id, epoch, "Ongoing", "45000")
    assert partitions_cell(ongoing["TopicPartitions"]) == {f"{topic}-0", f"{topic}-1"}
    assert began_ms - 1000 <= int(ongoing["CurrentTransactionStartTimeMs"]) <= time.time() * 1000 + 1000
    assert int(ongoing["TransactionDurationMs"]) >= 0
    assert ongoing["CoordinatorId"] == before["CoordinatorId"]

    row = listed(broker)[txn_id]
    assert (row["Coordinator"], row["ProducerId"], row["TransactionState"]) == (
        ongoing["CoordinatorId"], producer_id, "Ongoing")
    # KIP-1152: the 4.x tool filters by a regular expression, in the broker.
    assert set(listed(broker, "--transactional-id-pattern", re.escape(txn_id))) == {txn_id}
    # KIP-994: only transactions open longer than the duration; it began moments ago.
    assert txn_id in listed(broker, "--duration-filter", 0)
    assert txn_id not in listed(broker, "--duration-filter", 3_600_000)

    mine = {p: [r for r in describe_producers(broker, topic, p) if r["ProducerId"] == producer_id]
            for p in (0, 1)}
    assert [(r["ProducerEpoch"], r["CurrentTransactionStartOffset"], r["LastSequence"])
            for r in mine[0]] == [(epoch, "0", "0")]
    assert [(r["ProducerEpoch"], r["CurrentTransactionStartOffset"], r["LastSequence"])
            for r in mine[1]] == [(epoch, "2", "1")]
    others = [r for r in describe_producers(broker, topic, 1) if r["ProducerId"] != producer_id]
    assert [(r["LastSequence"], r["CurrentTransactionStartOffset"]) for r in others] == [("1", "None")]

    producer.commit()
    wait_no_open_transaction(broker, topic, 2)
    done = describe(broker, txn_id)
    assert (done["ProducerId"], done["TransactionState"], done["TopicPartitions"]) == (
        producer_id, "CompleteCommit", "")
    assert listed(broker)[txn_id]["TransactionState"] == "CompleteCommit"
    for p in (0, 1):
        assert [r["CurrentTransactionStartOffset"] for r in describe_producers(broker, topic, p)
                if r["ProducerId"] == producer_id] == ["None"]

    unknown = transactions(broker, "describe", "--transactional-id", txn_name("never-used"))
    assert unknown.code == 1 and "could not be found" in unknown.stderr, str(unknown)


def test_kafka_transactions_shows_an_aborted_transaction(broker, tool_topic, producers):
    """After abort_transaction: describe says CompleteAbort, with no partitions left."""
    topic = tool_topic
    create(broker, topic, 1)
    txn_id = txn_name("tool-abort")
    producer = producers("confluent-kafka", broker, txn_id)
    producer.begin()
    producer.send(topic, [Msg(None, b"gone")])
    producer.abort()
    wait_no_open_transaction(broker, topic, 1)
    row = describe(broker, txn_id)
    assert (row["TransactionState"], row["TopicPartitions"]) == ("CompleteAbort", "")
    assert listed(broker)[txn_id]["TransactionState"] == "CompleteAbort"


def test_kafka_transactions_abort_ends_a_hanging_transaction(broker, tool_topic, producers):
    """`kafka-transactions abort --topic T --partition P --start-offset O`, the way out of
    a hanging transaction: the tool finds the producer whose transaction starts at O
    (DescribeProducers) and has the partition leader write an abort marker for it
    (WriteTxnMarkers). The LSO moves past it: read_committed consumers read on, over
    the plain records after it, and describe-producers shows no transaction open."""
    topic = tool_topic
    create(broker, topic, 1)
    hanging = producers("confluent-kafka", broker, txn_name("hanging"),
                        **{"transaction.timeout.ms": 600000})
    assert send_plain(broker, topic, [Msg(None, b"n0")]) == [(0, 0)]
    hanging.begin()
    assert hanging.send(topic, [Msg(None, b"hanging")]) == [(0, 1)]
    assert send_plain(broker, topic, [Msg(None, b"n1")]) == [(0, 2)]
    assert end_offsets(broker, topic, 1, READ_COMMITTED) == {0: 1}
    starts = [r["CurrentTransactionStartOffset"] for r in describe_producers(broker, topic, 0)]
    # The transactional producer; the plain (idempotent) ones have no transaction.
    assert [s for s in starts if s != "None"] == ["1"], starts

    r = ok("kafka-transactions", "--bootstrap-server", broker.bootstrap, "abort",
           "--topic", topic, "--partition", 0, "--start-offset", 1)
    assert r.stdout == "", str(r)
    assert wait_no_open_transaction(broker, topic, 1) == {0: 4}  # the abort marker at 3
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 0, None, b"n0"), (0, 2, None, b"n1")])
    assert {r["CurrentTransactionStartOffset"] for r in describe_producers(broker, topic, 0)} == {"None"}


# ------------------------------------------------------------------ Java producer and consumer

def test_producer_perf_test_in_transactions(broker, tool_topic):
    """kafka-producer-perf-test --transactional-id --transaction-duration-ms 100 (the
    Java producer, committing every 100 ms, ~1 s of records): it reports every record
    sent; every record is visible read_committed, exactly once and in order; the
    partition holds a commit marker per transaction beside the records; the
    transactional id ends CompleteCommit."""
    topic = tool_topic
    create(broker, topic, 1)
    n = 3000
    txn_id = txn_name("perf")
    r = ok("kafka-producer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", topic,
           "--num-records", n, "--payload-monotonic", "--throughput", 3000,
           "--transactional-id", txn_id, "--transaction-duration-ms", 100, timeout=120)
    assert [int(c) for c in PERF_RESULT.findall(r.stdout)] == [n], str(r)

    ends = wait_no_open_transaction(broker, topic, 1)
    records = read_ck(broker, topic, 1, READ_COMMITTED)
    assert [int(v) for v in values(records)] == list(range(n))
    # Throttled to 3000 records/s, the run takes a second or more: several transactions,
    # so several markers.
    assert ends[0] >= n + 2, f"{ends[0]} offsets for {n} records"
    assert describe(broker, txn_id)["TransactionState"] == "CompleteCommit"


def test_console_consumer_read_committed_skips_aborted_records(broker, tool_topic, producers):
    """kafka-console-consumer --isolation-level read_committed (the Java consumer) reads
    committed and plain records and steps over an aborted transaction and the markers;
    read_uncommitted (its default) shows the aborted records too."""
    topic = tool_topic
    create(broker, topic, 1)
    producer = producers("confluent-kafka", broker, txn_name("console"))
    producer.begin()
    producer.send(topic, [Msg(b"k", b"committed-1")])
    producer.commit()
    wait_no_open_transaction(broker, topic, 1)           # marker at 1
    producer.begin()
    producer.send(topic, [Msg(b"k", b"aborted-1"), Msg(b"k", b"aborted-2")])
    producer.abort()
    wait_no_open_transaction(broker, topic, 1)           # marker at 4
    send_plain(broker, topic, [Msg(b"k", b"plain-1")])
    producer.begin()
    producer.send(topic, [Msg(b"k", b"committed-2")])
    producer.commit()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 8}

    assert consume(broker, topic, 3, "--isolation-level", "read_committed") == [
        (0, 0, "k", "committed-1"), (0, 5, "k", "plain-1"), (0, 6, "k", "committed-2")]
    assert consume(broker, topic, 5) == [
        (0, 0, "k", "committed-1"), (0, 2, "k", "aborted-1"), (0, 3, "k", "aborted-2"),
        (0, 5, "k", "plain-1"), (0, 6, "k", "committed-2")]


DUMP_CONTROL = re.compile(r"^\| offset: (\d+) .* endTxnMarker: (\w+) coordinatorEpoch: (\d+)$", re.M)
DUMP_TXN_INDEX = re.compile(r"^version: (\d+) producerId: (\d+) firstOffset: (\d+) lastOffset: (\d+) "
                            r"lastStableOffset: (\d+)$", re.M)


def test_dump_log_shows_transactional_batches_markers_and_aborted_index(broker, tool_topic,
                                                                       producers):
    """kafka-dump-log on the broker's own files after a committed transaction (2 records)
    and an aborted one (1 record): the records' batches are transactional, each followed
    by a control batch of one record (a COMMIT, then an ABORT marker) from the same
    producer id and epoch; the segment's aborted-transaction index (.txnindex) has one
    entry, for the aborted transaction: its first offset, its marker's offset, and the
    LSO after it."""
    topic = tool_topic
    create(broker, topic, 1)
    producer = producers("confluent-kafka", broker, txn_name("dump"))
    producer.begin()
    producer.send(topic, [Msg(b"k", b"c1"), Msg(None, b"c2")])
    producer.commit()
    wait_no_open_transaction(broker, topic, 1)
    producer.begin()
    producer.send(topic, [Msg(None, b"a1")])
    producer.abort()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 5}

    partition_dir = Path(broker.log_dir) / f"{topic}-0"
    r = dump_log("--files", partition_dir / "00000000000000000000.log")
    batches = parse_dump_log(r.stdout)
    assert [(b["baseOffset"], b["lastOffset"], b["count"], b["isTransactional"], b["isControl"])
            for b in batches] == [("0", "1", "2", "true", "false"), ("2", "2", "1", "true", "true"),
                                  ("3", "3", "1", "true", "false"), ("4", "4", "1", "true", "true")]
    assert len({(b["producerId"], b["producerEpoch"]) for b in batches}) == 1, batches
    assert [(b["baseSequence"], b["lastSequence"]) for b in batches] == [
        ("0", "1"), ("-1", "-1"), ("2", "2"), ("-1", "-1")]

    r = dump_log("--files", partition_dir / "00000000000000000000.log", "--print-data-log")
    markers = [(int(o), kind) for o, kind, _ in DUMP_CONTROL.findall(r.stdout)]
    assert markers == [(2, "COMMIT"), (4, "ABORT")], str(r)

    r = dump_log("--files", partition_dir / "00000000000000000000.txnindex")
    entries = [tuple(map(int, e)) for e in DUMP_TXN_INDEX.findall(r.stdout)]
    assert entries == [(0, int(batches[0]["producerId"]), 3, 4, 5)], str(r)


# ------------------------------------------------------------------ across a restart

def wait_serving(broker, topic: str, partitions: int) -> None:
    """After a restart: until the partitions answer ListOffsets again."""
    clients.wait_for_serving(broker, topic, partitions, timeout=60)


@pytest.mark.restart
def test_transactions_across_broker_restart(restartable, tool_topic, producers):
    """Committed, aborted and open transactions, then the broker is stopped (SIGTERM)
    and started again on the same data: read_committed consumers read exactly what they
    read before (the open transaction still holds them at its first record, also over
    the plain record after it), read_uncommitted ones everything; the producer of the
    open transaction, still running, commits it, and its records become visible."""
    broker = restartable
    topic = tool_topic
    create(broker, topic, 1)
    done = producers("confluent-kafka", broker, txn_name("restart-done"))
    done.begin()
    done.send(topic, [Msg(b"k", b"c1"), Msg(b"k", b"c2")])
    done.commit()
    wait_no_open_transaction(broker, topic, 1)                      # marker at 2
    done.begin()
    done.send(topic, [Msg(b"k", b"a1")])
    done.abort()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 5}     # marker at 4
    open_txn_id = txn_name("restart-open")
    pending = producers("confluent-kafka", broker, open_txn_id, **{"transaction.timeout.ms": 120000})
    pending.begin()
    assert pending.send(topic, [Msg(b"k", b"o1")]) == [(0, 5)]
    assert send_plain(broker, topic, [Msg(b"k", b"n1")]) == [(0, 6)]

    committed = [(0, 0, b"k", b"c1"), (0, 1, b"k", b"c2")]
    everything = committed + [(0, 3, b"k", b"a1"), (0, 5, b"k", b"o1"), (0, 6, b"k", b"n1")]

    def check_held():
        assert end_offsets(broker, topic, 1, READ_COMMITTED) == {0: 5}
        assert end_offsets(broker, topic, 1, READ_UNCOMMITTED) == {0: 7}
        assert_both_read(broker, topic, 1, READ_COMMITTED, committed)
        assert_both_read(broker, topic, 1, READ_UNCOMMITTED, everything)

    check_held()
    broker.stop()
    broker.restart()
    wait_serving(broker, topic, 1)
    check_held()
    assert describe(broker, open_txn_id)["TransactionState"] == "Ongoing"

    pending.commit()
    assert wait_no_open_transaction(broker, topic, 1) == {0: 8}     # marker at 7
    assert_both_read(broker, topic, 1, READ_COMMITTED,
                     committed + [(0, 5, b"k", b"o1"), (0, 6, b"k", b"n1")])
    assert describe(broker, open_txn_id)["TransactionState"] == "CompleteCommit"
