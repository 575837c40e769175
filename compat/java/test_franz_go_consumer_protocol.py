"""franz-go (github.com/twmb/franz-go, Go) consumer groups on the KIP-848 protocol.

franz-go 1.22 speaks KIP-848 when asked with kgo.ServerSideBalancer() (with a sticky or
range balancer; the default stays the classic protocol): ConsumerGroupHeartbeat v1+,
member ids it makes itself, the coordinator assigning with "uniform" (sticky) or
"range". Each member is compat/go/groupmember, a franz-go program in its own OS
process that reports assignments, revocations, records and commits as JSON lines (the
events of compat/python/group_worker.py); kafka-consumer-groups describes the group.

The same checks as test_consumer_protocol.py's for librdkafka: one member takes all six
partitions, a second joins and the first gives up exactly the partitions the second
takes while it goes on consuming the rest, and with commits every record is consumed
once. The expectations are Apache Kafka 4.4's (COMPAT_TARGET=kafka runs the same cases
against it).

Not covered: static membership. franz-go 1.22.3 leaves a KIP-848 group as a static member
with MemberEpoch -2 but without the InstanceId, which Kafka 4.4 (and Sluice alike) refuse
with INVALID_REQUEST "InstanceId can't be null.": the member stays until its session times
out, and its restart gets UNRELEASED_INSTANCE_ID meanwhile.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import clients
import kafka_tools
from brokers import die_with_parent
from clients import wait_until
from kafka_tools import parse_table

pytestmark = pytest.mark.skipif(not kafka_tools.jars_present(), reason="Kafka jars not fetched")

GO_DIR = Path(__file__).resolve().parent.parent / "go"
MEMBER_BIN = GO_DIR.parent / ".cache" / "go-bin" / "groupmember"

# A member sees its new assignment at its next heartbeat (5 s apart by default).
SETTLE = 40.0


@pytest.fixture(scope="session")
def groupmember_bin() -> Path:
    """compat/go/groupmember, built by compat/setup; built again here if sources changed."""
    r = subprocess.run([str(GO_DIR / "build.sh")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"compat/go/build.sh failed:\n{r.stdout}\n{r.stderr}"
    assert MEMBER_BIN.is_file()
    return MEMBER_BIN


class FranzMember(clients.GroupMember):
    """One franz-go member (compat/go/groupmember) in its own process; what it reported
    is read as clients.GroupMember reads group_worker.py's events (every event also has
    "t", the member's wall clock in ms)."""

    def __init__(self, binary: Path, broker, group: str, topics: list[str], client_id: str,
                 log_dir: Path, **config):
        self.client, self.group, self.client_id = "franz-go", group, client_id
        self.config = {"bootstrap": broker.bootstrap, "group": group, "topics": list(topics),
                       "client_id": client_id,
                       "log_level": os.environ.get("COMPAT_FRANZ_GO_LOG", "info"), **config}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.stderr_path = Path(log_dir) / f"{client_id}.stderr"
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen([str(binary), json.dumps(self.config)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, preexec_fn=die_with_parent)

        def read():
            for line in self.proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"ev": "garbage", "line": line.decode(errors="replace")}
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
            with self._cond:
                self.events.append({"ev": "exited"})
                self._cond.notify_all()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def partitions(self, topic: str | None = None) -> set[int]:
        return {p for t, p in self.assignment if topic is None or t == topic}

    @property
    def requests(self) -> dict[str, int]:
        """Requests it wrote to the brokers, by API name (reported when it closes)."""
        (event,) = self.of("requests")
        return event["counts"]


@pytest.fixture
def franz(request, groupmember_bin, tmp_path):
    """Starts franz-go members for one test: franz(broker, group, topics, client_id, **config).
    Whatever is still running at the end is killed."""
    started: list[FranzMember] = []

    def start(broker, group, topics, client_id, **config) -> FranzMember:
        member = FranzMember(groupmember_bin, broker, group, topics, client_id, tmp_path, **config)
        started.append(member)
        return member.wait_started()

    yield start
    for member in started:
        try:
            member.kill()
        except Exception:  # noqa: BLE001  (best effort: the rest must still go)
            pass


def groups_tool(broker, *args) -> kafka_tools.Result:
    return kafka_tools.run("kafka-consumer-groups", "--bootstrap-server", broker.bootstrap, *args)


def stable_members(broker, group: str, count: int):
    """kafka-consumer-groups --members --verbose once every member's epoch has caught up
    with its target (the rows), or None."""
    r = groups_tool(broker, "--describe", "--group", group, "--members", "--verbose")
    rows = parse_table(r.stdout) if r.code == 0 else []
    if len(rows) == count and all(row["CURRENT-EPOCH"] == row["TARGET-EPOCH"] for row in rows):
        return rows
    return None


def assignment_cell(topic: str, partitions: set[int]) -> str:
    """How kafka-consumer-groups --members --verbose prints one topic's partitions."""
    return f"{topic}:{','.join(str(p) for p in sorted(partitions))}" if partitions else "-"


class Producer:
    """Keeps producing while a rebalance happens: a record to every partition every 50 ms
    (kafka-python, acks=all), values 'during-p<p>-<i>'. stop() returns the values sent."""

    def __init__(self, broker, topic: str, partitions: int):
        self.values: list[str] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._producer = clients.kp_producer(broker, acks="all", linger_ms=0)

        def run():
            i = 0
            try:
                while not self._stop.is_set():
                    futures = []
                    for p in range(partitions):
                        value = f"during-p{p}-{i}"
                        futures.append(self._producer.send(topic, value=value.encode(), partition=p))
                        self.values.append(value)
                    for f in futures:
                        f.get(timeout=clients.READ_TIMEOUT)
                    i += 1
                    self._stop.wait(0.05)
            except BaseException as e:  # noqa: BLE001  (reported by stop())
                self.error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=clients.READ_TIMEOUT)
        self._producer.close(timeout=10)
        assert self.error is None, f"background producer failed: {self.error!r}"
        return self.values


def test_members_rebalance_incrementally_and_commit(broker, topic, franz):
    clients.create_topic(broker, topic, 6)
    produced = clients.produce_counts(broker, topic, {p: 10 for p in range(6)}, "before")
    group = clients.unique_name("franz-kip848")
    everything = {(topic, p) for p in range(6)}

    first = franz(broker, group, [topic], "franz-first")
    first.wait_for(lambda m: m.assignment == everything and len(m.records) == 60
                   and m.committed == {tp: 10 for tp in everything},
                   "all six partitions, 60 records consumed and committed", SETTLE)

    # A second member joins while records keep coming.
    producer = Producer(broker, topic, 6)
    try:
        first.wait_for(lambda m: len(m.records) > 60, "records produced after the first 60")
        joined_at = time.time() * 1000
        second = franz(broker, group, [topic], "franz-second")
        wait_until(lambda: len(first.partitions()) == 3 and len(second.partitions()) == 3,
                   "three partitions each", timeout=SETTLE)
        rows = wait_until(lambda: stable_members(broker, group, 2),
                          "both members stable in kafka-consumer-groups", timeout=SETTLE)
    finally:
        produced += producer.stop()
    first.check_healthy()
    second.check_healthy()

    # Incremental: the first member gave up exactly what the second took, in revocations
    # of those partitions alone, and kept the rest throughout; nothing was lost.
    kept, taken = first.partitions(topic), second.partitions(topic)
    assert kept | taken == set(range(6)) and not kept & taken
    first_moves = [(e["ev"], {p for _, p in e.get("added") or e["removed"]})
                   for e in first.of_any("assign", "revoke", "lost")]
    assert first_moves[0] == ("assign", set(range(6))), first_moves
    assert {ev for ev, _ in first_moves[1:]} == {"revoke"}, first_moves
    assert set().union(*(ps for _, ps in first_moves[1:])) == taken, first_moves
    second_moves = [(e["ev"], {p for _, p in e.get("added") or e["removed"]})
                    for e in second.of_any("assign", "revoke", "lost")]
    assert {ev for ev, _ in second_moves} == {"assign"}, second_moves
    # It went on consuming the partitions it kept while the second member was joining:
    # from the second's start until the second got its first partitions.
    assigned_at = second.of("assign")[0]["t"]
    during = {r[1] for e in first.of("records") if joined_at <= e["t"] < assigned_at
              for r in e["records"]}
    assert during & kept, (
        f"the first member consumed nothing from its kept partitions {sorted(kept)} in the "
        f"{assigned_at - joined_at:.0f} ms the second member took to get its partitions "
        f"(it consumed from {sorted(during)})")

    # The coordinator's view matches what each member reported: KIP-848 members with the
    # client ids they gave, three partitions each, and the server assignor franz-go asks
    # for with a sticky balancer ("uniform").
    by_client = {row["CLIENT-ID"]: row for row in rows}
    assert set(by_client) == {"franz-first", "franz-second"}, rows
    assert by_client["franz-first"]["CURRENT-ASSIGNMENT"] == assignment_cell(topic, kept), rows
    assert by_client["franz-second"]["CURRENT-ASSIGNMENT"] == assignment_cell(topic, taken), rows
    r = groups_tool(broker, "--describe", "--group", group, "--state", "--verbose")
    assert r.code == 0, str(r)
    state = parse_table(r.stdout)[0]
    assert (state["ASSIGNMENT-STRATEGY"], state["STATE"], state["#MEMBERS"]) == (
        "uniform", "Stable", "2"), state
    r = groups_tool(broker, "--list", "--type", "--state")
    listed = {row["GROUP"]: row for row in parse_table(r.stdout)}
    assert (listed[group]["TYPE"], listed[group]["STATE"]) == ("Consumer", "Stable"), listed

    # Records after the rebalance; with the first member's commits before each revocation,
    # every record ever produced is consumed exactly once across the two members.
    produced += clients.produce_counts(broker, topic, {p: 5 for p in range(6)}, "after")
    ends = clients.end_offsets(broker, topic, 6)

    def consumed():
        return [r[3] for m in (first, second) for r in m.records]

    wait_until(lambda: len(consumed()) >= len(produced), f"all {len(produced)} records",
               timeout=SETTLE)
    first.wait_for(lambda m: all(m.committed.get((topic, p)) == ends[p] for p in kept),
                   "commits up to the end of the kept partitions")
    second.wait_for(lambda m: all(m.committed.get((topic, p)) == ends[p] for p in taken),
                    "commits up to the end of the taken partitions")
    duplicates = {v: n for v, n in collections.Counter(consumed()).items() if n > 1}
    assert not duplicates, f"consumed more than once: {sorted(duplicates)[:10]}"
    assert sorted(consumed()) == sorted(produced)
    # Each member consumed only what it owned at the time: the second only what it took.
    assert {r[1] for r in second.records} == taken
    assert not first.failed_commits and not second.failed_commits, (
        first.failed_commits + second.failed_commits)
    # The second started where the first had committed the partitions it gave up.
    for p in taken:
        first_last = max((r[2] for r in first.records if r[1] == p), default=-1)
        second_first = min(r[2] for r in second.records if r[1] == p)
        assert second_first == first_last + 1, (p, first_last, second_first)

    first.stop()
    second.stop()
    # Spoken: KIP-848's heartbeat, never the classic JoinGroup / SyncGroup / Heartbeat.
    for m in (first, second):
        assert m.requests.get("ConsumerGroupHeartbeat", 0) >= 2, m.requests
        assert not {"JoinGroup", "SyncGroup", "Heartbeat"} & set(m.requests), m.requests
        # Leaving revoked the rest, nothing was ever lost, and no poll reported an error.
        assert not m.assignment and not m.of("lost"), m.summary()
        assert not m.of("error"), m.of("error")

    # Both leaves (member epoch -1) were taken: the group is empty, its commits remain.
    r = groups_tool(broker, "--describe", "--group", group, "--state")
    assert r.code == 0, str(r)
    state = parse_table(r.stdout)[0]
    assert (state["STATE"], state["#MEMBERS"]) == ("Empty", "0"), state
    r = groups_tool(broker, "--describe", "--group", group)
    assert r.code == 0, str(r)
    offsets = {int(row["PARTITION"]): (row["CURRENT-OFFSET"], row["LAG"])
               for row in parse_table(r.stdout)}
    assert offsets == {p: (str(ends[p]), "0") for p in range(6)}, r.stdout


def test_range_balancer_asks_for_the_range_assignor(broker, topic, franz):
    # franz-go maps its client-side balancer to a server assignor: range -> "range".
    clients.create_topic(broker, topic, 4)
    group = clients.unique_name("franz-kip848-range")
    one = franz(broker, group, [topic], "franz-range-1", balancer="range")
    two = franz(broker, group, [topic], "franz-range-2", balancer="range")
    wait_until(lambda: len(one.partitions()) == 2 and len(two.partitions()) == 2, "two each",
               timeout=SETTLE)
    # The range assignor gives each member a contiguous range of the topic's partitions.
    assert sorted([sorted(one.partitions()), sorted(two.partitions())]) == [[0, 1], [2, 3]]
    wait_until(lambda: stable_members(broker, group, 2), "both members stable", timeout=SETTLE)
    r = groups_tool(broker, "--describe", "--group", group, "--state", "--verbose")
    assert r.code == 0, str(r)
    state = parse_table(r.stdout)[0]
    assert (state["ASSIGNMENT-STRATEGY"], state["STATE"]) == ("range", "Stable"), state
    one.stop()
    two.stop()
    for m in (one, two):
        assert m.requests.get("ConsumerGroupHeartbeat", 0) >= 1, m.requests
        assert "JoinGroup" not in m.requests, m.requests

