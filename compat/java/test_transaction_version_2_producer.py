"""Kafka 4.4's Java producer speaks transaction version 2 (KIP-890 part 2) when the
cluster finalizes transaction.version 2 (ApiVersions): it adds partitions by producing
(Produce v12+, no AddPartitionsToTxn), commits offsets without AddOffsetsToTxn
(TxnOffsetCommit v5+), and ends every transaction with EndTxn v5, which bumps its epoch.

The producer is transactions/TxnSteps.java (kafka-clients 4.4, unchanged), driven step by
step; its "STATE" lines are what the client itself holds (read from its
TransactionManager): whether it uses transaction version 2, its producer id and epoch.

- every commit or abort moves the epoch on by one, in the client and at the coordinator
  (kafka-transactions describe), and the markers carry it (describe-producers);
  read_committed readers see exactly the committed records, aborted ones only
  read_uncommitted;
- a second producer with the same transactional.id fences the first: the zombie's
  produce and commit fail with InvalidProducerEpochException, then ProducerFenced;
- offsets sent to the transaction count with its commit only;
- a transaction past its timeout is aborted by the broker with a new epoch; the client
  learns it (InvalidProducerEpochException), aborts, and goes on with the new epoch;
- a record for a partition that does not exist never reaches a broker (the Java
  producer waits for it in the metadata, librdkafka refuses it at once): the
  transaction is aborted, and the producer, not fenced, commits the next one.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import confluent_kafka
import pytest

import clients
import kafka_tools
from apache_kafka import die_with_parent
from test_tools import create
from test_transactions import (READ_COMMITTED, READ_UNCOMMITTED, assert_both_read, read_kp,
                               txn_name, values, wait_no_open_transaction)
from test_transactions_tools import describe, describe_producers

SOURCE = Path(__file__).resolve().parent / "transactions" / "TxnSteps.java"
CLASSES_ROOT = kafka_tools.JARS_DIR.parent / "java-apps"
JVM_OPTS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={kafka_tools.LOG4J2_CONFIG}"]
STATE = re.compile(r"STATE tv2=(\w+) producerId=(-?\d+) epoch=(-?\d+)")
RUN_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def steps_classes() -> Path:
    return kafka_tools.compile_java(SOURCE, CLASSES_ROOT)


class Steps:
    """One TxnSteps run (a JVM): its step lines, in order."""

    def __init__(self, classes: Path, broker, txn_id: str, stderr: Path, *steps: str):
        command = ["java", *JVM_OPTS, "-cp", os.pathsep.join([str(classes), str(kafka_tools.JARS_DIR / "*")]),
                   "TxnSteps", broker.bootstrap, txn_id, *steps]
        self.stderr = stderr
        with open(stderr, "ab") as err:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True, start_new_session=True,
                                         preexec_fn=die_with_parent)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = RUN_TIMEOUT) -> None:
        def printed():
            assert self.proc.poll() is None, f"TxnSteps exited: {self.lines}"
            return any(line.startswith(prefix) for line in self.lines)
        clients.wait_until(printed, f"TxnSteps to print {prefix!r}", timeout)

    def go_on(self) -> None:
        """Ends a `wait` step."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = RUN_TIMEOUT) -> list[str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kafka_tools.kill(self.proc)
            raise AssertionError(f"TxnSteps did not finish in {timeout}s: {self.lines}")
        self._reader.join(timeout=5)
        assert self.lines[-1:] == ["EXIT"], f"{self.lines}\n(stderr in {self.stderr})"
        return self.outcomes()

    def outcomes(self) -> list[str]:
        """Each step's outcome: "OK step" (its detail dropped) or "ERROR step Exception"."""
        return [" ".join(line.split(" ")[:3 if line.startswith("ERROR") else 2])
                for line in self.lines if line.startswith(("OK", "ERROR"))]

    def states(self) -> list[tuple[bool, int, int]]:
        return [(m.group(1) == "true", int(m.group(2)), int(m.group(3)))
                for m in map(STATE.match, self.lines) if m]

    def offsets(self) -> list[str]:
        """partition@offset of each acknowledged send."""
        return [line.split(" ")[2] for line in self.lines if line.startswith("OK send:")]


@pytest.fixture
def steps(steps_classes, tmp_path):
    started: list[Steps] = []

    def run(broker, txn_id: str, *args: str) -> Steps:
        s = Steps(steps_classes, broker, txn_id, tmp_path / f"txn-steps-{len(started) + 1}.stderr", *args)
        started.append(s)
        return s

    yield run
    for s in started:
        if s.proc.poll() is None:
            kafka_tools.kill(s.proc)


def test_java_producer_bumps_its_epoch_at_every_transaction_end(broker, tool_topic, steps):
    topic = tool_topic
    create(broker, topic, 2)
    txn_id = txn_name("tv2-epochs")
    run = steps(broker, txn_id, "init", "state",
                "begin", f"send:{topic}:0:a", f"send:{topic}:1:b", "commit", "state",
                "begin", f"send:{topic}:0:c", "abort", "state",
                "begin", f"send:{topic}:1:d", "commit", "state",
                # Nothing sent: the client ends nothing, the epoch stays.
                "begin", "commit", "state")
    outcomes = run.finish()
    assert not [o for o in outcomes if o.startswith("ERROR")], run.lines
    states = run.states()
    assert all(tv2 for tv2, _, _ in states), f"the producer did not use transaction version 2: {states}"
    (pid,) = {p for _, p, _ in states}
    first = states[0][2]
    assert [e - first for _, _, e in states] == [0, 1, 2, 3, 3]
    # a, its commit marker; c, its abort marker. b, commit marker, d, commit marker.
    assert run.offsets() == ["0@0", "1@0", "0@2", "1@2"]

    described = describe(broker, txn_id)
    assert (described["ProducerId"], described["ProducerEpoch"], described["TransactionState"]) == (
        str(pid), str(first + 3), "CompleteCommit")
    # Each partition's last marker carries the epoch its transaction ended with.
    for partition, epoch in ((0, first + 2), (1, first + 3)):
        mine = [r for r in describe_producers(broker, topic, partition) if r["ProducerId"] == str(pid)]
        assert [(r["ProducerEpoch"], r["CurrentTransactionStartOffset"]) for r in mine] == [
            (str(epoch), "None")], mine

    assert wait_no_open_transaction(broker, topic, 2) == {0: 4, 1: 4}
    assert_both_read(broker, topic, 2, READ_COMMITTED, [(0, 0, None, b"a"), (1, 0, None, b"b"),
                                                        (1, 2, None, b"d")])
    assert values(read_kp(broker, topic, 2, READ_UNCOMMITTED)) == [b"a", b"c", b"b", b"d"]


def test_zombie_java_producer_is_fenced(broker, tool_topic, steps):
    topic = tool_topic
    create(broker, topic, 1)
    txn_id = txn_name("tv2-zombie")
    zombie = steps(broker, txn_id, "init", "state", "begin", f"send:{topic}:0:z1", "wait",
                   f"send:{topic}:0:z2", "commit", "abort", "begin", "state")
    zombie.wait_for(f"OK send:{topic}:0:z1")  # then it waits at "wait"
    successor = steps(broker, txn_id, "init", "state", "begin", f"send:{topic}:0:n1", "commit", "state")
    assert successor.finish() == ["OK init", "OK state", "OK begin", f"OK send:{topic}:0:n1",
                                  "OK commit", "OK state"], successor.lines
    zombie.go_on()
    assert zombie.finish() == [
        "OK init", "OK state", "OK begin", f"OK send:{topic}:0:z1", "OK wait",
        f"ERROR send:{topic}:0:z2 InvalidProducerEpochException",
        "ERROR commit InvalidProducerEpochException",
        "ERROR abort ProducerFencedException", "ERROR begin ProducerFencedException", "OK state"], zombie.lines
    (z_tv2, z_pid, z_epoch), _ = zombie.states()
    (s_tv2, s_pid, s_epoch), (_, _, s_after) = successor.states()
    assert z_tv2 and s_tv2 and z_pid == s_pid
    # The zombie's transaction was aborted with one new epoch, the successor got the next.
    assert (s_epoch, s_after) == (z_epoch + 2, z_epoch + 3)
    # z1, the abort marker, n1, its commit marker.
    assert wait_no_open_transaction(broker, topic, 1) == {0: 4}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 2, None, b"n1")])
    assert values(read_kp(broker, topic, 1, READ_UNCOMMITTED)) == [b"z1", b"n1"]


def test_offsets_sent_to_the_transaction_count_with_its_commit(broker, tool_topic, steps):
    topic = tool_topic
    create(broker, topic, 2)
    group = clients.unique_name("tv2-group")
    run = steps(broker, txn_name("tv2-offsets"), "init",
                "begin", f"send:{topic}:0:x", f"offsets:{group}:{topic}:0:5", "commit",
                "begin", f"offsets:{group}:{topic}:1:7", "abort",
                "begin", f"offsets:{group}:{topic}:1:9", f"send:{topic}:1:y", "commit", "state")
    assert not [o for o in run.finish() if o.startswith("ERROR")], run.lines
    assert run.states()[0][0], "transaction version 2"
    committed = {k: v[0] for k, v in clients.group_offsets(broker, group).items()}
    assert committed == {(topic, 0): 5, (topic, 1): 9}


def test_timed_out_transaction_is_aborted_and_the_producer_goes_on(broker, tool_topic, steps):
    """transaction.timeout.ms=3000, then 16 s idle (the broker looks for timed-out
    transactions every 10 s): the broker aborted the transaction with a new epoch. The
    client's next produce and its commit fail (InvalidProducerEpochException: abortable
    with transaction version 2); its abort is taken as the retry of the broker's and
    answers the new epoch; the next transaction commits."""
    topic = tool_topic
    create(broker, topic, 1)
    run = steps(broker, txn_name("tv2-timeout"), "--transaction.timeout.ms=3000", "init", "state",
                "begin", f"send:{topic}:0:a", "sleep:16000", f"send:{topic}:0:b", "commit", "abort",
                "state", "begin", f"send:{topic}:0:c", "commit", "state")
    assert run.finish() == [
        "OK init", "OK state", "OK begin", f"OK send:{topic}:0:a", "OK sleep:16000",
        f"ERROR send:{topic}:0:b InvalidProducerEpochException", "ERROR commit InvalidProducerEpochException",
        "OK abort", "OK state", "OK begin", f"OK send:{topic}:0:c", "OK commit", "OK state"], run.lines
    assert [e for _, _, e in run.states()] == [0, 1, 2]
    assert wait_no_open_transaction(broker, topic, 1) == {0: 4}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 2, None, b"c")])


def test_record_for_a_partition_that_does_not_exist(broker, tool_topic, steps):
    """Partition 5 of a topic of 1, in a transaction that already wrote to partition 0.
    The Java producer waits for partition 5 in the metadata (max.block.ms, 16 s here)
    and fails the send (TimeoutException); meanwhile the transaction passed its timeout
    (3 s here; the defaults are 60 s both) and the broker aborted it with a new epoch.
    The commit fails (abortable); the abort is taken as the retry of the broker's
    (transaction version 2) and the producer, not fenced, commits its next transaction.
    (Before transaction version 2 Sluice answered that abort PRODUCER_FENCED: a
    version 1 client's epoch must be the current one.) librdkafka refuses such a
    record at once (_UNKNOWN_PARTITION): no broker hears of it, nothing was added, it
    aborts without EndTxn and commits its next transaction."""
    topic = tool_topic
    create(broker, topic, 1)
    run = steps(broker, txn_name("tv2-missing"), "--max.block.ms=16000", "--transaction.timeout.ms=3000",
                "init", "state",
                "begin", f"send:{topic}:0:a", f"send:{topic}:5:lost", "commit", "abort", "state",
                "begin", f"send:{topic}:0:b", "commit", "state")
    outcomes = run.finish()
    assert outcomes == [
        "OK init", "OK state", "OK begin", f"OK send:{topic}:0:a",
        f"ERROR send:{topic}:5:lost TimeoutException", "ERROR commit KafkaException/TransactionAbortableException",
        "OK abort", "OK state", "OK begin", f"OK send:{topic}:0:b", "OK commit", "OK state"], run.lines
    assert [e for _, _, e in run.states()] == [0, 1, 2]

    producer = clients.ck_producer(broker, **{"transactional.id": txn_name("tv2-missing-ck")})
    try:
        producer.init_transactions(30)
        producer.begin_transaction()
        with pytest.raises(confluent_kafka.KafkaException) as raised:
            producer.produce(topic, value=b"lost-ck", partition=5)
            producer.flush(30)
            producer.commit_transaction(30)
        assert not raised.value.args[0].fatal(), raised.value
        producer.abort_transaction(30)
        producer.begin_transaction()
        producer.produce(topic, value=b"c", partition=0)
        producer.commit_transaction(30)
    finally:
        producer.flush(5)
    assert wait_no_open_transaction(broker, topic, 1) == {0: 6}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 2, None, b"b"), (0, 4, None, b"c")])


@pytest.mark.crash
def test_epochs_survive_kill_9_of_the_broker(own_broker, tool_topic, steps):
    """Two transactions, kill -9 of the broker and a restart on the same data, then the
    same producer (still running) commits a third: the coordinator kept the epochs of
    transaction version 2 in __transaction_state, so the producer's epoch is current
    and moves on. Sluice only (own_broker); Kafka passes it too
    (COMPAT_KAFKA_CRASH_TESTS=1 -m crash)."""
    broker, topic = own_broker, tool_topic
    create(broker, topic, 1)
    txn_id = txn_name("tv2-crash")
    run = steps(broker, txn_id, "init", "state",
                "begin", f"send:{topic}:0:a", "commit", "begin", f"send:{topic}:0:b", "commit", "state",
                "wait", "begin", f"send:{topic}:0:c", "commit", "state")
    run.wait_for("STATE", timeout=RUN_TIMEOUT)
    clients.wait_until(lambda: len(run.states()) == 2, "two transactions committed")
    assert describe(broker, txn_id)["ProducerEpoch"] == str(run.states()[0][2] + 2)
    broker.kill()
    broker.restart()
    clients.wait_for_serving(broker, topic, 1, timeout=60)
    assert describe(broker, txn_id)["ProducerEpoch"] == str(run.states()[0][2] + 2)
    run.go_on()
    assert not [o for o in run.finish() if o.startswith("ERROR")], run.lines
    first = run.states()[0][2]
    assert [e - first for _, _, e in run.states()] == [0, 2, 3]
    assert wait_no_open_transaction(broker, topic, 1) == {0: 6}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 0, None, b"a"), (0, 2, None, b"b"),
                                                        (0, 4, None, b"c")])
