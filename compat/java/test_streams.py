"""A Kafka Streams 4.4 application with processing.guarantee=exactly_once_v2, unchanged,
against the broker (the classic group protocol, Streams' default).

The application is streams/EosWordCount.java: it reads (record id, word) records, re-keys
them by word (a repartition topic), counts each word in a RocksDB store (logged to a
changelog topic) and writes (word, count so far) to an output topic, one output per
input (the store's cache is off). So a word that occurs n times in the input must have
exactly the outputs 1, 2, ..., n, in order, in the committed output (read_committed);
anything else is a lost or double-counted record.

- a clean run: the committed output is exactly that, both clients read it so; the app
  made its internal topics (repartition: cleanup.policy=delete, changelog: compact) with
  the input's partition count; the group (the application id) is a classic group of
  the "stream" assignor, and its committed offsets are the input's end offsets;
- kill -9 of the application in the middle of a transaction, then a restart with the
  same application id and state directory: the open transaction is left in the output
  (read_committed readers stop before it), the restarted app fences and aborts it (the
  same transactional ids: InitProducerId gives the same producer ids, a higher epoch),
  restores its store from the changelog, and the committed
  output is still exactly once; the aborted records stay in the log, seen by
  read_uncommitted readers only.

What the broker must do: everything test_transactions.py needs (InitProducerId fencing,
AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit with the group's generation and
member id, EndTxn, markers, the LSO, aborted transactions in Fetch), plus what Streams
asks of it: CreateTopics with configs for its internal topics, DescribeTopics and
DescribeConfigs to validate them, classic JoinGroup/SyncGroup with its own assignor and
user data, OffsetFetch with require_stable, DeleteRecords on the repartition topic.

The app is compiled once per source and jar set into compat/.cache/streams-app/ with the
JDK's own javac module (`java -m jdk.compiler/...`, no build tool, no JDK binary beyond
`java`), and runs as `java -cp '<classes>:<jars>' EosWordCount ...`; its log (INFO) is
in the test's tmp_path (streams-*.log), its stdout tells its state changes.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource
from kafka import TopicPartition as KpTopicPartition

import clients
import kafka_tools
from apache_kafka import die_with_parent
from clients import Msg, wait_until
from test_transactions import (READ_COMMITTED, READ_UNCOMMITTED, end_offsets, read_ck, read_kp,
                               wait_no_open_transaction)

STREAMS_DIR = Path(__file__).resolve().parent / "streams"
SOURCE = STREAMS_DIR / "EosWordCount.java"
MAIN_CLASS = "EosWordCount"
LOG4J2_CONFIG = STREAMS_DIR / "log4j2.properties"
CLASSES_ROOT = kafka_tools.JARS_DIR.parent / "streams-app"

# Small, for two cores shared with the broker; C1 alone: a run is a few seconds.
JVM_OPTS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"]

# Streams configs every run gets beyond the app's own (exactly_once_v2, commit every
# 100 ms, replication factor 1, no store cache): two stream threads, so two consumers of
# the group and two transactional producers; a dead member leaves the group after 6 s
# (the broker's minimum) instead of Streams' 45 s default, so a restart is quick; the
# repartition topic is purged (DeleteRecords up to what was processed) every half second
# instead of every 30 s.
STREAMS_CONFIG = {
    "num.stream.threads": "2",
    "consumer.session.timeout.ms": "6000",
    "consumer.heartbeat.interval.ms": "1000",
    "repartition.purge.interval.ms": "500",
}

PRODUCER_ID = re.compile(r"transactionalId=([^\]\s]+)\] ProducerId set to (\d+) with epoch (\d+)")

INPUT_PARTITIONS = 3
OUTPUT_PARTITIONS = 2
WORDS = [f"w{i:02d}" for i in range(13)]
RUN_TIMEOUT = 60.0  # seconds, for the app to produce the whole output: a bound, not a measure


# ------------------------------------------------------------------ the app

@pytest.fixture(scope="session")
def app_classes() -> Path:
    """EosWordCount compiled against the jars, once per (source, jar set)."""
    return kafka_tools.compile_java(SOURCE, CLASSES_ROOT)


class StreamsApp:
    """One run of EosWordCount (a JVM in its own process group). Its stdout lines are
    collected by a thread; its log goes to `log_file`, its stderr beside it."""

    def __init__(self, classes: Path, broker, app_id: str, topic_in: str, topic_out: str,
                 state_dir: Path, log_file: Path, delay_ms: int = 0, **config: str):
        self.log_file = log_file
        self.stderr_file = log_file.with_suffix(".stderr")
        self.lines: list[str] = []
        settings = {**STREAMS_CONFIG, **config}
        self.command = ["java", *JVM_OPTS, f"-Dstreams.log.file={log_file}",
                        "-cp", os.pathsep.join([str(classes), str(kafka_tools.JARS_DIR / "*")]),
                        MAIN_CLASS, broker.bootstrap, app_id, topic_in, topic_out, str(state_dir),
                        str(delay_ms), *(f"{k}={v}" for k, v in settings.items())]
        with open(self.stderr_file, "ab") as err:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True, start_new_session=True,
                                         preexec_fn=die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def states(self) -> list[str]:
        """The states it went to, in order (from 'STATE A -> B')."""
        return [line.rsplit(" ", 1)[1] for line in self.lines if line.startswith("STATE ")]

    def summary(self) -> str:
        def tail(path: Path, n: int) -> str:
            try:
                return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
            except OSError:
                return "(none)"
        return (f"exit {self.proc.poll()}\n--- stdout\n" + "\n".join(self.lines)
                + f"\n--- stderr ({self.stderr_file})\n{tail(self.stderr_file, 20)}"
                + f"\n--- log ({self.log_file}), last lines\n{tail(self.log_file, 30)}")

    def producer_ids(self) -> dict[str, tuple[int, int]]:
        """transactional.id -> (producer id, epoch), as InitProducerId last gave them
        (the Java producer's INFO line 'ProducerId set to P with epoch E')."""
        found = {}
        for m in PRODUCER_ID.finditer(self.log_file.read_text(errors="replace")):
            found[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return found

    def check_alive(self) -> None:
        assert self.proc.poll() is None, f"the Streams app exited:\n{self.summary()}"
        assert not any(line.startswith("UNCAUGHT") for line in self.lines), (
            f"the Streams app's thread died:\n{self.summary()}")

    def wait_running(self, timeout: float = RUN_TIMEOUT) -> None:
        def running():
            self.check_alive()
            return self.states()[-1:] == ["RUNNING"]
        try:
            wait_until(running, "the Streams app to be RUNNING", timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.summary()}") from None

    def stop(self, timeout: float = 45.0) -> int:
        """Closes its stdin: KafkaStreams.close() (commits, ends its transactions), exit."""
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the Streams app did not close within {timeout}s:\n{self.summary()}")
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """kill -9 (its process group: the JVM and nothing else)."""
        kafka_tools.kill(self.proc)
        self._reader.join(timeout=5)


@pytest.fixture
def streams_apps(app_classes, tmp_path):
    """start(...) runs an EosWordCount; every one still running at the end is killed."""
    started: list[StreamsApp] = []

    def start(broker, app_id, topic_in, topic_out, delay_ms=0, **config) -> StreamsApp:
        log = tmp_path / f"streams-{len(started) + 1}.log"
        app = StreamsApp(app_classes, broker, app_id, topic_in, topic_out, tmp_path / "state",
                         log, delay_ms, **config)
        started.append(app)
        return app

    yield start
    for app in started:
        app.kill()


# ------------------------------------------------------------------ input and output

def produce_words(broker, topic: str, n: int, seed: int) -> Counter:
    """n records (key r<i>, value a word) with confluent-kafka; returns the word counts."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(n)]
    placed = clients.send_ck(broker, topic, [Msg(f"r{i}".encode(), w.encode())
                                             for i, w in enumerate(words)])
    assert len(placed) == n
    return Counter(words)


class CommittedOutput:
    """A read_committed kafka-python consumer following the output topic from its start."""

    def __init__(self, broker, topic: str, partitions: int):
        self.consumer = clients.kp_consumer(broker, isolation_level=READ_COMMITTED)
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.count = 0

    def wait_for(self, n: int, app: StreamsApp, timeout: float = RUN_TIMEOUT) -> None:
        """Until n records were read (the app must stay up meanwhile)."""
        deadline = time.monotonic() + timeout
        while self.count < n:
            app.check_alive()
            assert time.monotonic() < deadline, (
                f"{self.count} of {n} output records committed after {timeout}s:\n{app.summary()}")
            self.count += sum(len(rs) for rs in self.consumer.poll(timeout_ms=200).values())

    def close(self) -> None:
        self.consumer.close()


class EndOffsets:
    """The last stable offsets and high watermarks of a topic (kafka-python consumers kept
    open, to ask often)."""

    def __init__(self, broker, topic: str, partitions: int):
        self.tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        self.committed = clients.kp_consumer(broker, isolation_level=READ_COMMITTED)
        self.uncommitted = clients.kp_consumer(broker, isolation_level=READ_UNCOMMITTED)

    def open_transaction(self) -> bool:
        """Some partition's LSO is below its high watermark."""
        lso = self.committed.end_offsets(self.tps)
        hwm = self.uncommitted.end_offsets(self.tps)
        return any(lso[tp] < hwm[tp] for tp in self.tps)

    def close(self) -> None:
        self.committed.close()
        self.uncommitted.close()


def outputs_by_word(records) -> dict[str, list[int]]:
    """word -> its counts in the order of the output (each word is in one partition)."""
    seq: dict[str, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        seq[r.key.decode()].append(int(r.value))
    return dict(seq)


def assert_exactly_once(records, counts: Counter, reader: str) -> None:
    """Each word's outputs are 1..n for its n occurrences in the input, nothing else."""
    got = outputs_by_word(records)
    want = {w: list(range(1, n + 1)) for w, n in counts.items()}
    if got != want:
        wrong = {w: (f"expected 1..{len(want.get(w, []))}, got {len(got.get(w, []))} outputs: "
                     f"{got.get(w, [])[:12]}{'...' if len(got.get(w, [])) > 12 else ''}")
                 for w in sorted(set(got) | set(want)) if got.get(w) != want.get(w)}
        raise AssertionError(f"{reader}: committed output not exactly once ({len(records)} records "
                             f"for {sum(counts.values())} inputs): {wrong}")


def assert_committed_output(broker, topic: str, counts: Counter) -> list:
    """Both clients, read_committed, read exactly the expected output. Returns kafka-python's."""
    wait_no_open_transaction(broker, topic, OUTPUT_PARTITIONS)
    records = read_kp(broker, topic, OUTPUT_PARTITIONS, READ_COMMITTED)
    assert_exactly_once(records, counts, "kafka-python read_committed")
    assert_exactly_once(read_ck(broker, topic, OUTPUT_PARTITIONS, READ_COMMITTED), counts,
                        "confluent-kafka read_committed")
    return records


def topic_configs(broker, topic: str) -> dict[str, str]:
    admin = clients.ck_admin(broker)  # kept referenced until the answer is in
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return {name: entry.value for name, entry in future.result(timeout=20).items()}


def partition_count(broker, topic: str) -> int:
    metadata = clients.ck_admin(broker).list_topics(topic, timeout=20)
    t = metadata.topics[topic]
    assert t.error is None, f"{topic}: {t.error}"
    return len(t.partitions)


def wait_input_offsets_committed(broker, app_id: str, topic_in: str) -> None:
    """The group's committed offsets for the input are its end offsets."""
    want = {(topic_in, p): o for p, o in clients.end_offsets(broker, topic_in, INPUT_PARTITIONS).items()}
    last = {}

    def done():
        offsets = clients.group_offsets(broker, app_id)
        last["seen"] = {tp: o for tp, (o, _) in offsets.items() if tp[0] == topic_in}
        return last["seen"] == want

    try:
        wait_until(done, f"group {app_id} to commit the input's end offsets {want}", timeout=20)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {last.get('seen')}") from None


def wait_purged(broker, topic: str, partitions: int) -> dict[int, int]:
    """Until every record of the topic is deleted (DeleteRecords): each partition's log
    start offset is past 0 and nothing is left to read from it. Returns the start offsets."""
    last = {}

    def purged():
        consumer = clients.kp_consumer(broker)
        try:
            tps = [KpTopicPartition(topic, p) for p in range(partitions)]
            last["start"] = {tp.partition: o for tp, o in consumer.beginning_offsets(tps).items()}
        finally:
            consumer.close()
        if not all(last["start"].values()):
            return None
        last["left"] = len(read_kp(broker, topic, partitions, READ_UNCOMMITTED))
        return last["start"] if last["left"] == 0 else None

    try:
        return wait_until(purged, f"the records of {topic} to be purged", timeout=20, interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {last}") from None


def setup_topics(broker, name: str) -> tuple[str, str, str]:
    app_id = name
    topic_in, topic_out = f"{name}-in", f"{name}-out"
    clients.create_topic(broker, topic_in, INPUT_PARTITIONS)
    clients.create_topic(broker, topic_out, OUTPUT_PARTITIONS)
    return app_id, topic_in, topic_out


# ------------------------------------------------------------------ cases

def test_streams_exactly_once_word_count(broker, tool_topic, streams_apps):
    """A clean run over 3000 records: every word counted once per occurrence in the
    committed output, read by both clients; the internal topics as Streams makes them;
    the group a Stable classic group of the "stream" assignor with the app's two stream
    threads, its input offsets committed with the transactions; the repartition topic
    purged of what was processed (DeleteRecords); the app closes cleanly."""
    app_id, topic_in, topic_out = setup_topics(broker, tool_topic)
    n = 3000
    counts = produce_words(broker, topic_in, n, seed=1)

    started = time.monotonic()
    app = streams_apps(broker, app_id, topic_in, topic_out)
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    try:
        app.wait_running()
        output.wait_for(n, app)
    finally:
        output.close()
    took = time.monotonic() - started

    group = clients.describe_group(broker, app_id)
    assert (group["group_state"], group["protocol_type"], group["protocol_data"],
            len(group["members"])) == ("Stable", "consumer", "stream", 2), group
    wait_input_offsets_committed(broker, app_id, topic_in)
    repartition, changelog = f"{app_id}-by-word-repartition", f"{app_id}-counts-changelog"
    # Streams deletes the repartition records it has processed and committed.
    wait_purged(broker, repartition, INPUT_PARTITIONS)

    assert app.stop() == 0, app.summary()
    # (the close thread's last state change may print after the app's CLOSED line)
    assert "CLOSED true" in app.lines, app.summary()
    assert app.states()[-2:] == ["PENDING_SHUTDOWN", "NOT_RUNNING"], app.summary()
    print(f"\n{n} records counted exactly once in {took:.1f}s (start to complete output)")

    records = assert_committed_output(broker, topic_out, counts)
    assert len(records) == n

    admin = clients.kp_admin(broker)
    try:
        assert {repartition, changelog} <= set(admin.list_topics())
    finally:
        admin.close()
    assert partition_count(broker, repartition) == INPUT_PARTITIONS
    assert partition_count(broker, changelog) == INPUT_PARTITIONS
    assert topic_configs(broker, changelog)["cleanup.policy"] == "compact"
    assert topic_configs(broker, repartition)["cleanup.policy"] == "delete"
    # The changelog holds each count the store took, in transactions of the same commits.
    wait_no_open_transaction(broker, changelog, INPUT_PARTITIONS)
    assert len(read_kp(broker, changelog, INPUT_PARTITIONS, READ_COMMITTED)) == n


def test_streams_exactly_once_across_kill_9_of_the_app(broker, tool_topic, streams_apps):
    """The app, slowed to ~10 ms per input record and committing every second, is killed
    (SIGKILL) once a quarter of the output is committed, at a moment its open
    transaction's records are in the output past the last stable offset. Started again
    (same application id and state directory), it finishes the input: the committed
    output is exactly once, and the killed transaction's records are in the log,
    visible read_uncommitted only."""
    app_id, topic_in, topic_out = setup_topics(broker, tool_topic)
    n = 1200
    counts = produce_words(broker, topic_in, n, seed=2)
    # 10 ms per record, at most 50 records a poll (so that a busy thread still answers
    # rebalances within a second), a transaction a second.
    slow = {"delay_ms": 10, "commit.interval.ms": "1000", "main.consumer.max.poll.records": "50"}

    started = time.monotonic()
    first = streams_apps(broker, app_id, topic_in, topic_out, **slow)
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    ends = EndOffsets(broker, topic_out, OUTPUT_PARTITIONS)
    try:
        first.wait_running()
        output.wait_for(n // 4, first)
        # The moment the output holds records of an open transaction: kill -9 there.
        wait_until(lambda: first.check_alive() or ends.open_transaction(),
                   "records of an open transaction in the output", timeout=10, interval=0.05)
        first.kill()
    finally:
        output.close()
        ends.close()

    lso = end_offsets(broker, topic_out, OUTPUT_PARTITIONS, READ_COMMITTED)
    hwm = end_offsets(broker, topic_out, OUTPUT_PARTITIONS, READ_UNCOMMITTED)
    assert any(lso[p] < hwm[p] for p in lso), (
        f"no transaction open in the output when the app was killed: LSO {lso}, HWM {hwm}")
    committed_at_kill = sum(lso.values())
    assert committed_at_kill < n

    second = streams_apps(broker, app_id, topic_in, topic_out, **slow)
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    try:
        output.wait_for(n, second)
    finally:
        output.close()
    took = time.monotonic() - started
    assert second.stop() == 0, second.summary()
    assert "CLOSED true" in second.lines, second.summary()
    print(f"\nkilled with <= {committed_at_kill} offsets of output committed; "
          f"{n} records counted exactly once in {took:.1f}s (first start to complete output)")

    # The same transactional ids (application id, process id from the state directory,
    # thread index) came back: the same producer ids, fenced with a higher epoch.
    before, after = first.producer_ids(), second.producer_ids()
    assert len(before) == 2 and set(after) == set(before), (before, after)
    assert all(after[t][0] == before[t][0] and after[t][1] > before[t][1] for t in before), (
        before, after)

    assert_committed_output(broker, topic_out, counts)
    everything = read_kp(broker, topic_out, OUTPUT_PARTITIONS, READ_UNCOMMITTED)
    assert len(everything) > n, "the killed transaction's records are not in the log"
    wait_input_offsets_committed(broker, app_id, topic_in)
