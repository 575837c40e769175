"""A cluster as its users see it, side by side: Apache Kafka 4.4 (KRaft) and Sluice.

Two layouts, one cluster each per implementation (class scope: the cases of a class share
it, the destructive ones come last):

    TestThreeCombined   nodes 1, 2, 3: broker+controller each, racks rack-a, rack-b, rack-c
    TestFiveTwoRacks    nodes 1, 2, 3: broker+controller (rack-a, rack-b, rack-a)
                        nodes 4, 5:    broker only        (rack-b, rack-a)
                        -> 5 brokers in 2 racks (3 in rack-a, 2 in rack-b), 3 voters

Every case asserts what a client or the official tools see: kafka-python, confluent-kafka
(librdkafka), raw requests built from kafka-python's protocol classes where a client would
hide the answer, and Kafka's own kafka-topics / kafka-metadata-quorum from the jars.
Values worth knowing (timings, Kafka's exact messages) go to the `observed` summary.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import re
import subprocess
import threading
import time

import confluent_kafka
import kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import clients
import kafka_tools
from cluster import Cluster, NodeSpec, wait_until

THREE = [NodeSpec(1, "broker,controller", "rack-a"),
         NodeSpec(2, "broker,controller", "rack-b"),
         NodeSpec(3, "broker,controller", "rack-c")]
FIVE = [NodeSpec(1, "broker,controller", "rack-a"),
        NodeSpec(2, "broker,controller", "rack-b"),
        NodeSpec(3, "broker,controller", "rack-a"),
        NodeSpec(4, "broker", "rack-b"),
        NodeSpec(5, "broker", "rack-a")]

NOT_LEADER_OR_FOLLOWER = 6
INVALID_REPLICATION_FACTOR = 38
TIMEOUT = 60.0


@contextlib.contextmanager
def running(impl: str, tmp_path_factory, layout, name: str | None = None, node_ids=None, **options):
    """A started cluster of `layout` (Cluster's options; only `node_ids` started when
    given), stopped after the block."""
    c = Cluster(impl, tmp_path_factory.mktemp(f"{impl}-{name or f'{len(layout)}-nodes'}"), layout, **options)
    c.start(timeout=180, node_ids=node_ids)
    try:
        yield c
    finally:
        # Client handles the cases left for the garbage collector (kept by tracebacks)
        # would log connection errors while the nodes go: collect them first.
        gc.collect()
        c.stop()


def unique(prefix: str) -> str:
    return clients.unique_name(prefix)


def ck_admin(c: Cluster, bootstrap: str | None = None) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap or c.bootstrap})


def create(c: Cluster, name: str, partitions: int, rf: int, bootstrap: str | None = None,
           assignment: list[list[int]] | None = None) -> None:
    """CreateTopics through confluent-kafka (placed by the controller, or by `assignment`:
    the replicas of each partition, leader first); waits for the answer."""
    admin = ck_admin(c, bootstrap)  # alive until the result: a destroyed handle fails its futures
    topic = (NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment) if assignment is not None
             else NewTopic(name, partitions, rf))
    admin.create_topics([topic], request_timeout=30)[name].result(TIMEOUT)


def refused_replication_factor(c: Cluster, name: str, rf: int):
    """CreateTopics of one partition with replication factor `rf`, which must be refused
    with INVALID_REPLICATION_FACTOR; the KafkaError."""
    admin = ck_admin(c)  # alive until the result
    futures = admin.create_topics([NewTopic(name, 1, rf)], request_timeout=30)
    with pytest.raises(confluent_kafka.KafkaException) as raised:
        futures[name].result(TIMEOUT)
    error = raised.value.args[0]
    assert error.code() == confluent_kafka.KafkaError.INVALID_REPLICATION_FACTOR, error
    return error


def partitions_of(c: Cluster, node_id: int, topic: str) -> dict[int, object]:
    """partition -> its Metadata entry, as one broker sees the topic."""
    md = c.metadata(node_id, [topic])
    (t,) = md.topics
    assert t.error_code == 0, f"node {node_id}: {topic}: error {t.error_code}"
    return {p.partition_index: p for p in t.partitions}


def wait_fully_replicated(c: Cluster, topic: str, partitions: int, rf: int, node_ids=None) -> dict:
    """Wait until every given broker sees each partition with a leader and rf replicas all
    in the ISR; the partitions as the first of them sees them."""
    ids = list(node_ids or c.live_broker_ids)

    def full():
        seen = None
        for i in ids:
            ps = partitions_of(c, i, topic)
            if len(ps) != partitions or any(
                    p.leader_id < 0 or len(p.replica_nodes) != rf or set(p.isr_nodes) != set(p.replica_nodes)
                    for p in ps.values()):
                return None
            seen = seen or ps
        return seen
    return wait_until(full, f"{topic}: {partitions} partitions, leader and {rf} in-sync replicas each",
                      TIMEOUT, 0.25)


def java_string_hash(s: str) -> int:
    """Java's String.hashCode (over UTF-16 code units, 32-bit signed)."""
    h = 0
    units = s.encode("utf-16-be")
    for k in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[k:k + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def group_partition(group: str, partitions: int) -> int:
    """The __consumer_offsets partition of a group: Utils.abs(group.hashCode()) % partitions."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def metadata_quorum(bootstrap: str, *args: str) -> kafka_tools.Result:
    result = kafka_tools.run("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", *args)
    assert result.code == 0, f"kafka-metadata-quorum describe {' '.join(args)}: {result}"
    return result


def raw_produce(c: Cluster, node_id: int, topic: str, partition: int, version: int):
    """One record, acks=all, as a raw Produce of the given version to one broker; its
    partition response and the response."""
    from kafka.protocol.producer import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder

    batch = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    batch.append(int(time.time() * 1000), b"key", b"raw produce")
    batch.close()
    Topic = ProduceRequest.TopicProduceData
    r = c.request(node_id, ProduceRequest(
        transactional_id=None, acks=-1, timeout_ms=10000,
        topic_data=[Topic(name=topic, partition_data=[
            Topic.PartitionProduceData(index=partition, records=batch.buffer())])]), version=version)
    (t,) = r.responses
    (p,) = t.partition_responses
    return p, r


# ======================================================================== three combined nodes

@pytest.fixture(scope="class")
def trio(impl, tmp_path_factory):
    """THREE, started once per class that uses it (and implementation)."""
    with running(impl, tmp_path_factory, THREE) as c:
        yield c


@pytest.fixture(scope="class")
def five(impl, tmp_path_factory):
    """FIVE, started once per class that uses it (and implementation)."""
    with running(impl, tmp_path_factory, FIVE) as c:
        yield c


class TestThreeCombined:

    # ---- a. what the cluster says about itself

    def test_metadata_lists_brokers_with_racks(self, trio, observe):
        want = {n.id: ("127.0.0.1", n.port, n.rack) for n in trio.nodes.values()}
        # Each broker alone (raw Metadata v12+: brokers with host, port, rack).
        for i in trio.broker_ids:
            assert trio.registered_brokers(i) == want, f"node {i}'s Metadata"
            md = trio.metadata(i, topics=[])
            assert md.cluster_id == trio.cluster_id
        # kafka-python: describe_cluster (DescribeCluster).
        admin = clients.kp_admin(trio)
        try:
            kp = admin.describe_cluster()
        finally:
            admin.close()
        assert {b["broker_id"]: (b["host"], b["port"], b["rack"]) for b in kp["brokers"]} == want
        assert kp["cluster_id"] == trio.cluster_id
        assert kp["controller_id"] in trio.broker_ids, kp
        # confluent-kafka: describe_cluster and list_topics.
        ck = ck_admin(trio)
        d = ck.describe_cluster(request_timeout=30).result(TIMEOUT)
        assert {n.id: (n.host, n.port, n.rack) for n in d.nodes} == want
        assert d.cluster_id == trio.cluster_id
        assert d.controller is not None and d.controller.id in trio.broker_ids, d.controller
        listed = ck.list_topics(timeout=30)
        assert {b.id: (b.host, b.port) for b in listed.brokers.values()} == \
            {i: (h, p) for i, (h, p, _) in want.items()}
        assert listed.cluster_id == trio.cluster_id
        observe("DescribeCluster controller id (kafka-python, confluent-kafka) vs quorum leader",
                f"{kp['controller_id']}, {d.controller.id} vs {trio.active_controller()} "
                f"(Kafka's brokers name a random live broker: clients cannot reach controllers)")

    # ---- d. kafka-metadata-quorum

    def test_metadata_quorum_tool(self, trio, observe):
        leader = trio.active_controller()
        status = metadata_quorum(trio.bootstrap, "--status")
        fields = {}
        for line in status.stdout.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        assert fields.get("ClusterId") == trio.cluster_id, status
        assert int(fields["LeaderId"]) == leader, status
        assert int(fields["LeaderEpoch"]) >= 1 and int(fields["HighWatermark"]) > 0, status
        voters = json.loads(fields["CurrentVoters"])
        assert sorted(v["id"] for v in voters) == trio.controller_ids, status
        for v in voters:
            assert v["endpoints"] == [f"CONTROLLER://127.0.0.1:{trio.node(v['id']).controller_port}"], status
        observe("describe --status", " | ".join(status.stdout.strip().splitlines()))

        replication = metadata_quorum(trio.nodes[trio.broker_ids[-1]].bootstrap, "--replication")
        lines = [line.split() for line in replication.stdout.strip().splitlines()]
        header, rows = lines[0], lines[1:]
        assert header[:2] == ["NodeId", "DirectoryId"] and header[-1] == "Status", replication
        status_of = {int(r[0]): r[-1] for r in rows}
        assert status_of == {i: ("Leader" if i == leader else "Follower") for i in trio.controller_ids}, \
            replication
        for r in rows:  # every voter caught up: LogEndOffset set, Lag small
            row = dict(zip(header, r))
            assert int(row["LogEndOffset"]) > 0 and int(row["Lag"]) >= 0, replication

    # ---- c. a replication factor the cluster cannot give

    def test_replication_factor_above_brokers(self, trio, observe):
        name = unique("rf-too-high")
        rf = len(trio.broker_ids) + 1
        expected = (f"Unable to replicate the partition {rf} time(s): The target replication factor "
                    f"of {rf} cannot be reached because only {len(trio.broker_ids)} broker(s) are "
                    f"registered or some brokers have all their log directories cordoned.")
        admin = ck_admin(trio)
        futures = admin.create_topics([NewTopic(name, 1, rf)], request_timeout=30)
        with pytest.raises(confluent_kafka.KafkaException) as raised:
            futures[name].result(TIMEOUT)
        error = raised.value.args[0]
        assert error.code() == confluent_kafka.KafkaError.INVALID_REPLICATION_FACTOR, error
        assert error.str() == expected
        observe("INVALID_REPLICATION_FACTOR message", error.str())
        # The same through a raw CreateTopics to a broker, and kafka-python.
        from kafka.protocol.admin import CreateTopicsRequest
        T = CreateTopicsRequest.CreatableTopic
        r = trio.request(trio.broker_ids[0], CreateTopicsRequest(
            topics=[T(name=name, num_partitions=1, replication_factor=rf, assignments=[], configs=[])],
            timeout_ms=30000, validate_only=False))
        assert [(t.name, t.error_code, t.error_message) for t in r.topics] == \
            [(name, INVALID_REPLICATION_FACTOR, expected)]
        admin = clients.kp_admin(trio)
        try:
            with pytest.raises(kafka.errors.InvalidReplicationFactorError):
                admin.create_topics([kafka.admin.NewTopic(name, 1, rf)])
        finally:
            admin.close()
        # Nothing was created.
        assert name not in trio.topics_seen(trio.broker_ids[0])

    # ---- e. Produce to a broker that does not lead the partition; clients just work

    def test_produce_to_non_leader(self, trio, observe):
        topic = unique("not-leader")
        create(trio, topic, 1, 3)
        ps = wait_fully_replicated(trio, topic, 1, 3)
        leader = ps[0].leader_id
        epoch = ps[0].leader_epoch
        for follower in (i for i in trio.broker_ids if i != leader):
            for version in (9, 12):  # before and after KIP-951 (current leader in the answer)
                p, r = raw_produce(trio, follower, topic, 0, version)
                assert p.error_code == NOT_LEADER_OR_FOLLOWER, (follower, version, p)
                assert p.base_offset == -1, p
                if version >= 10:
                    assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (leader, epoch), p
                    assert [(e.node_id, e.host, e.port, e.rack) for e in r.node_endpoints] == \
                        [(leader, "127.0.0.1", trio.node(leader).port, trio.node(leader).rack)], r
        observe("Produce to a follower", f"error {p.error_code} message {p.error_message!r}; "
                f"v10+: current_leader {p.current_leader} and its node endpoint")
        p, _ = raw_produce(trio, leader, topic, 0, 12)
        assert (p.error_code, p.base_offset) == (0, 0), p

    def test_clients_produce_and_consume_in_groups(self, trio):
        topic = unique("clients")
        create(trio, topic, 3, 3)
        wait_fully_replicated(trio, topic, 3, 3)
        kp_values = [f"kp-{i}".encode() for i in range(300)]
        ck_values = [f"ck-{i}".encode() for i in range(300)]
        clients.send_kp(trio, topic, [clients.Msg(str(i).encode(), v) for i, v in enumerate(kp_values)],
                        acks="all")
        clients.send_ck(trio, topic, [clients.Msg(str(i).encode(), v) for i, v in enumerate(ck_values)],
                        acks="all")
        want = collections.Counter(kp_values + ck_values)

        # kafka-python, a consumer group of one, committing.
        group = unique("kp-group")
        consumer = kafka.KafkaConsumer(bootstrap_servers=trio.bootstrap, group_id=group,
                                       auto_offset_reset="earliest", enable_auto_commit=False,
                                       client_id="cluster-kp", request_timeout_ms=30000)
        got: collections.Counter = collections.Counter()
        try:
            # The topic's metadata before the first join. kafka-python 3.0.12 otherwise may
            # assign nothing (its metadata not in yet), rejoin at once, and, when that rejoin
            # outlives a poll's timeout, never take the assignment it got (its own bug, seen
            # under load against either broker: the member sits joined with no partitions).
            assert consumer.partitions_for_topic(topic) == {0, 1, 2}
            consumer.subscribe([topic])
            deadline = time.monotonic() + TIMEOUT
            while sum(got.values()) < len(want) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    got.update(r.value for r in records)
            consumer.commit()
        finally:
            consumer.close()
        assert got == want, f"kafka-python group read {sum(got.values())} of {len(want)}"
        committed = clients.group_offsets(trio, group)
        assert sum(o for o, _ in committed.values()) == len(want), committed

        # confluent-kafka, another group, committing.
        group = unique("ck-group")
        consumer = confluent_kafka.Consumer({"bootstrap.servers": trio.bootstrap, "group.id": group,
                                             "auto.offset.reset": "earliest",
                                             "enable.auto.commit": False, "client.id": "cluster-ck"})
        got = collections.Counter()
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + TIMEOUT
            while sum(got.values()) < len(want) and time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is None:
                    continue
                assert not m.error(), m.error()
                got[m.value()] += 1
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()
        assert got == want, f"confluent-kafka group read {sum(got.values())} of {len(want)}"
        committed = clients.group_offsets(trio, group)
        assert sum(o for o, _ in committed.values()) == len(want), committed

    # ---- f. FindCoordinator names the leader of the group's __consumer_offsets partition

    def test_find_coordinator_is_offsets_partition_leader(self, trio, observe):
        groups = [unique("coordinated") for _ in range(4)] + ["my-group", "grp-ü"]
        seen = {}
        for group in groups:
            answers = {}
            for i in trio.broker_ids:
                raw = trio.raw(i, timeout=TIMEOUT)
                try:
                    answers[i] = raw.find_coordinator(group)
                finally:
                    raw.close()
            offsets = partitions_of(trio, trio.broker_ids[0], "__consumer_offsets")
            partition = group_partition(group, len(offsets))
            leader = offsets[partition].leader_id
            for i, a in answers.items():
                assert (a.node_id, a.host, a.port) == (leader, "127.0.0.1", trio.node(leader).port), \
                    f"FindCoordinator({group!r}) at node {i}: {a}; __consumer_offsets-{partition} is led by {leader}"
            seen[group] = (partition, leader)
        observe("__consumer_offsets partitions, group -> (partition, coordinator)",
                f"{len(offsets)}, {seen}")

    # ---- g. controller failover under a stream of admin requests

    def test_controller_failover_under_admin_load(self, trio, observe):
        killed = trio.active_controller()
        stream = AdminStream(trio, unique("failover"))
        stream.start()
        try:
            wait_until(lambda: len(stream.acked()) >= 3, "3 topics created before the kill", TIMEOUT)
            t_kill = time.perf_counter()
            trio.kill_9(killed)
            try:
                first = wait_until(lambda: stream.first_ack_sent_after(t_kill),
                                   "a CreateTopics sent after the kill to succeed", 90, 0.1)
            except AssertionError as e:
                raise AssertionError(f"{e}; CreateTopics from the kill of node {killed} on: "
                                     f"{stream.summary(t_kill)}") from None
            recovery = first[2] - t_kill
            successor = trio.active_controller(exclude=(killed,), timeout=TIMEOUT)
            assert successor in trio.controller_ids and successor != killed
            for i in trio.live_broker_ids:  # every survivor agrees on the new leader
                assert trio.active_controller(via=i, exclude=(killed,), timeout=TIMEOUT) == successor
            n = len(stream.acked())
            wait_until(lambda: len(stream.acked()) >= n + 3, "3 more topics after failover", TIMEOUT)
            restart_s = trio.restart(killed, timeout=180)
            n = len(stream.acked())
            wait_until(lambda: len(stream.acked()) >= n + 3, "3 more topics after the restart", TIMEOUT)
        finally:
            stream.stop()
        acked = stream.acked()
        # Every acknowledged topic, everywhere, the restarted node included.
        trio.wait_topics_everywhere(acked, timeout=TIMEOUT, node_ids=trio.broker_ids)
        errors = collections.Counter(e for _, _, _, e in stream.results if e)
        observe("kill -9 of the active controller -> first CreateTopics (sent after the kill) answered",
                f"{recovery:.2f} s (node {killed} killed, node {successor} took over)")
        observe("CreateTopics from the kill on (runs of one outcome)", stream.summary(t_kill)[:600])
        observe("restarted node answered after", f"{restart_s:.2f} s")
        observe("CreateTopics during the outage", f"{len(acked)} acknowledged, "
                f"{sum(errors.values())} failed: {dict(errors)}")


class AdminStream(threading.Thread):
    """CreateTopics one after another from a thread (confluent-kafka AdminClient, every
    broker as bootstrap), each a new name (1 partition, RF 1), about 20 a second; records
    (name, sent, answered, error or None) for each.

    librdkafka sends CreateTopics to the `controller` of its cached Metadata, and a KRaft
    broker names a random live broker there (clients never reach the controllers; brokers
    forward). With the default refresh (5 min) a client whose cached "controller" was the
    killed node keeps timing out against it; refreshing Metadata every second
    (topic.metadata.refresh.interval.ms=1000) lets it move on once the dead broker is
    fenced, as an operator would configure it."""

    def __init__(self, c: Cluster, prefix: str):
        super().__init__(daemon=True, name="admin-stream")
        self.admin = AdminClient({"bootstrap.servers": c.bootstrap,
                                  "topic.metadata.refresh.interval.ms": 1000})
        self.prefix = prefix
        self.results: list[tuple[str, float, float, str | None]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self._halt.is_set():
            name = f"{self.prefix}-t{i}"
            i += 1
            sent = time.perf_counter()
            try:
                self.admin.create_topics([NewTopic(name, 1, 1)], request_timeout=15,
                                         operation_timeout=15)[name].result(40)
                error = None
            except Exception as e:  # noqa: BLE001  (recorded: the outage is the point)
                error = str(e.args[0].name() if e.args and hasattr(e.args[0], "name") else e)
            self.results.append((name, sent, time.perf_counter(), error))
            self._halt.wait(0.05)

    def acked(self) -> list[str]:
        return [name for name, _, _, e in list(self.results) if e is None]

    def first_ack_sent_after(self, t: float):
        return next((r for r in list(self.results) if r[1] >= t and r[3] is None), None)

    def summary(self, since: float) -> str:
        """The results answered from `since` on, as runs of the same outcome, times from `since`."""
        runs: list[list] = []
        for name, sent, done, error in [r for r in list(self.results) if r[2] >= since]:
            if runs and runs[-1][3] == error:
                runs[-1][1] += 1
                runs[-1][2] = done - since
            else:
                runs.append([sent - since, 1, done - since, error])
        return "; ".join(f"{n} x {e or 'ok'} sent {s:+.2f}..answered {d:+.2f} s" for s, n, d, e in runs)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)
        assert not self.is_alive(), "the admin stream did not stop"
        self.admin = None  # destroys the client: no reconnect attempts to stopped nodes later


# ======================================================================== five brokers, two racks

class TestFiveTwoRacks:

    # ---- b. rack-aware placement through a broker that is not the controller

    def test_rack_aware_placement(self, five, observe):
        controller = five.active_controller()
        via = next(i for i in (4, 5) if i != controller)  # broker-only: never the controller
        topic = unique("racks").replace("_", "-")
        created = kafka_tools.run("kafka-topics", "--bootstrap-server", five.node(via).bootstrap, "--create",
                                  "--topic", topic, "--partitions", "10", "--replication-factor", "3")
        assert created.code == 0 and f"Created topic {topic}." in created.stdout, created
        wait_fully_replicated(five, topic, 10, 3)
        described = kafka_tools.run("kafka-topics", "--bootstrap-server", five.bootstrap, "--describe",
                                    "--topic", topic)
        assert described.code == 0, described
        header, partitions = kafka_tools.parse_topic_description(described.stdout)
        assert header["PartitionCount"] == "10" and header["ReplicationFactor"] == "3", described
        assert sorted(int(p["Partition"]) for p in partitions) == list(range(10)), described
        rack = {n.id: n.rack for n in five.nodes.values()}
        leaders: collections.Counter = collections.Counter()
        replicas_on: collections.Counter = collections.Counter()
        for p in partitions:
            replicas = [int(x) for x in p["Replicas"].split(",")]
            isr = [int(x) for x in p["Isr"].split(",")]
            leader = int(p["Leader"])
            assert len(set(replicas)) == 3 and set(replicas) <= set(five.broker_ids), p
            assert {rack[r] for r in replicas} == {"rack-a", "rack-b"}, f"replicas in one rack: {p}"
            assert leader in replicas and set(isr) == set(replicas), p
            leaders[leader] += 1
            replicas_on.update(replicas)
        # Spread, as Kafka spreads it. Its striped placer alternates racks for the first
        # replica: each rack leads about half (4 to 6 of 10 in 50 creations checked), but
        # within the 2-broker rack one broker often leads 5 or 6 and the other none, so
        # a per-broker bound ("no broker leads more than 3") is not Kafka's behaviour.
        # Every broker holds replicas (4 to 10 of the 30 in those 50).
        by_rack = collections.Counter(rack[b] for b in leaders.elements())
        assert min(by_rack[r] for r in ("rack-a", "rack-b")) >= 3, \
            f"leadership not spread across racks: {dict(by_rack)}\n{described.stdout}"
        assert set(replicas_on) == set(five.broker_ids) and min(replicas_on.values()) >= 3, \
            f"replicas not spread over the brokers: {dict(replicas_on)}\n{described.stdout}"
        # Each broker keeps logs for its own replicas only (kafka-log-dirs: DescribeLogDirs).
        dirs = kafka_tools.run("kafka-log-dirs", "--bootstrap-server", five.bootstrap, "--describe",
                               "--broker-list", ",".join(map(str, five.broker_ids)), "--topic-list", topic)
        assert dirs.code == 0, dirs
        described_dirs = json.loads(next(line for line in dirs.stdout.splitlines() if line.startswith("{")))
        hosted = {b["broker"]: sorted(int(p["partition"].rsplit("-", 1)[1])
                                      for d in b["logDirs"] for p in d["partitions"])
                  for b in described_dirs["brokers"]}
        expected = {b: sorted(int(p["Partition"]) for p in partitions
                              if b in [int(x) for x in p["Replicas"].split(",")])
                    for b in five.broker_ids}
        assert hosted == expected, f"logs per broker {hosted}, replicas per broker {expected}"
        observe("kafka-topics --describe (10 partitions, RF 3, 2 racks)",
                f"leaders per broker {dict(sorted(leaders.items()))}, per rack {dict(sorted(by_rack.items()))}, "
                f"replicas per broker {dict(sorted(replicas_on.items()))}; " +
                " | ".join(f"{p['Partition']}: L{p['Leader']} R{p['Replicas']} I{p['Isr']}" for p in partitions))

    # ---- h. SIGTERM: controlled shutdown moves leadership away before the process exits

    def test_sigterm_moves_leadership_before_exit(self, five, observe):
        topic = unique("controlled")
        # Placed by hand: the controller's random start may give neither broker-only node a lead.
        ids = sorted(five.broker_ids)
        create(five, topic, 10, 3, assignment=[[ids[(p + k) % len(ids)] for k in range(3)] for p in range(10)])
        ps = wait_fully_replicated(five, topic, 10, 3)
        led = collections.Counter(p.leader_id for p in ps.values())
        victim = max((4, 5), key=lambda i: led[i])  # a broker-only node: the quorum is untouched
        assert led[victim] >= 1, f"neither broker-only node leads a partition: {dict(led)}"
        watcher = next(i for i in five.broker_ids if i != victim)
        seen: list[tuple[float, int, int]] = []  # (time, partitions victim leads, ISRs it is in)
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    now = partitions_of(five, watcher, topic)
                    seen.append((time.perf_counter(), sum(p.leader_id == victim for p in now.values()),
                                 sum(victim in p.isr_nodes for p in now.values())))
                except Exception:  # noqa: BLE001
                    pass
                stop.wait(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            wait_until(lambda: seen, "the watcher's first look", 10, 0.05)
            t_term = time.perf_counter()
            code = five.stop_node(victim, timeout=120)
            t_exit = time.perf_counter()
            time.sleep(1.0)
        finally:
            stop.set()
            thread.join(10)
        assert code in (0, 143), f"exit code {code} after SIGTERM"
        moved = next((t for t, leads, _ in seen if t >= t_term and leads == 0), None)
        assert moved is not None, f"node {victim} still leads partitions after its exit: {seen[-3:]}"
        # A crash would leave its partitions leaderless until broker.session.timeout.ms (9 s).
        assert moved <= t_exit + 1.0, (f"leadership left node {victim} {moved - t_exit:.2f} s after "
                                       f"it exited: not a controlled shutdown")
        after = partitions_of(five, watcher, topic)
        for p in after.values():
            assert p.leader_id not in (victim, -1) and victim not in p.isr_nodes, p
        left_isr = next((t for t, _, in_isr in seen if t >= t_term and in_isr == 0), None)
        observe("SIGTERM of a broker", f"node {victim} led {led[victim]} of 10; leaders moved "
                f"{moved - t_term:.2f} s after SIGTERM, out of every ISR after "
                f"{(left_isr or float('nan')) - t_term:.2f} s, exited after {t_exit - t_term:.2f} s "
                f"(code {code})")

    # ---- c'. with a broker down: the bound is the registered brokers, not the live ones

    def test_replication_factor_counts_registered_brokers(self, five, observe):
        """Runs after the SIGTERM case: one broker is stopped (registered, fenced). Kafka
        accepts RF = registered brokers, placing a replica on the stopped one (outside the
        ISR), and refuses one more."""
        down = [i for i in five.broker_ids if not five.node(i).alive]
        assert len(down) == 1, f"expected one stopped broker (the SIGTERM case's), not {down}"
        five.wait_brokers(five.live_broker_ids)  # fenced: no longer in anyone's Metadata
        registered = len(five.broker_ids)
        name = unique("rf-registered")
        create(five, name, 1, registered)
        (p,) = wait_until(lambda: [p for p in partitions_of(five, five.live_broker_ids[0], name).values()
                                   if p.leader_id >= 0 and set(p.isr_nodes) == set(five.live_broker_ids)],
                          f"{name}: a leader and the {registered - 1} live brokers in sync", TIMEOUT)
        assert sorted(p.replica_nodes) == five.broker_ids, p
        error = refused_replication_factor(five, unique("rf-over"), registered + 1)
        assert error.str() == (
            f"Unable to replicate the partition {registered + 1} time(s): The target replication factor "
            f"of {registered + 1} cannot be reached because only {registered} broker(s) are registered or "
            f"some brokers have all their log directories cordoned.")
        observe(f"RF {registered} with node {down[0]} stopped", f"accepted: replicas {p.replica_nodes}, "
                f"isr {p.isr_nodes}; RF {registered + 1}: {error.str()}")

    # ---- i. kafka-cluster unregister: a stopped broker leaves the registry, and comes back

    def test_unregister_a_stopped_broker(self, five, observe):
        """Runs after the cases above: one broker is stopped, still registered (fenced)."""
        (down,) = [i for i in five.broker_ids if not five.node(i).alive]
        unknown = kafka_tools.run("kafka-cluster", "unregister", "--bootstrap-server", five.bootstrap, "--id", "99")
        assert unknown.code != 0, unknown
        assert "Broker ID 99 is not currently registered" in unknown.stdout + unknown.stderr, unknown
        done = kafka_tools.run("kafka-cluster", "unregister", "--bootstrap-server", five.bootstrap,
                               "--id", str(down))
        assert done.code == 0 and f"Broker {down} is no longer registered." in done.stdout, done
        # Placement counts registered brokers: one fewer now.
        registered = len(five.broker_ids) - 1
        error = refused_replication_factor(five, unique("rf-unregistered"), registered + 1)
        assert f"only {registered} broker(s) are registered" in error.str(), error.str()
        # Started again, it registers again: every broker counts.
        five.restart(down)
        back = unique("rf-back")
        create(five, back, 1, len(five.broker_ids))
        (p,) = partitions_of(five, down, back).values()
        assert sorted(p.replica_nodes) == five.broker_ids, p
        observe("kafka-cluster unregister", f"unknown id: {unknown.stderr.strip().splitlines()[-1:] or unknown.stdout}; "
                f"node {down}: {done.stdout.strip()}; then RF {registered + 1}: {error.str()}")


    # ---- n. a new leader epoch: clients that send it are served, OffsetForLeaderEpoch answers

    def test_new_leader_epoch_is_the_logs(self, five, observe):
        """Runs after the unregister case (every broker up again). A partition led by node 4
        with nothing written gets a new leader when node 4 stops (SIGTERM): librdkafka's
        producer and consumer, which send the leader epoch Metadata gives (KIP-320), are
        served by the new leader, and OffsetForLeaderEpoch answers for both epochs."""
        from kafka.protocol.consumer.offsets import OffsetForLeaderEpochRequest
        topic = unique("epochs")
        admin = ck_admin(five)
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[4, 1, 2]])],
                            request_timeout=30)[topic].result(TIMEOUT)
        (first,) = wait_fully_replicated(five, topic, 1, 3).values()
        # Node 4 registered again in the case before: it is live, so it leads (a broker
        # fenced for a silence from before its registration would not).
        assert (first.leader_id, first.leader_epoch) == (4, 0), first
        five.stop_node(4)
        (p,) = wait_until(lambda: [p for p in partitions_of(five, 1, topic).values() if p.leader_id in (1, 2)],
                          f"{topic}: a leader other than node 4", TIMEOUT)
        leader, epoch = p.leader_id, p.leader_epoch
        assert epoch >= 1, p
        values = [f"e-{i}".encode() for i in range(10)]
        clients.send_ck(five, topic, [clients.Msg(None, v) for v in values], acks="all")
        consumer = confluent_kafka.Consumer({"bootstrap.servers": five.bootstrap, "group.id": unique("epochs"),
                                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        got = []
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + TIMEOUT
            while len(got) < len(values) and time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is not None and not m.error():
                    got.append((m.value(), m.leader_epoch()))
        finally:
            consumer.close()
        assert [v for v, _ in got] == values, f"read {len(got)} of {len(values)}: {got}"
        assert {e for _, e in got} == {epoch}, f"records' leader epochs {got}, Metadata says {epoch}"
        T = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
        P = T.OffsetForLeaderPartition

        def end_of(asked: int):
            r = five.request(leader, OffsetForLeaderEpochRequest(replica_id=-1, topics=[T(topic=topic, partitions=[
                P(partition=0, current_leader_epoch=epoch, leader_epoch=asked)])]))
            (x,) = r.topics[0].partitions
            assert x.error_code == 0, x
            return x.leader_epoch, x.end_offset
        assert end_of(epoch) == (epoch, 10)
        assert end_of(epoch - 1) == (epoch - 1, 0), "the old epoch ends where the new one began"
        # KIP-320 for consumers: a Fetch (v12+) whose last fetched epoch is the old one, from an
        # offset past where that epoch ended, is told where its history diverged.
        from kafka.protocol.consumer.fetch import FetchRequest
        topic_id = five.metadata(leader, [topic]).topics[0].topic_id
        FT = FetchRequest.FetchTopic
        FP = FT.FetchPartition
        fetch = FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                             session_id=0, session_epoch=-1, rack_id="",
                             topics=[FT(topic=topic, topic_id=topic_id, partitions=[
                                 FP(partition=0, current_leader_epoch=epoch, fetch_offset=5,
                                    last_fetched_epoch=epoch - 1, log_start_offset=-1,
                                    partition_max_bytes=1 << 20)])],
                             forgotten_topics_data=[])
        answer = five.request(leader, fetch, version=12)
        (fp,) = answer.responses[0].partitions
        diverging = (fp.error_code, fp.diverging_epoch.epoch, fp.diverging_epoch.end_offset)
        assert diverging == (0, epoch - 1, 0), f"{diverging}: {fp}"
        five.restart(4)
        observe("a new leader epoch", f"node 4 stopped: node {leader} leads in epoch {epoch}; 10 records "
                f"produced and consumed by librdkafka carry epoch {epoch}; Fetch v12 with last fetched epoch "
                f"{epoch - 1} at offset 5: DivergingEpoch {diverging[1:]}; OffsetForLeaderEpoch "
                f"{epoch} -> {end_of(epoch)}, {epoch - 1} -> {end_of(epoch - 1)}")


# ======================================================================== a dynamic quorum (KIP-853)

DYNAMIC = [NodeSpec(1, "broker,controller", "rack-a"),
           NodeSpec(2, "broker,controller", "rack-b"),
           NodeSpec(3, "broker,controller", "rack-c"),
           NodeSpec(4, "broker", "rack-a")]


@pytest.fixture(scope="class")
def dynamic(impl, tmp_path_factory):
    """DYNAMIC with controller.quorum.bootstrap.servers, formatted with --initial-controllers
    (controllers) and --no-initial-controllers (node 4)."""
    with running(impl, tmp_path_factory, DYNAMIC, "dynamic", dynamic_quorum=True) as c:
        yield c


def voters_of(status: str) -> list[dict]:
    """CurrentVoters of `kafka-metadata-quorum describe --status`, parsed."""
    line = next(x for x in status.splitlines() if x.startswith("CurrentVoters:"))
    return json.loads(line.split(":", 1)[1])


class TestDynamicQuorum:

    # ---- j. the voters are the initial controllers, with their directory ids

    def test_voters_are_the_initial_controllers(self, dynamic, observe):
        status = metadata_quorum(dynamic.node(4).bootstrap, "--status").stdout
        voters = voters_of(status)
        assert sorted(v["id"] for v in voters) == dynamic.controller_ids, status
        for v in voters:
            assert v.get("directoryId") == dynamic.directory_ids[v["id"]], status
            assert v["endpoints"] == [f"CONTROLLER://127.0.0.1:{dynamic.node(v['id']).controller_port}"], status
        # The broker-only node observes, with its own directory id.
        observers = json.loads(next(x for x in status.splitlines()
                                    if x.startswith("CurrentObservers:")).split(":", 1)[1])
        assert observers == [{"id": 4, "directoryId": dynamic.meta_properties(4)["directory.id"]}], status
        dynamic.wait_brokers(dynamic.broker_ids)
        observe("describe --status, dynamic quorum", " | ".join(status.strip().splitlines()))

    # ---- k. a broker that knows only controller.quorum.bootstrap.servers forwards, across a failover

    def test_broker_only_node_forwards_across_a_failover(self, dynamic, observe):
        first = unique("dynamic-before")
        create(dynamic, first, 3, 3, bootstrap=dynamic.node(4).bootstrap)
        wait_fully_replicated(dynamic, first, 3, 3)
        leader = dynamic.active_controller()
        dynamic.kill_9(leader)
        t0 = time.perf_counter()
        second = unique("dynamic-after")
        create(dynamic, second, 1, 2, bootstrap=dynamic.node(4).bootstrap)
        answered = time.perf_counter() - t0
        new_leader = dynamic.active_controller(exclude=(leader,))
        assert new_leader != leader
        dynamic.restart(leader)
        dynamic.wait_topics_everywhere([first, second])
        observe("dynamic quorum failover", f"node {leader} killed, node {new_leader} leads; CreateTopics "
                f"through broker-only node 4 answered {answered:.2f} s after the kill")


STANDALONE = [NodeSpec(1, "broker,controller"), NodeSpec(2, "broker")]


class TestStandaloneController:

    # ---- l. `format --standalone`: a quorum of one, the rest join as brokers

    def test_standalone_controller_and_a_broker(self, impl, tmp_path_factory, observe):
        with running(impl, tmp_path_factory, STANDALONE, "standalone", dynamic_quorum=True) as c:
            status = metadata_quorum(c.node(2).bootstrap, "--status").stdout
            (voter,) = voters_of(status)
            assert voter["id"] == 1 and voter.get("directoryId") == c.meta_properties(1)["directory.id"], status
            topic = unique("standalone")
            create(c, topic, 2, 2, bootstrap=c.node(2).bootstrap)
            wait_fully_replicated(c, topic, 2, 2)
            observe("describe --status, --standalone", " | ".join(status.strip().splitlines()))


# ======================================================================== catching up from a snapshot

class TestSnapshotCatchUp:

    # ---- m. a node that missed more than the log keeps catches up (Sluice: from a snapshot)

    def test_restarted_node_catches_up_past_the_log(self, impl, tmp_path_factory, observe):
        from kafka.protocol.admin import CreateTopicsRequest
        small = {"metadata.log.max.record.bytes.between.snapshots": "4096"}
        with running(impl, tmp_path_factory, THREE, "snapshots", extra_config=small) as c:
            leader = c.active_controller()
            away = next(i for i in c.node_ids if i != leader)
            c.kill_9(away)
            via = next(i for i in c.node_ids if i not in (away,))
            names = [unique("snap") for _ in range(150)]
            conn = c.raw(via, timeout=30)
            T = CreateTopicsRequest.CreatableTopic
            try:
                for name in names:  # one request (one metadata log entry) each
                    r = conn.call(CreateTopicsRequest(
                        topics=[T(name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
                        timeout_ms=30000, validate_only=False))
                    assert r.topics[0].error_code == 0, r
            finally:
                conn.close()
            if impl == "sluice":
                # Snapshots are built in the background: under load the leader may not have
                # purged its log yet, and the follower would catch up from the log instead.
                purged = c.node(c.active_controller()).data_dir / "__cluster_metadata-0" / "purged.json"
                wait_until(purged.exists, "the active controller purged its log up to a snapshot", TIMEOUT)
            t0 = time.perf_counter()
            c.restart(away)
            c.wait_topics_everywhere(names, node_ids=[away])
            caught_up = time.perf_counter() - t0
            how = ""
            if impl == "sluice":
                # Usually from a snapshot; in about one run of ten here the node caught up from
                # log entries although the leader had purged past its log end (not understood
                # yet, noted in the issue): the case asserts the catch-up, and says which way.
                log = c.log_file(away).read_text(errors="replace")
                installed = "installed a metadata snapshot from the leader" in log
                how = " (installed a snapshot from the leader)" if installed else \
                    f" (from log entries; leader purged to {purged.read_text()[-40:]!r})"
            observe("catch-up past the log", f"node {away} missed 150 CreateTopics; restarted, it listed "
                    f"them all after {caught_up:.2f} s{how}")


# ======================================================================== replication (ISR, acks=all, failover)

# Short bounds so that the cases see the ISR move within seconds; the broker session is
# longer than the lag bound, so a paused follower leaves the ISR for lagging, not fencing.
REPLICATION = {"replica.lag.time.max.ms": "2000", "broker.session.timeout.ms": "6000",
               "broker.heartbeat.interval.ms": "1000",
               "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
               # test_preferred_leader_election moves leaders by hand (TestLeaderRebalance: by itself)
               "auto.leader.rebalance.enable": "false",
               "log.cleaner.backoff.ms": "500"}
RACK_OF = {spec.node_id: spec.rack for spec in THREE}
NOT_ENOUGH_REPLICAS = 19


@pytest.fixture(scope="class")
def repl(impl, tmp_path_factory):
    """THREE with REPLICATION's bounds, started once per class (and implementation)."""
    with running(impl, tmp_path_factory, THREE, "replication", extra_config=REPLICATION) as c:
        yield c


def leader_of(c: Cluster, topic: str, partition: int, exclude: tuple[int, ...] = ()) -> object:
    """The partition's Metadata entry, once a live broker other than `exclude` leads it."""
    via = next(i for i in c.live_broker_ids if i not in exclude)
    return wait_until(lambda: next((p for i, p in partitions_of(c, via, topic).items()
                                    if i == partition and p.leader_id >= 0 and p.leader_id not in exclude),
                                   None),
                      f"{topic}-{partition}: a leader other than {exclude}", TIMEOUT, 0.1)


def lead_away_from_preferred(c: Cluster, prefix: str):
    """A topic of one partition whose preferred replica (not the controller) was killed and
    restarted, with "one" written before: another replica leads it, every replica in sync.
    Returns (topic, preferred, second replica, the Metadata entry once it moved)."""
    topic = unique(prefix)
    controller = c.active_controller()
    preferred, second = [i for i in (1, 2, 3) if i != controller]
    admin = ck_admin(c)
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[preferred, second, controller]])],
                        request_timeout=30)[topic].result(TIMEOUT)
    wait_fully_replicated(c, topic, 1, 3)
    clients.send_ck(c, topic, [clients.Msg(None, b"one")], acks="all")
    c.kill_9(preferred)
    moved = leader_of(c, topic, 0, exclude=(preferred,))
    c.restart(preferred)
    wait_fully_replicated(c, topic, 1, 3)
    return topic, preferred, second, moved


def isr_of(c: Cluster, topic: str, partition: int) -> set[int]:
    via = c.active_controller()
    return set(partitions_of(c, via, topic)[partition].isr_nodes)


def read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[tuple[int, int], bytes]:
    """Every record of the topic (read_committed), by (partition, offset), with librdkafka."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    got = {}
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + TIMEOUT
        while len(got) < expected and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                got[(m.partition(), m.offset())] = m.value()
    finally:
        consumer.close()
    return got


class TestReplication:

    # ---- n. acks=all records are on every in-sync replica: none is lost when the leader dies

    def test_acked_records_survive_the_leaders_kill(self, repl, observe):
        topic = unique("replicated")
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 3, 3)
        producer = confluent_kafka.Producer({"bootstrap.servers": repl.bootstrap, "acks": "all",
                                             "enable.idempotence": True, "linger.ms": 5})
        acked: dict[bytes, tuple[int, int]] = {}
        failed = []
        ack_times = []

        def on_delivery(err, msg):
            if err is None:
                acked[msg.value()] = (msg.partition(), msg.offset())
                ack_times.append(time.monotonic())
            else:
                failed.append((msg.value(), err))

        def send(first: int, count: int):
            for i in range(first, first + count):
                producer.produce(topic, key=str(i).encode(), value=f"r-{i}".encode(), on_delivery=on_delivery)
                producer.poll(0)
                if i % 100 == 0:
                    time.sleep(0.01)

        send(0, 2000)
        producer.flush(TIMEOUT)
        victim = partitions_of(repl, repl.active_controller(), topic)[0].leader_id
        killed_at = time.monotonic()
        repl.kill_9(victim)
        send(2000, 1000)  # retried by the producer across the failover
        producer.flush(TIMEOUT)
        new = leader_of(repl, topic, 0, exclude=(victim,))
        after = [t for t in ack_times if t > killed_at]
        assert not failed, f"{len(failed)} deliveries failed, first {failed[:3]}"
        assert len(acked) == 3000
        got = read_all(repl.bootstrap_of([i for i in repl.node_ids if i != victim]), topic, 3, len(acked))
        lost = [v for v, at in acked.items() if got.get(at) != v]
        assert not lost, f"{len(lost)} acknowledged records not where they were acknowledged: {lost[:5]}"
        assert len(got) == len(acked), f"{len(got)} records stored, {len(acked)} acknowledged (duplicates?)"
        repl.restart(victim)
        t0 = time.monotonic()
        wait_fully_replicated(repl, topic, 3, 3)
        observe("acks=all across a leader's kill -9",
                f"3,000 idempotent acks=all records, leader {victim} of partition 0 killed after 2,000: "
                f"new leader {new.leader_id} (epoch {new.leader_epoch}), 0 lost, 0 duplicated; first ack "
                f"after the kill +{(min(after) - killed_at) if after else float('nan'):.2f} s; the restarted "
                f"node back in every ISR {time.monotonic() - t0:.2f} s after it answered")

    # ---- o. min.insync.replicas: acks=all refused with too few in-sync replicas, acks=1 served

    def test_min_insync_replicas_refuses_acks_all(self, repl, observe):
        topic = unique("min-isr")
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                                      config={"min.insync.replicas": "3"})],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 1, 3)
        clients.send_ck(repl, topic, [clients.Msg(None, b"before")], acks="all")
        leader = leader_of(repl, topic, 0).leader_id
        away = next(i for i in (1, 2, 3) if i != leader and i != repl.active_controller())
        repl.kill_9(away)
        wait_until(lambda: isr_of(repl, topic, 0) == {1, 2, 3} - {away}, f"{topic}: ISR without {away}",
                   TIMEOUT, 0.2)
        p, _ = raw_produce(repl, leader, topic, 0, 8)
        refused = (p.error_code, p.error_message if hasattr(p, "error_message") else None)
        assert p.error_code == NOT_ENOUGH_REPLICAS, p
        acks1 = clients.send_ck(repl, topic, [clients.Msg(None, b"acks=1")], acks="1")
        assert acks1[0][1] is not None and acks1[0][1] >= 1, acks1
        repl.restart(away)
        wait_fully_replicated(repl, topic, 1, 3)
        clients.send_ck(repl, topic, [clients.Msg(None, b"after")], acks="all")
        got = read_all(repl.bootstrap, topic, 1, 3)
        assert sorted(got.values()) == sorted([b"before", b"acks=1", b"after"]), got
        observe("min.insync.replicas=3 with 2 in sync", f"acks=all Produce v8 -> {refused}; acks=1 served; "
                f"node {away} back in the ISR, acks=all served again")

    # ---- p. a follower that stops fetching leaves the ISR, and joins it again once caught up

    def test_a_paused_follower_leaves_and_rejoins_the_isr(self, repl, observe):
        topic = unique("lagging")
        admin = ck_admin(repl)
        controller = repl.active_controller()
        others = [i for i in (1, 2, 3) if i != controller]
        paused, leader = others[0], controller
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[leader, paused, others[1]]],
                                      config={"min.insync.replicas": "2"})],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 1, 3)
        repl.sigstop(paused)
        t0 = time.monotonic()
        try:
            # Writes keep coming: the paused follower falls behind.
            producer = confluent_kafka.Producer({"bootstrap.servers": repl.bootstrap_of([leader]), "acks": "all",
                                                 "enable.idempotence": True})
            shrunk = None
            sent = 0
            while shrunk is None and time.monotonic() - t0 < 5.5:
                producer.produce(topic, value=f"w-{sent}".encode())
                sent += 1
                producer.poll(0.05)
                if paused not in isr_of(repl, topic, 0):
                    shrunk = time.monotonic() - t0
            assert shrunk is not None, f"node {paused} still in the ISR {isr_of(repl, topic, 0)} after 5.5 s"
            assert producer.flush(TIMEOUT) == 0
        finally:
            repl.sigcont(paused)
        t1 = time.monotonic()
        wait_until(lambda: paused in isr_of(repl, topic, 0), f"{topic}: node {paused} back in the ISR",
                   TIMEOUT, 0.1)
        rejoined = time.monotonic() - t1
        got = read_all(repl.bootstrap, topic, 1, sent)
        assert len(got) == sent, f"read {len(got)} of {sent}"
        observe("a paused follower (SIGSTOP)", f"replica.lag.time.max.ms=2000: out of the ISR {shrunk:.2f} s "
                f"after SIGSTOP (acks=all writes kept being served), back {rejoined:.2f} s after SIGCONT")

    # ---- q. committed offsets live in the replicated __consumer_offsets: the coordinator's kill loses none

    def test_committed_offsets_survive_the_coordinators_kill(self, repl, observe):
        topic = unique("offsets")
        create(repl, topic, 3, 3)
        wait_fully_replicated(repl, topic, 3, 3)
        group = unique("durable")
        consumer = confluent_kafka.Consumer({"bootstrap.servers": repl.bootstrap, "group.id": group,
                                             "enable.auto.commit": False})
        try:
            tps = [confluent_kafka.TopicPartition(topic, p, 40 + p) for p in range(3)]
            consumer.commit(offsets=tps, asynchronous=False)
        finally:
            consumer.close()
        offsets_partitions = len(partitions_of(repl, repl.active_controller(), "__consumer_offsets"))
        coordinator = partitions_of(repl, repl.active_controller(),
                                    "__consumer_offsets")[group_partition(group, offsets_partitions)].leader_id
        repl.kill_9(coordinator)
        t0 = time.monotonic()
        live = [i for i in repl.node_ids if i != coordinator]

        def fetched():
            c = confluent_kafka.Consumer({"bootstrap.servers": repl.bootstrap_of(live), "group.id": group,
                                          "enable.auto.commit": False})
            try:
                tps = c.committed([confluent_kafka.TopicPartition(topic, p) for p in range(3)], timeout=10)
            except confluent_kafka.KafkaException:
                return None
            else:
                # Not answered yet (the coordinator is moving): per-partition errors.
                return None if any(tp.error for tp in tps) else [tp.offset for tp in tps]
            finally:
                c.close()
        offsets = wait_until(fetched, f"group {group}: committed offsets from a new coordinator", TIMEOUT, 0.5)
        elapsed = time.monotonic() - t0
        repl.restart(coordinator)
        assert offsets == [40, 41, 42], offsets
        observe("committed offsets across the coordinator's kill -9",
                f"coordinator {coordinator} killed; offsets [40, 41, 42] fetched from the new one after "
                f"{elapsed:.2f} s")

    # ---- r. kafka-leader-election gives a partition back to its preferred replica

    def test_preferred_leader_election(self, repl, observe):
        topic, preferred, second, moved = lead_away_from_preferred(repl, "preferred")
        assert partitions_of(repl, second, topic)[0].leader_id == moved.leader_id, "moved back by itself"

        def elect():
            return kafka_tools.run("kafka-leader-election", "--bootstrap-server", repl.bootstrap,
                                   "--election-type", "PREFERRED", "--topic", topic, "--partition", "0")
        first = elect()
        assert first.code == 0, first
        back = wait_until(lambda: partitions_of(repl, second, topic)[0].leader_id == preferred or None,
                          f"{topic}: node {preferred} leads again", TIMEOUT, 0.1)
        assert back
        again = elect()
        clients.send_ck(repl, topic, [clients.Msg(None, b"two")], acks="all")
        got = read_all(repl.bootstrap, topic, 1, 2)
        assert sorted(got.values()) == [b"one", b"two"], got
        observe("kafka-leader-election --election-type PREFERRED",
                f"after node {preferred}'s return: {first.stdout.strip()!r} (exit {first.code}); again: "
                f"{(again.stdout + again.stderr).strip()[-200:]!r} (exit {again.code})")

    # ---- s. KIP-392: a consumer with client.rack reads from the replica in its rack

    def test_a_consumer_reads_from_the_replica_in_its_rack(self, repl, observe):
        """With RackAwareReplicaSelector, a consumer whose client.rack is a follower's reads
        from that follower: once it has been sent there, it goes on reading while the leader
        is frozen (SIGSTOP), which a consumer of the leader could not."""
        topic = unique("nearest")
        controller = repl.active_controller()
        leader, follower = [i for i in (1, 2, 3) if i != controller] [:2]
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[leader, follower, controller]])],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 1, 3)
        assert leader_of(repl, topic, 0).leader_id == leader
        clients.send_ck(repl, topic, [clients.Msg(None, b"a-%d" % i) for i in range(100)], acks="all")
        consumer = confluent_kafka.Consumer({"bootstrap.servers": repl.bootstrap, "group.id": unique("near"),
                                             "enable.auto.commit": False, "client.rack": RACK_OF[follower]})
        got = []

        def poll_until(n: int, timeout: float) -> float:
            t0 = time.monotonic()
            deadline = t0 + timeout
            while len(got) < n and time.monotonic() < deadline:
                m = consumer.poll(0.2)
                if m is not None and not m.error():
                    got.append(m.value())
            return time.monotonic() - t0

        try:
            consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
            poll_until(100, TIMEOUT)
            assert len(got) == 100, f"{len(got)} of the first 100 records read"
            # Paused: nothing of the next batch is fetched (librdkafka prefetches) until the
            # leader is frozen.
            consumer.pause([confluent_kafka.TopicPartition(topic, 0)])
            clients.send_ck(repl, topic, [clients.Msg(None, b"b-%d" % i) for i in range(100)], acks="all")
            time.sleep(2)  # the follower learns the new high watermark on its next fetch
            repl.sigstop(leader)
            try:
                consumer.resume([confluent_kafka.TopicPartition(topic, 0, 100)])
                took = poll_until(200, 20)
            finally:
                repl.sigcont(leader)
        finally:
            consumer.close()
        assert got == [b"a-%d" % i for i in range(100)] + [b"b-%d" % i for i in range(100)], \
            f"{len(got)} records read; with the leader frozen: {got[100:103]}"
        observe("KIP-392 fetch from the nearest replica",
                f"RackAwareReplicaSelector, leader {leader} ({RACK_OF[leader]}), consumer client.rack="
                f"{RACK_OF[follower]}: 100 records read, leader SIGSTOPped, the next 100 read from follower "
                f"{follower} in {took:.2f} s")


    # ---- s2. transaction version 2 across brokers: leaders add partitions at the coordinator

    def test_java_producer_transaction_version_2_across_brokers(self, repl, observe):
        """Kafka 4.4's Java producer (compat/java/transactions/TxnSteps.java) on transaction
        version 2 writes to three partitions led by three brokers: each leader adds its
        partition to the transaction at the coordinator (AddPartitionsToTxn v5 from broker
        to broker when that is another node), the group coordinator adds the offsets
        partition (TxnOffsetCommit v5), and every end bumps the epoch. read_committed
        readers see the committed transaction only; the offsets count with it."""
        topic, group = unique("txn-v2"), unique("txn-v2-group")
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, num_partitions=3,
                                      replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 3, 3)
        classes = kafka_tools.compile_java(kafka_tools.HERE / "transactions" / "TxnSteps.java",
                                           kafka_tools.JARS_DIR.parent / "java-apps")
        sends = [f"send:{topic}:{p}:{prefix}{p}" for prefix in ("c", "a") for p in range(3)]
        steps = ["init", "state", "begin", *sends[:3], f"offsets:{group}:{topic}:0:5", "commit", "state",
                 "begin", *sends[3:], f"offsets:{group}:{topic}:1:7", "abort", "state"]
        r = subprocess.run(["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                            f"-Dlog4j2.configurationFile={kafka_tools.LOG4J2_CONFIG}",
                            "-cp", f"{classes}:{kafka_tools.JARS_DIR / '*'}", "TxnSteps", repl.bootstrap,
                            unique("txn-v2-id"), *steps], capture_output=True, text=True, timeout=120)
        lines = r.stdout.splitlines()
        assert lines[-1:] == ["EXIT"] and not [x for x in lines if x.startswith("ERROR")], r.stdout + r.stderr
        states = [x.split() for x in lines if x.startswith("STATE")]
        assert [s[1] for s in states] == ["tv2=true"] * 3, states
        epochs = [int(s[3].split("=")[1]) for s in states]
        assert [e - epochs[0] for e in epochs] == [0, 1, 2], states
        got = read_all(repl.bootstrap, topic, 3, 3)
        assert sorted(got.values()) == [b"c0", b"c1", b"c2"], got
        offsets = {k: v[0] for k, v in clients.group_offsets(repl, group).items()}
        assert offsets == {(topic, 0): 5}, offsets
        observe("transaction version 2 across brokers",
                f"Java producer, 3 partitions led by nodes 1, 2, 3: epochs {epochs}, 3 committed records read")


    # ---- u. share groups: delivery state kept by the share coordinator across the leader's kill

    def test_share_group_state_survives_the_leaders_kill(self, repl, observe):
        """A share group (KIP-932, Kafka's console share consumer) accepts every record of a
        partition whose leader is then killed: the new leader loads the group's delivery
        state from the share coordinator (`__share_group_state`, replicated, reached from
        broker to broker), so nothing accepted is delivered again, and records produced
        afterwards are delivered once."""
        topic, group = unique("share-failover"), unique("share-failover-group")
        create(repl, topic, 1, 3)
        wait_fully_replicated(repl, topic, 1, 3)
        r = kafka_tools.run("kafka-configs", "--bootstrap-server", repl.bootstrap, "--alter", "--entity-type",
                            "groups", "--entity-name", group, "--add-config", "share.auto.offset.reset=earliest")
        assert r.code == 0, str(r)

        def produce(bootstrap: str, prefix: str, n: int) -> list[str]:
            producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
            values = [f"{prefix}-{i}" for i in range(n)]
            for v in values:
                producer.produce(topic, value=v.encode())
            assert producer.flush(TIMEOUT) == 0
            return values

        def share_consume(bootstrap: str, max_messages: int | None = None, timeout_ms: int = 10000) -> list[str]:
            args = ["--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
                    "--timeout-ms", str(timeout_ms)]
            if max_messages is not None:
                args += ["--max-messages", str(max_messages)]
            r = kafka_tools.run("kafka-console-share-consumer", *args, timeout=120)
            assert r.code == 0, str(r)
            # The tool ends with status 0 when poll throws; its log says why (a
            # TimeoutException is its idle timeout, which the second read expects).
            ended = re.search(r"terminating consumer process:.*\n\s*(\S+)", r.stderr)
            assert ended is None or ended.group(1).endswith(".TimeoutException"), r.stderr
            return [line for line in r.stdout.splitlines() if line]

        first = produce(repl.bootstrap, "s", 10)
        # The first share fetch also makes `__share_group_state` (50 partitions, RF 3): on a
        # loaded machine that alone can pass the console consumer's idle timeout.
        assert sorted(share_consume(repl.bootstrap, 10, timeout_ms=60000)) == sorted(first)
        victim = partitions_of(repl, repl.active_controller(), topic)[0].leader_id
        repl.kill_9(victim)
        t0 = time.monotonic()
        new = leader_of(repl, topic, 0, exclude=(victim,))
        live = repl.bootstrap_of([i for i in repl.node_ids if i != victim])
        try:
            assert share_consume(live, timeout_ms=8000) == [], "accepted records delivered again"
            more = produce(live, "t", 3)
            assert sorted(share_consume(live, 3, timeout_ms=60000)) == sorted(more)
            elapsed = time.monotonic() - t0
            # The group's coordinator describes the state the share coordinator keeps.
            r = kafka_tools.run("kafka-share-groups", "--bootstrap-server", live, "--describe", "--group", group)
            assert r.code == 0, str(r)
            rows = kafka_tools.parse_table(r.stdout)
            assert [(x["PARTITION"], x["LAG"]) for x in rows] == [("0", "0")], r.stdout
        finally:
            repl.restart(victim)
        observe("share-group state across the leader's kill -9",
                f"10 records accepted, leader {victim} killed: new leader {new.leader_id} delivered none of "
                f"them again and the 3 produced after, once ({elapsed:.1f} s with two console share consumers)")

    def test_share_group_state_follows_leadership_away_and_back(self, repl, observe, tmp_path):
        """One console share consumer reads on while leadership of the group's partition moves
        to another replica and back, with no process restarted (kafka-reassign-partitions to
        reorder the replicas, then kafka-leader-election): each leader hands out records from
        the delivery state the share coordinator keeps, so records accepted under the second
        leader are not delivered again when the first one leads once more."""
        topic, group = unique("share-moves"), unique("share-moves-group")
        controller = repl.active_controller()
        first, second = [i for i in repl.node_ids if i != controller][:2]
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[first, second, controller]])],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 1, 3)
        r = kafka_tools.run("kafka-configs", "--bootstrap-server", repl.bootstrap, "--alter", "--entity-type",
                            "groups", "--entity-name", group, "--add-config", "share.auto.offset.reset=earliest")
        assert r.code == 0, str(r)

        def produce(prefix: str, n: int) -> list[str]:
            producer = confluent_kafka.Producer({"bootstrap.servers": repl.bootstrap, "acks": "all"})
            values = [f"{prefix}-{i}" for i in range(n)]
            for v in values:
                producer.produce(topic, value=v.encode())
            assert producer.flush(TIMEOUT) == 0
            return values

        def lead(node: int, others: list[int]) -> None:
            plan = tmp_path / f"to-{node}.json"
            plan.write_text(json.dumps({"version": 1, "partitions": [
                {"topic": topic, "partition": 0, "replicas": [node, *others]}]}))
            r = kafka_tools.run("kafka-reassign-partitions", "--bootstrap-server", repl.bootstrap,
                                "--execute", "--reassignment-json-file", str(plan), timeout=90)
            assert r.code == 0, str(r)
            wait_until(lambda: partitions_of(repl, controller, topic)[0].replica_nodes[0] == node or None,
                       f"{topic}: node {node} first among the replicas", TIMEOUT, 0.2)
            r = kafka_tools.run("kafka-leader-election", "--bootstrap-server", repl.bootstrap,
                                "--election-type", "PREFERRED", "--topic", topic, "--partition", "0")
            assert r.code == 0, str(r)
            wait_until(lambda: partitions_of(repl, controller, topic)[0].leader_id == node or None,
                       f"{topic}: node {node} leads", TIMEOUT, 0.2)

        got: list[str] = []
        consumer = kafka_tools.start("kafka-console-share-consumer", "--bootstrap-server", repl.bootstrap,
                                     "--topic", topic, "--group", group, stderr=subprocess.DEVNULL)
        reader = threading.Thread(target=lambda: got.extend(
            line.decode().strip() for line in consumer.stdout if line.strip()), daemon=True)
        reader.start()

        def read(expected: list[str], what: str) -> None:
            # The first share fetch also makes `__share_group_state` (50 partitions, RF 3).
            wait_until(lambda: len(got) >= len(expected) or None, what, 60, 0.2)
            time.sleep(3)  # anything delivered again would come now
            assert sorted(got) == sorted(expected), what
            got.clear()

        try:
            assert partitions_of(repl, controller, topic)[0].leader_id == first
            one = produce("one", 10)
            read(one, f"the first 10 records, from node {first}")
            lead(second, [first, controller])
            two = produce("two", 5)
            read(two, f"5 more, from node {second}")
            lead(first, [second, controller])
            three = produce("three", 3)
            read(three, f"3 more, from node {first} again, and nothing twice")
        finally:
            kafka_tools.kill(consumer)
        observe("share-group state across leadership moves",
                f"one console share consumer, leader {first} -> {second} -> {first}: "
                "10 + 5 + 3 records, each delivered once")

    # ---- t. transactions across a leader's kill: markers and the LSO on the new leader

    def test_transactions_survive_the_leaders_kill(self, repl, observe):
        """A committed transaction, then one left open when the partition's leader is killed:
        the producer aborts it against the new leader (and, if it moved, the new transaction
        coordinator) and commits another; read_committed consumers see exactly the committed
        records, and the last stable offset reaches the log end (no transaction left hanging)."""
        topic = unique("txn-failover")
        controller = repl.active_controller()
        leader = next(i for i in (1, 2, 3) if i != controller)
        others = [i for i in (1, 2, 3) if i != leader]
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[leader] + others],
                                      config={"min.insync.replicas": "2"})],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 1, 3)
        producer = confluent_kafka.Producer({"bootstrap.servers": repl.bootstrap, "transactional.id": unique("tx"),
                                             "acks": "all", "linger.ms": 5})
        producer.init_transactions(TIMEOUT)

        def txn(prefix: str, n: int) -> None:
            for i in range(n):
                producer.produce(topic, value=b"%s-%d" % (prefix.encode(), i))
            producer.flush(TIMEOUT)

        producer.begin_transaction()
        txn("committed", 10)
        producer.commit_transaction(TIMEOUT)
        producer.begin_transaction()
        txn("open", 5)
        repl.kill_9(leader)
        t0 = time.monotonic()
        producer.abort_transaction(TIMEOUT)
        aborted_after = time.monotonic() - t0
        new = leader_of(repl, topic, 0, exclude=(leader,))
        producer.begin_transaction()
        txn("after", 3)
        producer.commit_transaction(TIMEOUT)
        live = repl.bootstrap_of(others)
        got = read_all(live, topic, 1, 13)
        values = [v for _, v in sorted(got.items())]
        assert values == [b"committed-%d" % i for i in range(10)] + [b"after-%d" % i for i in range(3)], values
        # read_uncommitted sees the aborted ones too: they were replicated before the kill.
        raw = confluent_kafka.Consumer({"bootstrap.servers": live, "group.id": unique("raw"),
                                        "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
        try:
            low, high = raw.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=10)
        finally:
            raw.close()
        # 10 + commit marker + 5 + abort marker + 3 + commit marker
        assert high == 21, (low, high)
        repl.restart(leader)
        wait_fully_replicated(repl, topic, 1, 3)
        observe("transactions across a leader's kill -9",
                f"10 committed, 5 open when leader {leader} was killed: aborted {aborted_after:.2f} s later "
                f"(new leader {new.leader_id}, epoch {new.leader_epoch}), 3 more committed; read_committed "
                f"reads the 13 committed, high watermark {high}")


    # ---- u. every replica compacts its own copy of a compacted topic

    def test_every_replica_compacts_its_log(self, repl, observe):
        """A compacted topic with RF 3: each replica's cleaner compacts its own log. Seen by
        reading the partition from each replica in turn (KIP-392: a consumer in the replica's
        rack is sent there; the leader's own rack reads the leader)."""
        topic = unique("compacted-rf3")
        admin = ck_admin(repl)
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3,
                                      config={"cleanup.policy": "compact", "segment.ms": "100",
                                              "min.cleanable.dirty.ratio": "0.01"})],
                            request_timeout=30)[topic].result(TIMEOUT)
        wait_fully_replicated(repl, topic, 1, 3)
        rounds, keys = 6, 10
        for r in range(rounds):
            clients.send_ck(repl, topic, [clients.Msg(b"k%d" % k, b"r%d-k%d" % (r, k)) for k in range(keys)],
                            acks="all")
            time.sleep(0.3)  # segment.ms: the next round rolls a new segment
        written = rounds * keys

        def read_from(node: int) -> list[tuple[bytes, bytes]]:
            consumer = confluent_kafka.Consumer({"bootstrap.servers": repl.bootstrap, "group.id": unique("cmp"),
                                                 "enable.auto.commit": False, "client.rack": RACK_OF[node]})
            out = []
            try:
                consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
                quiet_since = time.monotonic()
                while time.monotonic() - quiet_since < 3:
                    m = consumer.poll(0.2)
                    if m is not None and not m.error():
                        out.append((m.key(), m.value()))
                        quiet_since = time.monotonic()
            finally:
                consumer.close()
            return out

        seen = {}
        for node in (1, 2, 3):
            records = wait_until(lambda: (lambda got: got if len(got) < written else None)(read_from(node)),
                                 f"{topic}: node {node}'s copy compacted", TIMEOUT, 0.5)
            latest = dict(records)
            assert latest == {b"k%d" % k: b"r%d-k%d" % (rounds - 1, k) for k in range(keys)}, latest
            seen[node] = len(records)
        observe("compaction on every replica",
                f"{written} records ({keys} keys x {rounds} rounds), RF 3: read back from each replica "
                f"(client.rack): {seen} records, the latest value of every key on each")


class TestLeaderRebalance:
    """auto.leader.rebalance.enable (Kafka's default: true) with a short
    leader.imbalance.check.interval.seconds: leadership goes back to the preferred replica
    by itself once it is in sync again."""

    @pytest.fixture(scope="class")
    def balanced(self, impl, tmp_path_factory):
        config = dict(REPLICATION, **{"auto.leader.rebalance.enable": "true",
                                      "leader.imbalance.check.interval.seconds": "2"})
        with running(impl, tmp_path_factory, THREE, "rebalance", extra_config=config) as c:
            yield c

    def test_leadership_returns_to_the_preferred_replica(self, balanced, observe):
        c = balanced
        topic, preferred, second, moved = lead_away_from_preferred(c, "rebalanced")
        t0 = time.monotonic()
        back = wait_until(lambda: partitions_of(c, second, topic)[0].leader_id == preferred or None,
                          f"{topic}: node {preferred} leads again by itself", TIMEOUT, 0.1)
        took = time.monotonic() - t0
        assert back
        clients.send_ck(c, topic, [clients.Msg(None, b"two")], acks="all")
        got = read_all(c.bootstrap, topic, 1, 2)
        assert sorted(got.values()) == [b"one", b"two"], got
        observe("auto.leader.rebalance.enable",
                f"leader.imbalance.check.interval.seconds=2: node {preferred} killed, node {moved.leader_id} led; "
                f"after its return it led again {took:.2f} s after rejoining the ISR, without any tool")
