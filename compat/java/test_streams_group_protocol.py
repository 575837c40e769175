"""Kafka Streams 4.4 on the streams rebalance protocol of KIP-1071 (`group.protocol=streams`),
against the broker: the same exactly-once word count as test_streams.py
(streams/EosWordCount.java, unchanged; the protocol is one more Streams config), but the
group is a "streams" group whose coordinator, in the broker, creates the app's internal
topics and assigns its tasks, heartbeat by heartbeat (StreamsGroupHeartbeat).

- a clean run: the committed output is exactly once (both clients); the internal topics
  exist with the input's partition count and the configs of the app's topology; the group
  is listed as a streams group (kafka-python ListGroups, kafka-groups,
  kafka-streams-groups), and kafka-streams-groups describes it Stable, with the app's two
  stream threads as two members of one process sharing the six tasks; the input offsets
  are committed to its end; after close() the members have left (Empty) at once;
- two instances (processes) of one application, one stream thread each: each gets some
  of the six tasks; kill -9 of one mid-run; its member stays in the group until its
  session runs out (streams.session.timeout.ms, set on the group with kafka-configs to
  45000, the least Kafka 4.4 allows), then the other takes over every task and the
  committed output is still exactly once.

What Kafka 4.4 needs: nothing beyond its defaults. A new 4.4 cluster is formatted with
the feature streams.version=1 and has group.coordinator.rebalance.protocols=classic,
consumer,streams; ApiVersions has StreamsGroupHeartbeat (88) v0-1 and StreamsGroupDescribe
(89) v0-1. Defaults that shape the timing: group.streams.heartbeat.interval.ms=5000 (also
its minimum), group.streams.session.timeout.ms=45000 (min 45000, max 60000: the group
config streams.session.timeout.ms is refused outside them with "streams.session.timeout.ms
must be in the range 45000 to 60000 inclusive.", and the group.streams.* broker configs
cannot be changed at run time), group.streams.initial.rebalance.delay.ms=3000,
group.streams.num.standby.replicas=0, assignor "sticky". So a takeover after kill -9
takes 40-50 s, and case 2 about 75 s (case 1: 20 s).

What the broker must do (as Kafka 4.4 did it for this app, from its request log):

StreamsGroupHeartbeat v1, one member per StreamThread (its main consumer,
client id <app>-<process uuid>-StreamThread-<n>-consumer):
  join:  MemberId = a client-made id (22 chars, base64 UUID), MemberEpoch 0,
         EndpointInformationEpoch -1, RebalanceTimeoutMs 300000 (max.poll.interval.ms),
         ProcessId = the instance's UUID (kept in its state directory; both threads of a
         process send the same one), UserEndpoint null, ClientTags [], InstanceId and
         RackId null, ActiveTasks/StandbyTasks/WarmupTasks [] (empty, not null),
         TaskOffsets/TaskEndOffsets [], ShutdownApplication false, and the Topology,
         epoch 0, two subtopologies:
           "0": SourceTopics [<app>-in], RepartitionSinkTopics [<app>-by-word-repartition]
           "1": RepartitionSourceTopics [{<app>-by-word-repartition, Partitions 0,
                  ReplicationFactor 1, configs cleanup.policy=delete,
                  message.timestamp.type=CreateTime, retention.ms=-1,
                  segment.bytes=52428800}],
                StateChangelogTopics [{<app>-counts-changelog, Partitions 0,
                  ReplicationFactor 1, configs cleanup.policy=compact,
                  message.timestamp.type=CreateTime}]
         (Partitions 0: the broker derives the count, 3 here: a repartition topic from the
         source topics of the subtopology that writes it, a changelog from its own
         subtopology's sources; no copartition groups, no regex).
  then:  the same MemberId and the epoch last given; Topology, ProcessId, ClientTags null,
         RebalanceTimeoutMs -1 (all "unchanged"); ActiveTasks/StandbyTasks/WarmupTasks
         null, except in the heartbeat right after it took up a new assignment, which
         carries the full lists of what it now owns (same epoch); every 5 s.
  leave: on close(), MemberEpoch -1; the answer is MemberEpoch -1, HeartbeatIntervalMs 0,
         TaskOffsetIntervalMs 0, AcceptableRecoveryLag -1. The group is Empty at once.
Kafka's answers: ErrorCode 0, the MemberId echoed, HeartbeatIntervalMs 5000,
TaskOffsetIntervalMs 60000, AcceptableRecoveryLag 10000, EndpointInformationEpoch 0,
PartitionsByUserEndpoint null, TopologyDescriptionRequired false, Status [] when all is
well. The joins were answered MemberEpoch 1 and ActiveTasks [] with Status
[{5 ASSIGNMENT_DELAYED "Assignment delayed due to the configured initial rebalance
delay."}, {3 MISSING_INTERNAL_TOPICS "Internal topics are missing:
<app>-counts-changelog, <app>-by-word-repartition"}], and the broker itself created them
at that moment (CreateTopics to the controller, under the member's client id: both
topics, NumPartitions 3, ReplicationFactor 1, the topology's configs, timeout 30000;
unlike on the classic protocol, the app sends no CreateTopics or DescribeConfigs of its
own); the member's next heartbeat (its ack of the empty assignment, ActiveTasks [], ~150
ms later) had only status 5. After the delay (3 s) the next heartbeat of
each member got the group epoch (4 with two members; 6 with four) and its tasks in one
step, e.g. ActiveTasks [{"0", [0, 2]}, {"1", [1]}] and [{"0", [1]}, {"1", [0, 2]}]
(SubtopologyId strings, partitions per subtopology; Standby/Warmup []); afterwards
ActiveTasks/StandbyTasks/WarmupTasks null = unchanged. A Streams client goes RUNNING once
its threads have taken up their (first) assignment, and REBALANCING -> RUNNING again each
time its tasks change.

kill -9 of an instance: its members' last heartbeats were 45 s before Kafka fenced them
("Streams member ... fenced from the group because the member session expired."); the
group epoch went up by one per member removed (6 -> 8), and the survivors' next regular
heartbeat got epoch 8 and every task (0:[1,2] 1:[2] and 0:[0] 1:[0,1] for two threads).

Offsets: OffsetFetch v10 (topic ids) with the member's MemberId and MemberEpoch and
RequireStable true for its tasks' partitions (input and repartition); TxnOffsetCommit v6
(topic ids) with GenerationIdOrMemberEpoch = the member epoch (4, 6, 8 above) and
MemberId = the streams member id, GroupInstanceId null, committedMetadata as Streams sets
it; no plain OffsetCommit under exactly_once_v2. Admin reads (kafka-python OffsetFetch v8
without member, kafka-streams-groups OffsetFetch v9 with MemberEpoch -1) get the
group's offsets. InitProducerId/Produce/EndTxn as in test_streams.py (transaction
version 2: no AddPartitionsToTxn/AddOffsetsToTxn), DeleteRecords on the repartition topic.

ListGroups v5: the group is {protocolType "streams", groupType "streams", groupState
Stable/Empty}; kafka-groups --list sends no filter, kafka-streams-groups --list sends
TypesFilter ["Streams"] (capitalised).
StreamsGroupDescribe v1 (IncludeTopologyDescription false): GroupState "Stable",
GroupEpoch = AssignmentEpoch, AssignorName "sticky", Topology {epoch 0, the subtopologies
as sent, with the internal topics' Partitions filled in (3)}, and per member MemberId,
MemberEpoch, ClientId, ClientHost "/127.0.0.1", ProcessId, TopologyEpoch 0,
UserEndpoint null, ClientTags [], TaskOffsets [], Assignment and TargetAssignment
(ActiveTasks, StandbyTasks, WarmupTasks), IsClassic false; TopologyDescription null,
TopologyDescriptionStatus 0. An unknown group: ErrorCode 69 GROUP_ID_NOT_FOUND "Group
<g> not found.".
"""

from __future__ import annotations

import re
import time

import pytest

import clients
import kafka_tools
from clients import wait_until
from kafka_tools import parse_table
from test_streams import app_classes  # noqa: F401  (the fixture: EosWordCount, compiled once)
from test_streams import (INPUT_PARTITIONS, OUTPUT_PARTITIONS, RUN_TIMEOUT, CommittedOutput,
                          StreamsApp, assert_committed_output, partition_count, produce_words,
                          setup_topics, topic_configs, wait_input_offsets_committed, wait_purged)
from test_transactions import READ_COMMITTED, read_kp, wait_no_open_transaction

pytestmark = pytest.mark.skipif(not kafka_tools.jars_present(), reason="Kafka jars not fetched")

STREAMS_PROTOCOL = {"group.protocol": "streams"}

# Every task of the app: subtopology "0" (input -> repartition) and "1" (repartition ->
# count -> output), one per partition of their source topic.
ALL_TASKS = {(s, p) for s in ("0", "1") for p in range(INPUT_PARTITIONS)}

# Kafka 4.4's bounds for streams.session.timeout.ms (group.streams.min/max.session.timeout.ms).
MIN_SESSION_TIMEOUT_MS = 45000
HEARTBEAT_INTERVAL_S = 5.0  # group.streams.heartbeat.interval.ms, default and minimum


# ------------------------------------------------------------------ the apps

@pytest.fixture
def streams_instances(app_classes, tmp_path):
    """start(broker, app_id, topic_in, topic_out, name, ...) runs an EosWordCount on the
    streams protocol with a state directory of its own (tmp_path/state-<name>: its own
    process id), so that two of them are two instances of the application. Every one still
    running at the end is killed."""
    started: list[StreamsApp] = []

    def start(broker, app_id, topic_in, topic_out, name, delay_ms=0, **config) -> StreamsApp:
        app = StreamsApp(app_classes, broker, app_id, topic_in, topic_out, tmp_path / f"state-{name}",
                         tmp_path / f"streams-{name}.log", delay_ms, **{**STREAMS_PROTOCOL, **config})
        started.append(app)
        return app

    yield start
    for app in started:
        app.kill()


# ------------------------------------------------------------------ the tools

def streams_groups(broker, *args: str) -> kafka_tools.Result:
    return kafka_tools.run("kafka-streams-groups", "--bootstrap-server", broker.bootstrap, *args)


ASSIGNMENT = re.compile(r"((?:TARGET-)?(?:ACTIVE|STANDBY|WARMUP)):\s*((?:\d+:\[[\d,\s]*\];\s*)*)")
TASKS = re.compile(r"(\d+):\[([\d,\s]*)\]")


def parse_tasks(text: str) -> set[tuple[str, int]]:
    """'0:[1,2]; 1:[0]; ' -> {("0", 1), ("0", 2), ("1", 0)}"""
    return {(sub, int(p)) for sub, parts in TASKS.findall(text) for p in parts.split(",") if p.strip()}


def describe_members(broker, group: str) -> list[dict]:
    """kafka-streams-groups --describe --members --verbose: one dict per member, its
    columns (GROUP TARGET-ASSIGNMENT-EPOCH TOPOLOGY-EPOCH MEMBER MEMBER-PROTOCOL
    MEMBER-EPOCH PROCESS CLIENT-ID) and, from ASSIGNMENTS, ACTIVE / TARGET-ACTIVE / ... as
    sets of (subtopology, partition)."""
    r = streams_groups(broker, "--describe", "--members", "--verbose", "--group", group)
    assert r.code == 0, str(r)
    members: list[dict] = []
    columns: list[str] | None = None
    for line in r.stdout.splitlines():
        if not line.strip():
            columns = None
        elif line.split()[0] == "GROUP":
            columns = line.split()
        elif columns is not None:
            cells = line.split(None, len(columns) - 1)
            row = dict(zip(columns[:-1], cells[:-1]))
            assigned = cells[-1] if len(cells) == len(columns) else ""
            for kind in ("ACTIVE", "STANDBY", "WARMUP", "TARGET-ACTIVE", "TARGET-STANDBY", "TARGET-WARMUP"):
                row[kind] = set()
            for kind, tasks in ASSIGNMENT.findall(assigned):
                row[kind] = parse_tasks(tasks)
            row["line"] = line
            members.append(row)
    return members


def describe_state(broker, group: str) -> dict:
    """kafka-streams-groups --describe --state --verbose: GROUP, COORDINATOR, ASSIGNOR,
    STATE, GROUP-EPOCH, TARGET-ASSIGNMENT-EPOCH, #MEMBERS."""
    r = streams_groups(broker, "--describe", "--state", "--verbose", "--group", group)
    assert r.code == 0, str(r)
    rows = parse_table(r.stdout)
    assert len(rows) == 1, str(r)
    return rows[0]


def listed_groups(broker) -> dict[str, dict]:
    """kafka-groups --list: group -> {TYPE, PROTOCOL}. Groups that hold only offsets have
    no protocol (a blank cell), so only the rows with all three cells are read."""
    r = kafka_tools.run("kafka-groups", "--bootstrap-server", broker.bootstrap, "--list")
    assert r.code == 0, str(r)
    full = [line for line in r.stdout.splitlines() if len(line.split()) == 3]
    return {row["GROUP"]: row for row in parse_table("\n".join(full))}


def set_group_config(broker, group: str, setting: str) -> kafka_tools.Result:
    return kafka_tools.run("kafka-configs", "--bootstrap-server", broker.bootstrap, "--alter",
                           "--entity-type", "groups", "--entity-name", group, "--add-config", setting)


def process_id(app: StreamsApp, members: list[dict]) -> str:
    """The process id, among the described members', of this app: the one its log names
    (its clients are <application id>-<process id>-StreamThread-<n>-...)."""
    text = app.log_file.read_text(errors="replace")
    (found,) = {m["PROCESS"] for m in members if m["PROCESS"] in text}
    return found


def wait_members(broker, group: str, check, what: str, timeout: float, apps=()) -> list[dict]:
    """Describes the group's members until check(members) is true (the apps must stay up)."""
    last = {}

    def done():
        for app in apps:
            app.check_alive()
        last["members"] = describe_members(broker, group)
        return last["members"] if check(last["members"]) else None

    try:
        return wait_until(done, what, timeout, interval=1.0)
    except AssertionError as e:
        seen = "\n".join(m["line"] for m in last.get("members", []))
        raise AssertionError(f"{e}; last described:\n{seen}") from None


def settled(members: list[dict]) -> bool:
    """Every member has taken up its target assignment, at the target's epoch."""
    return all(m["ACTIVE"] == m["TARGET-ACTIVE"] and m["MEMBER-EPOCH"] == m["TARGET-ASSIGNMENT-EPOCH"]
               for m in members)


def assert_tasks_split(members: list[dict]) -> None:
    """Each member owns some active tasks, none twice, all six owned; no standbys."""
    every = [t for m in members for t in m["ACTIVE"]]
    assert all(m["ACTIVE"] for m in members), members
    assert sorted(every) == sorted(ALL_TASKS), members
    assert not any(m["STANDBY"] or m["WARMUP"] for m in members), members


# ------------------------------------------------------------------ cases

def test_streams_protocol_exactly_once_word_count(broker, tool_topic, streams_instances):
    """A clean run over 3000 records with group.protocol=streams: exactly once in the
    committed output; the internal topics made by the broker with the topology's
    partitions and configs; a Stable streams group of one process with two members (the
    stream threads) sharing the six tasks, listed and described as such; its input
    offsets committed to the end; Empty as soon as the app has closed."""
    app_id, topic_in, topic_out = setup_topics(broker, tool_topic)
    n = 3000
    counts = produce_words(broker, topic_in, n, seed=11)

    started = time.monotonic()
    app = streams_instances(broker, app_id, topic_in, topic_out, "one")
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    try:
        app.wait_running()
        output.wait_for(n, app)
    finally:
        output.close()
    took = time.monotonic() - started

    # Listed as a streams group, by kafka-python (ListGroups) and kafka-groups.
    listed = {g["group_id"]: g for g in clients.list_groups_kp(broker)}
    assert app_id in listed, listed
    assert (listed[app_id]["group_type"], listed[app_id]["protocol_type"],
            listed[app_id]["group_state"]) == ("streams", "streams", "Stable"), listed[app_id]
    assert {k: v for k, v in listed_groups(broker)[app_id].items() if k != "GROUP"} == {
        "TYPE": "Streams", "PROTOCOL": "streams"}
    r = streams_groups(broker, "--list", "--state")
    assert r.code == 0, str(r)
    assert {row["GROUP"]: row["STATE"] for row in parse_table(r.stdout)}.get(app_id) == "Stable", str(r)

    # Described: Stable, the sticky assignor, two members of one process (the threads),
    # each at the group's epoch with its target assignment, the six tasks split.
    members = wait_members(broker, app_id, lambda ms: len(ms) == 2 and settled(ms),
                           "two settled members", timeout=20, apps=[app])
    state = describe_state(broker, app_id)
    assert (state["STATE"], state["ASSIGNOR"], state["#MEMBERS"]) == ("Stable", "sticky", "2"), state
    assert state["GROUP-EPOCH"] == state["TARGET-ASSIGNMENT-EPOCH"], state
    assert {m["MEMBER-EPOCH"] for m in members} == {state["GROUP-EPOCH"]}, (state, members)
    assert {m["MEMBER-PROTOCOL"] for m in members} == {"streams"}, members
    assert {m["TOPOLOGY-EPOCH"] for m in members} == {"0"}, members
    process = process_id(app, members)
    assert sorted(m["CLIENT-ID"] for m in members) == [
        f"{app_id}-{process}-StreamThread-{i}-consumer" for i in (1, 2)], members
    assert {m["PROCESS"] for m in members} == {process}, members
    assert_tasks_split(members)

    # The input's end offsets are committed (with the transactions); the tool's offset
    # view (input and repartition partitions, from the topology's source topics) has no lag.
    wait_input_offsets_committed(broker, app_id, topic_in)
    repartition, changelog = f"{app_id}-by-word-repartition", f"{app_id}-counts-changelog"
    r = streams_groups(broker, "--describe", "--offsets", "--group", app_id)
    assert r.code == 0, str(r)
    offsets = {(row["TOPIC"], int(row["PARTITION"])): row["OFFSET-LAG"] for row in parse_table(r.stdout)}
    assert offsets == {(t, p): "0" for t in (topic_in, repartition) for p in range(INPUT_PARTITIONS)}, str(r)
    wait_purged(broker, repartition, INPUT_PARTITIONS)

    assert app.stop() == 0, app.summary()
    assert "CLOSED true" in app.lines, app.summary()
    assert app.states()[-2:] == ["PENDING_SHUTDOWN", "NOT_RUNNING"], app.summary()
    print(f"\n{n} records counted exactly once in {took:.1f}s (start to complete output)")

    # The members left as the app closed (no session timeout to wait for).
    state = describe_state(broker, app_id)
    assert (state["STATE"], state["#MEMBERS"]) == ("Empty", "0"), state

    records = assert_committed_output(broker, topic_out, counts)
    assert len(records) == n

    # The internal topics, made by the broker's group coordinator from the topology the
    # members sent: the input's partition count, the topology's configs.
    assert partition_count(broker, repartition) == INPUT_PARTITIONS
    assert partition_count(broker, changelog) == INPUT_PARTITIONS
    configs = topic_configs(broker, repartition)
    assert {k: configs[k] for k in ("cleanup.policy", "retention.ms", "segment.bytes",
                                    "message.timestamp.type")} == {
        "cleanup.policy": "delete", "retention.ms": "-1", "segment.bytes": "52428800",
        "message.timestamp.type": "CreateTime"}, configs
    configs = topic_configs(broker, changelog)
    assert (configs["cleanup.policy"], configs["message.timestamp.type"]) == ("compact", "CreateTime"), configs
    wait_no_open_transaction(broker, changelog, INPUT_PARTITIONS)
    assert len(read_kp(broker, changelog, INPUT_PARTITIONS, READ_COMMITTED)) == n


def test_streams_protocol_two_instances_and_kill_9(broker, tool_topic, streams_instances):
    """Two instances of one application (two processes, a stream thread each) split the
    six tasks. One is killed (SIGKILL) in the middle of the input; its member stays in the
    group until its session times out (streams.session.timeout.ms, set on the group to
    Kafka's least, 45 s), then the other instance takes over every task, finishes the
    input, and the committed output is exactly once."""
    app_id, topic_in, topic_out = setup_topics(broker, tool_topic)

    # The group's session timeout: Kafka 4.4 takes 45000-60000 ms only.
    r = set_group_config(broker, app_id, "streams.session.timeout.ms=6000")
    assert r.code != 0, str(r)
    assert ("InvalidConfigurationException: streams.session.timeout.ms must be in the range "
            f"{MIN_SESSION_TIMEOUT_MS} to 60000 inclusive.") in r.stderr, str(r)
    r = set_group_config(broker, app_id, f"streams.session.timeout.ms={MIN_SESSION_TIMEOUT_MS}")
    assert r.code == 0, str(r)

    # 10 ms per input record, a thread each: a run of the input takes some seconds.
    config = {"delay_ms": 10, "num.stream.threads": "1"}
    survivor = streams_instances(broker, app_id, topic_in, topic_out, "a", **config)
    victim = streams_instances(broker, app_id, topic_in, topic_out, "b", **config)
    survivor.wait_running()
    victim.wait_running()

    def split(ms):
        return len(ms) == 2 and len({m["PROCESS"] for m in ms}) == 2 and settled(ms) and all(
            m["ACTIVE"] for m in ms)

    members = wait_members(broker, app_id, split, "two instances to split the tasks",
                           timeout=40, apps=[survivor, victim])
    assert_tasks_split(members)
    assert describe_state(broker, app_id)["STATE"] == "Stable"
    victim_id = process_id(victim, members)
    victim_tasks = next(m["ACTIVE"] for m in members if m["PROCESS"] == victim_id)
    survivor_states = len(survivor.states())

    # Half the input while both run; the kill comes once a third of that half's output is
    # committed (both instances busy), then the other half, of which the killed instance's
    # tasks surely have a share (every input partition, every word).
    half = 600
    n = 2 * half
    counts = produce_words(broker, topic_in, half, seed=12)
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    session = MIN_SESSION_TIMEOUT_MS / 1000
    try:
        output.wait_for(half // 3, victim)
        survivor.check_alive()
        victim.kill()
        killed = time.monotonic()
        at_kill = output.count
        counts += produce_words(broker, topic_in, half, seed=13)

        # Seconds after the kill, the dead instance's member is still in the group.
        still = describe_members(broker, app_id)
        assert time.monotonic() - killed < session - HEARTBEAT_INTERVAL_S
        assert victim_id in {m["PROCESS"] for m in still}, still

        # Its tasks stand still until its session runs out: 45 s after its last
        # heartbeat, at most one heartbeat interval before the kill. The output stays
        # incomplete all that time; then the survivor's client rebalances (RUNNING ->
        # REBALANCING -> RUNNING) onto every task.
        earliest = session - HEARTBEAT_INTERVAL_S - 5  # with some slack
        before = {}

        def taken_over() -> bool:
            survivor.check_alive()
            output.count += sum(len(rs) for rs in output.consumer.poll(timeout_ms=100).values())
            if time.monotonic() - killed < earliest:
                before["count"] = output.count
            return survivor.states()[survivor_states:][-2:] == ["REBALANCING", "RUNNING"]

        try:
            wait_until(taken_over, "the surviving instance to take over",
                       timeout=session + 2 * HEARTBEAT_INTERVAL_S + 10, interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{survivor.summary()}") from None
        took_over = time.monotonic() - killed
        assert took_over >= earliest, (
            f"the tasks moved {took_over:.1f}s after the kill, before the session timeout")
        assert before["count"] < n, f"the output was complete {earliest}s after the kill"

        output.wait_for(n, survivor, timeout=RUN_TIMEOUT)
    finally:
        output.close()
    print(f"\nkilled with {at_kill} of {half} outputs committed (it had {sorted(victim_tasks)}); "
          f"{before['count']} of {n} {earliest:.0f}s later; taken over after {took_over:.1f}s; "
          f"complete {time.monotonic() - killed:.1f}s after the kill")

    # Only the survivor's member is left, owning all six tasks.
    members = wait_members(broker, app_id, lambda ms: len(ms) == 1 and settled(ms),
                           "one settled member", timeout=20, apps=[survivor])
    (member,) = members
    assert member["PROCESS"] != victim_id, members
    assert member["ACTIVE"] == ALL_TASKS, members
    state = describe_state(broker, app_id)
    assert (state["STATE"], state["#MEMBERS"]) == ("Stable", "1"), state

    assert_committed_output(broker, topic_out, counts)
    wait_input_offsets_committed(broker, app_id, topic_in)
    assert survivor.stop() == 0, survivor.summary()
    assert "CLOSED true" in survivor.lines, survivor.summary()



@pytest.mark.restart
def test_streams_group_survives_a_broker_restart(restartable, tool_topic, streams_instances):
    """A streams group's state is durable in `__consumer_offsets` (its topology, members,
    epochs and tasks): when the broker stops and starts again under a running app, the
    group is described as it was, the members carry on at their epochs with their tasks
    (no new assignment), and the output of what comes after is still exactly once."""
    broker = restartable
    app_id, topic_in, topic_out = setup_topics(broker, tool_topic)
    counts = produce_words(broker, topic_in, 300, seed=21)
    app = streams_instances(broker, app_id, topic_in, topic_out, "one")
    app.wait_running()
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    try:
        output.wait_for(300, app)
    finally:
        output.close()
    members = wait_members(broker, app_id, lambda ms: len(ms) == 2 and settled(ms),
                           "two settled members", timeout=20, apps=[app])
    before = describe_state(broker, app_id)

    def view(ms: list[dict]) -> dict:
        return {m["MEMBER"]: (m["MEMBER-EPOCH"], frozenset(m["ACTIVE"])) for m in ms}

    broker.stop()
    broker.restart()

    # Read back from the log, before and after the members' next heartbeats.
    after = describe_state(broker, app_id)
    assert (after["GROUP-EPOCH"], after["TARGET-ASSIGNMENT-EPOCH"], after["#MEMBERS"]) == (
        before["GROUP-EPOCH"], before["TARGET-ASSIGNMENT-EPOCH"], "2"), (before, after)
    assert view(describe_members(broker, app_id)) == view(members)

    counts += produce_words(broker, topic_in, 300, seed=22)
    output = CommittedOutput(broker, topic_out, OUTPUT_PARTITIONS)
    try:
        output.wait_for(600, app)
    finally:
        output.close()
    assert view(wait_members(broker, app_id, lambda ms: len(ms) == 2 and settled(ms),
                             "two settled members", timeout=20, apps=[app])) == view(members)
    assert describe_state(broker, app_id)["GROUP-EPOCH"] == before["GROUP-EPOCH"]
    assert_committed_output(broker, topic_out, counts)
    assert app.stop() == 0, app.summary()
