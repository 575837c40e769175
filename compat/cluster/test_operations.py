"""Cluster operations with the official tools while clients keep running, side by side on
Apache Kafka 4.4 (KRaft) and Sluice: reassignment (kafka-reassign-partitions --generate /
--execute / --verify / --list / --cancel, with replication throttles), scale out (a broker
that joins a running cluster takes partitions) and in (a broker drained, stopped and
unregistered).

    TestReassignment   nodes 1, 2, 3: broker+controller (rack-a, rack-b, rack-c)
                       node 4: broker only (rack-a), started by the scale-out case

A producer (librdkafka, acks=all, idempotent) runs through each case; the checker reads
every partition back and counts acknowledged records missing or read twice.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request

import confluent_kafka
import pytest

import kafka_tools
from cluster import Cluster, NodeSpec, free_port, wait_until
from load import AckedProducer, check_acked
from test_cluster import create, partitions_of, running, unique, wait_fully_replicated

LAYOUT = [NodeSpec(1, "broker,controller", "rack-a"),
          NodeSpec(2, "broker,controller", "rack-b"),
          NodeSpec(3, "broker,controller", "rack-c"),
          NodeSpec(4, "broker", "rack-a")]
CONFIG = {"replica.lag.time.max.ms": "2000", "broker.session.timeout.ms": "6000",
          "broker.heartbeat.interval.ms": "1000", "auto.leader.rebalance.enable": "false"}
TIMEOUT = 120.0


@pytest.fixture(scope="class")
def ops(impl, tmp_path_factory):
    """LAYOUT with nodes 1-3 started; node 4 joins in the scale-out case. Sluice nodes
    serve their metrics (`c.metrics_ports`)."""
    ports = {s.node_id: free_port() for s in LAYOUT}

    def config(spec):
        metrics = {"metrics.prometheus.address": f"127.0.0.1:{ports[spec.node_id]}"} if impl == "sluice" else {}
        return dict(CONFIG, **metrics)
    with running(impl, tmp_path_factory, LAYOUT, "operations", extra_config=config, node_ids=[1, 2, 3]) as c:
        c.metrics_ports = ports
        yield c


def scraped(c, node_id: int, name: str) -> float:
    """The sum of a metric's samples in a Sluice node's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{c.metrics_ports[node_id]}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def reassign(c, *args, timeout: float = 90.0) -> kafka_tools.Result:
    return kafka_tools.run("kafka-reassign-partitions", "--bootstrap-server", c.bootstrap, *args, timeout=timeout)


def json_after(stdout: str, header: str) -> dict:
    """The JSON line that follows `header` in a kafka-reassign-partitions output."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    return json.loads(next(line for line in lines[at + 1:] if line.startswith("{")))


def verify_until_done(c, plan_file, timeout: float = TIMEOUT) -> tuple[float, kafka_tools.Result]:
    """--verify until every partition's reassignment is complete; seconds taken, last output."""
    t0 = time.monotonic()
    last = None

    def done():
        nonlocal last
        last = reassign(c, "--verify", "--reassignment-json-file", str(plan_file))
        if last.code == 0 and "still in progress" not in last.stdout:
            return True
        raise LookupError(str(last))  # named on timeout
    wait_until(done, "kafka-reassign-partitions --verify reports every partition done", timeout, 0.5)
    return time.monotonic() - t0, last


def replicas_now(c, topic: str) -> dict[int, tuple[list[int], list[int]]]:
    """partition -> (replicas, isr) as kafka-topics --describe prints them."""
    out = kafka_tools.run("kafka-topics", "--bootstrap-server", c.bootstrap, "--describe", "--topic", topic)
    assert out.code == 0, out
    _, parts = kafka_tools.parse_topic_description(out.stdout)
    return {int(p["Partition"]): ([int(x) for x in p["Replicas"].split(",")],
                                  [int(x) for x in p["Isr"].split(",")]) for p in parts}


def log_dirs(c, topic: str, brokers) -> list[dict]:
    """kafka-log-dirs --describe of `topic` on `brokers`: one dict per replica (broker,
    dir, partition, size), future replicas of a move left out."""
    out = kafka_tools.run("kafka-log-dirs", "--bootstrap-server", c.bootstrap, "--describe",
                          "--broker-list", ",".join(map(str, brokers)), "--topic-list", topic)
    assert out.code == 0, out
    described = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    return [{"broker": b["broker"], "dir": d["logDir"], "partition": int(p["partition"].rsplit("-", 1)[1]),
             "size": p["size"]}
            for b in described["brokers"] for d in b["logDirs"] for p in d["partitions"] if not p.get("isFuture")]


def hosted_size(c, topic: str, broker: int) -> int:
    """Bytes of partition 0 of `topic` in `broker`'s log dirs, 0 if none."""
    return sum(r["size"] for r in log_dirs(c, topic, [broker]) if r["partition"] == 0)


def hosted_by(c, topic: str, brokers) -> dict[int, list[int]]:
    """broker -> partitions of `topic` whose log it keeps (kafka-log-dirs)."""
    hosted: dict[int, list[int]] = {b: [] for b in brokers}
    for r in log_dirs(c, topic, brokers):
        hosted.setdefault(r["broker"], []).append(r["partition"])
    return {b: sorted(ps) for b, ps in hosted.items()}


class TestReassignment:

    # ---- scale out: a new broker joins, --generate / --execute / --verify move replicas onto it

    def test_scale_out_moves_replicas_onto_a_new_broker(self, ops, observe, tmp_path):
        c = ops
        topic = unique("scale-out")
        create(c, topic, 6, 2)
        wait_fully_replicated(c, topic, 6, 2)
        producer = AckedProducer(c.bootstrap, topic, rate=300)
        producer.start()
        try:
            wait_until(lambda: producer.acked_count() >= 300 or None, "300 records acked before the change", 60)
            joined = c.start_node(4)
            c.wait_brokers([1, 2, 3, 4])
            topics_file = tmp_path / "topics.json"
            topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
            generated = reassign(c, "--generate", "--topics-to-move-json-file", str(topics_file),
                                 "--broker-list", "2,3,4")
            assert generated.code == 0, generated
            current = json_after(generated.stdout, "Current partition replica assignment")
            proposed = json_after(generated.stdout, "Proposed partition reassignment configuration")
            assert sorted(p["partition"] for p in current["partitions"]) == list(range(6)), generated
            target = {p["partition"]: p["replicas"] for p in proposed["partitions"]}
            assert sorted(target) == list(range(6)), generated
            assert all(len(r) == 2 and set(r) <= {2, 3, 4} for r in target.values()), generated
            plan = tmp_path / "plan.json"
            plan.write_text(json.dumps(proposed))
            executed = reassign(c, "--execute", "--reassignment-json-file", str(plan))
            assert executed.code == 0 and "Successfully started partition reassignment" in executed.stdout, executed
            took, verified = verify_until_done(c, plan)
            acked_during = producer.acked_count()
            now = replicas_now(c, topic)
            for p, replicas in target.items():
                assert now[p][0] == replicas and sorted(now[p][1]) == sorted(replicas), (p, now[p], replicas)
            assert 4 in {b for r in target.values() for b in r}, target
            hosted = wait_until(lambda: (lambda h: h if not h.get(1) else None)(hosted_by(c, topic, [1, 2, 3, 4])),
                                "node 1 deletes the logs it no longer holds", 60, 0.5)
            assert hosted[4] == sorted(p for p, r in target.items() if 4 in r), hosted
            time.sleep(1.0)  # records produced after the move
        finally:
            producer.stop()
        counted = check_acked(c.bootstrap, topic, producer.acked)
        assert counted["missing"] == 0 and counted["duplicated"] == 0, counted
        assert producer.unexpected_errors() == {}, producer.unexpected_errors()
        observe("scale out + reassignment", f"node 4 answered {joined:.2f} s after start; 6 partitions moved "
                f"to brokers 2,3,4 in {took:.2f} s (--verify); producer: {counted['acked']} acked "
                f"({acked_during} by the end of the move), 0 lost, 0 duplicated, client errors "
                f"{dict(producer.failed + producer.client_errors) or 'none'}; --verify: "
                f"{' | '.join(verified.stdout.strip().splitlines()[-2:])}")

    # ---- throttled: the move goes at the throttle's rate, --list shows it, --cancel undoes it

    def test_throttled_reassignment_cancelled_then_redone(self, ops, observe, tmp_path):
        c = ops
        assert c.node(4).alive, "runs after the scale-out case, which starts node 4"
        topic = unique("throttled")
        create(c, topic, 1, 1, assignment=[[1]])
        wait_fully_replicated(c, topic, 1, 1)
        producer = confluent_kafka.Producer({"bootstrap.servers": c.bootstrap, "acks": "all",
                                             "linger.ms": 20, "batch.size": 262144})
        total = 4000
        for i in range(total):
            producer.produce(topic, b"%06d" % i + b"v" * 1018)
            if i % 500 == 0:
                producer.poll(0)
        assert producer.flush(60) == 0
        size = hosted_size(c, topic, 1)
        assert size >= total * 1024, size
        plan = tmp_path / "throttled.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": topic, "partition": 0, "replicas": [1, 4]}]}))
        rate = 100_000
        executed = reassign(c, "--execute", "--reassignment-json-file", str(plan), "--throttle", str(rate))
        assert executed.code == 0, executed
        assert f"The inter-broker throttle limit was set to {rate} B/s" in executed.stdout, executed
        time.sleep(4.0)
        listed = reassign(c, "--list")
        assert listed.code == 0 and f"{topic}-0: replicas: 1,4. adding: 4." in listed.stdout, listed
        moved = hosted_size(c, topic, 4)
        # Kafka's rate counts at least 10 s: about rate x 10 s may go at once, then the rate.
        assert moved < size * 0.75, f"{moved} of {size} bytes on node 4 after 4 s at {rate} B/s"
        brokers = kafka_tools.run("kafka-configs", "--bootstrap-server", c.bootstrap, "--describe",
                                  "--entity-type", "brokers", "--entity-name", "1")
        assert f"leader.replication.throttled.rate={rate}" in brokers.stdout, brokers
        topic_configs = kafka_tools.run("kafka-configs", "--bootstrap-server", c.bootstrap, "--describe",
                                        "--entity-type", "topics", "--entity-name", topic)
        assert "leader.replication.throttled.replicas=0:1" in topic_configs.stdout, topic_configs
        assert "follower.replication.throttled.replicas=0:4" in topic_configs.stdout, topic_configs
        metrics = ""
        if c.impl == "sluice":  # Kafka's are JMX beans (LeaderReplication, FollowerReplication byte-rate)
            leader_bytes = scraped(c, 1, 'sluice_replication_throttled_bytes_total{side="leader"}')
            follower_bytes = scraped(c, 4, 'sluice_replication_throttled_bytes_total{side="follower"}')
            assert leader_bytes >= moved * 0.5 and follower_bytes >= moved * 0.5, (leader_bytes, follower_bytes, moved)
            limit = scraped(c, 1, 'sluice_replication_throttled_rate_limit{side="leader"}')
            assert limit == rate, limit
            metrics = f"; metrics: {leader_bytes:.0f} throttled bytes sent (node 1), {follower_bytes:.0f} fetched (node 4)"
        cancelled = reassign(c, "--cancel", "--reassignment-json-file", str(plan))
        assert cancelled.code == 0 and "Successfully cancelled partition reassignment" in cancelled.stdout, cancelled
        assert replicas_now(c, topic)[0] == ([1], [1])
        listed = reassign(c, "--list")
        assert listed.code == 0 and "No partition reassignments found." in listed.stdout, listed
        wait_until(lambda: (lambda h: h if not h.get(4) else None)(hosted_by(c, topic, [1, 4])),
                   "node 4 deletes the replica the cancel took away", 60, 0.5)
        # Again, with a throttle it can finish under: --verify ends it and lifts the throttles.
        fast = 50_000_000
        executed = reassign(c, "--execute", "--reassignment-json-file", str(plan), "--throttle", str(fast))
        assert executed.code == 0, executed
        took, verified = verify_until_done(c, plan)
        assert "Clearing broker-level throttles" in verified.stdout, verified
        brokers = kafka_tools.run("kafka-configs", "--bootstrap-server", c.bootstrap, "--describe",
                                  "--entity-type", "brokers", "--entity-name", "1")
        assert "throttled.rate" not in brokers.stdout, brokers
        assert replicas_now(c, topic)[0] == ([1, 4], [1, 4])
        assert hosted_size(c, topic, 4) == size
        observe("throttled reassignment", f"{size} bytes, --throttle {rate}: {moved} bytes on node 4 after 4 s "
                f"(rate x 10 s may go at once: Kafka's quota window), --list showed it, --cancel put the "
                f"replicas back; redone with --throttle {fast}: done in {took:.2f} s, --verify lifted the throttles{metrics}")

    # ---- scale in: drain a broker, stop it, unregister it

    def test_drain_a_broker_then_unregister_it(self, ops, observe, tmp_path):
        c = ops
        assert c.node(4).alive, "runs after the scale-out case, which starts node 4"
        topic = unique("drain")
        create(c, topic, 4, 2, assignment=[[4, 1], [2, 4], [4, 3], [1, 2]])
        wait_fully_replicated(c, topic, 4, 2)
        producer = AckedProducer(c.bootstrap, topic, rate=300)
        producer.start()
        try:
            wait_until(lambda: producer.acked_count() >= 300 or None, "300 records acked before the drain", 60)
            # Every partition that has a replica on node 4, moved off it.
            on_4 = {}
            for t in [t for t in c.topics_seen(1) if not t.startswith("__")]:
                for p, (replicas, _) in replicas_now(c, t).items():
                    if 4 in replicas:
                        on_4[(t, p)] = [b for b in replicas if b != 4] + [
                            next(b for b in (1, 2, 3) if b not in replicas)]
            plan = tmp_path / "drain.json"
            plan.write_text(json.dumps({"version": 1, "partitions": [
                {"topic": t, "partition": p, "replicas": r} for (t, p), r in sorted(on_4.items())]}))
            executed = reassign(c, "--execute", "--reassignment-json-file", str(plan))
            assert executed.code == 0, executed
            took, _ = verify_until_done(c, plan)
            hosted = wait_until(lambda: (lambda h: h if not h.get(4) else None)(hosted_by(c, topic, [1, 2, 3, 4])),
                                "node 4 keeps no log of the topic", 60, 0.5)
            code = c.stop_node(4)
            assert code in (0, 143), f"node 4 exit code {code}"
            unregistered = kafka_tools.run("kafka-cluster", "unregister", "--bootstrap-server", c.bootstrap,
                                           "--id", "4")
            assert unregistered.code == 0, unregistered
            c.wait_brokers([1, 2, 3])
            time.sleep(1.0)
        finally:
            producer.stop()
        for t, p in on_4:
            replicas, isr = replicas_now(c, t)[p]
            assert 4 not in replicas and 4 not in isr, (t, p, replicas, isr)
        counted = check_acked(c.bootstrap, topic, producer.acked)
        assert counted["missing"] == 0 and counted["duplicated"] == 0, counted
        assert producer.unexpected_errors() == {}, producer.unexpected_errors()
        observe("drain + unregister", f"{len(on_4)} partitions moved off node 4 in {took:.2f} s; logs on "
                f"{hosted}; node 4 stopped and unregistered; producer: {counted['acked']} acked, 0 lost, "
                f"0 duplicated, client errors {dict(producer.failed + producer.client_errors) or 'none'}")


# ======================================================================== losing a rack

RACKS = [NodeSpec(1, "broker,controller", "rack-a"),
         NodeSpec(2, "broker,controller", "rack-b"),
         NodeSpec(3, "broker,controller", "rack-a"),
         NodeSpec(4, "broker", "rack-b"),
         NodeSpec(5, "broker", "rack-a")]
LOST = [2, 4]  # rack-b: one of the three controllers, so the quorum keeps its majority
RACK_CONFIG = dict(CONFIG, **{"min.insync.replicas": "2"})


class TestLosingARack:
    """Our seed notes' layout: 5 brokers in 2 racks, 10 partitions with replication factor
    3 (rack-aware: every partition has replicas in both racks). rack-b is killed at once
    (kill -9 of nodes 2 and 4) under an acks=all producer, then brought back."""

    @pytest.fixture(scope="class")
    def racks(self, impl, tmp_path_factory):
        with running(impl, tmp_path_factory, RACKS, "racks", extra_config=RACK_CONFIG) as c:
            yield c

    def test_every_partition_keeps_a_leader_and_no_acked_record_is_lost(self, racks, observe):
        c = racks
        topic = unique("rack-loss")
        create(c, topic, 10, 3)
        wait_fully_replicated(c, topic, 10, 3)
        rack = {s.node_id: s.rack for s in RACKS}
        for p, (replicas, _) in replicas_now(c, topic).items():
            assert {rack[r] for r in replicas} == {"rack-a", "rack-b"}, (p, replicas)
        producer = AckedProducer(c.bootstrap_of([1, 3, 5]), topic, rate=300)
        producer.start()
        try:
            wait_until(lambda: producer.acked_count() >= 300 or None, "300 records acked before the loss", 60)
            before = producer.acked_count()
            t0 = time.monotonic()
            for i in LOST:
                c.kill_9(i)

            def led_in_rack_a():
                ps = partitions_of(c, 1, topic)
                if all(p.leader_id in (1, 3, 5) for p in ps.values()):
                    return ps
                raise LookupError({i: p.leader_id for i, p in ps.items()})  # named on timeout
            wait_until(led_in_rack_a, "every partition led in rack-a", TIMEOUT, 0.1)
            leaders_moved = time.monotonic() - t0

            def isr_without_lost():
                ps = partitions_of(c, 1, topic)
                if all(not set(p.isr_nodes) & set(LOST) for p in ps.values()):
                    return ps
                raise LookupError({i: list(p.isr_nodes) for i, p in ps.items()})
            shrunk = wait_until(isr_without_lost, "the lost rack out of every ISR", TIMEOUT, 0.2)
            isr_size = {i: len(p.isr_nodes) for i, p in shrunk.items()}
            # One acks=all record per partition, no retries: min.insync.replicas=2 decides.
            outcome = produce_each(c.bootstrap_of([1, 3, 5]), topic, 10)
            # On a loaded machine a rack-a replica can lag out of an ISR and rejoin between
            # the look and the write: judge the partitions whose ISR stayed on one side of 2.
            after = {i: len(p.isr_nodes) for i, p in partitions_of(c, 1, topic).items()}
            steady = [p for p in range(10) if (isr_size[p] >= 2) == (after[p] >= 2)]
            assert steady, f"every ISR changed across the write: {isr_size} -> {after}"
            expected = {p: "ok" if isr_size[p] >= 2 else "NOT_ENOUGH_REPLICAS" for p in steady}
            assert {p: outcome[p] for p in steady} == expected, \
                f"ISR sizes {isr_size} then {after}: got {outcome}"
            t1 = time.monotonic()
            for i in LOST:
                c.start_node(i)
            wait_fully_replicated(c, topic, 10, 3, node_ids=[1, 3, 5])
            isr_full = time.monotonic() - t1
            time.sleep(1.0)
        finally:
            producer.stop()
        counted = check_acked(c.bootstrap_of([1, 3, 5]), topic, producer.acked)
        assert counted["missing"] == 0 and counted["duplicated"] == 0, counted
        assert producer.unexpected_errors() == {}, producer.unexpected_errors()
        writable = sum(1 for v in outcome.values() if v == "ok")
        observe("losing a rack", f"rack-b (nodes 2, 4) killed: every partition led in rack-a after "
                f"{leaders_moved:.2f} s; with min.insync.replicas=2, {writable} of 10 partitions took acks=all "
                f"writes (ISR sizes {dict(sorted(isr_size.items()))}), the rest NOT_ENOUGH_REPLICAS; ISR full "
                f"{isr_full:.2f} s after the rack restarted; producer: {counted['acked']} acked ({before} before "
                f"the loss), 0 lost, 0 duplicated, client errors "
                f"{dict(producer.failed + producer.client_errors) or 'none'}")


def produce_each(bootstrap: str, topic: str, partitions: int) -> dict[int, str]:
    """One acks=all record to each partition without retries: 'ok' or the error name."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                                         "enable.idempotence": False, "message.timeout.ms": 10000})
    outcome: dict[int, str] = {}

    def done(err, msg):
        outcome[msg.partition()] = "ok" if err is None else err.name()
    for p in range(partitions):
        producer.produce(topic, b"one each to %d" % p, partition=p, on_delivery=done)
    assert producer.flush(30) == 0
    return outcome


# ======================================================================== controller membership

MEMBERS = [NodeSpec(1, "broker,controller", "rack-a"),
           NodeSpec(2, "broker,controller", "rack-b"),
           NodeSpec(3, "broker,controller", "rack-c"),
           NodeSpec(4, "controller", joining=True)]


def quorum_status(c, via: int) -> tuple[list[dict], str]:
    """kafka-metadata-quorum describe --status: CurrentVoters, and the whole output."""
    out = kafka_tools.run("kafka-metadata-quorum", "--bootstrap-server", c.node(via).bootstrap, "describe",
                          "--status")
    assert out.code == 0, out
    line = next(x for x in out.stdout.splitlines() if x.startswith("CurrentVoters:"))
    return json.loads(line.split(":", 1)[1]), out.stdout


class TestControllerMembership:
    """KIP-853 with the official tool: a dynamic quorum of nodes 1-3; node 4, a controller
    formatted with --no-initial-controllers, is added with add-controller, then node 1 is
    removed with remove-controller, and the quorum of 2, 3, 4 survives its leader's kill."""

    @pytest.fixture(scope="class")
    def members(self, impl, tmp_path_factory):
        with running(impl, tmp_path_factory, MEMBERS, "members", extra_config=CONFIG, dynamic_quorum=True,
                     node_ids=[1, 2, 3]) as c:
            yield c

    def test_add_then_remove_a_controller(self, members, observe):
        c = members
        voters, _ = quorum_status(c, 2)
        assert sorted(v["id"] for v in voters) == [1, 2, 3], voters
        c.start_node(4)
        directory = c.meta_properties(4)["directory.id"]
        t0 = time.monotonic()
        added = kafka_tools.run("kafka-metadata-quorum", "--bootstrap-server", c.node(2).bootstrap,
                                "--command-config", str(c.node(4).config_file), "add-controller", timeout=120)
        took = time.monotonic() - t0
        assert added.code == 0, added

        def four_voters():
            voters, status = quorum_status(c, 2)
            if sorted(v["id"] for v in voters) == [1, 2, 3, 4]:
                return voters, status
            raise LookupError(status)
        voters, status = wait_until(four_voters, "node 4 among the voters", 60, 0.5)
        (four,) = [v for v in voters if v["id"] == 4]
        assert four.get("directoryId") == directory, status
        assert four["endpoints"] == [f"CONTROLLER://127.0.0.1:{c.node(4).controller_port}"], status
        # Remove node 1 (an initial voter): the quorum goes on with 2, 3 and 4.
        removed = kafka_tools.run("kafka-metadata-quorum", "--bootstrap-server", c.node(2).bootstrap,
                                  "remove-controller", "--controller-id", "1",
                                  "--controller-directory-id", c.directory_ids[1], timeout=120)
        assert removed.code == 0, removed

        def without_one():
            voters, status = quorum_status(c, 2)
            if sorted(v["id"] for v in voters) == [2, 3, 4]:
                return status
            raise LookupError(status)
        status = wait_until(without_one, "voters 2, 3, 4", 60, 0.5)
        leader = c.active_controller(via=2)
        assert leader in (2, 3, 4), leader
        # The new quorum elects without node 1: kill its leader, create a topic.
        c.kill_9(leader)
        new_leader = c.active_controller(exclude=(leader,), via=next(i for i in (2, 3) if i != leader))
        assert new_leader in (2, 3, 4) and new_leader != leader, new_leader
        topic = unique("after-members")
        create(c, topic, 1, 2, bootstrap=c.node(next(i for i in (2, 3) if i != leader)).bootstrap)
        c.restart(leader) if leader != 4 else c.start_node(4)

        # KIP-1312: node 1, out of the quorum and stopped, keeps its controller registration
        # until kafka-cluster unregister-controller removes it; the active controller's own
        # registration cannot be removed.
        c.stop_node(1)
        other = next(i for i in (2, 3) if i != leader)
        via = c.node(other).bootstrap

        def unregister(node_id: int) -> kafka_tools.Result:
            return kafka_tools.run("kafka-cluster", "unregister-controller", "--bootstrap-server", via,
                                   "--id", str(node_id), timeout=120)
        gone = unregister(1)
        assert gone.code == 0 and gone.stdout.strip() == "Controller 1 is no longer registered.", gone
        again = unregister(1)
        assert again.code != 0 and "Controller ID 1 is not currently registered." in again.stdout + again.stderr, again
        active = c.active_controller(via=other)
        own = unregister(active)
        assert own.code != 0 and "Controller cannot unregister itself while it is active." in own.stdout + own.stderr, own
        observe("add-controller / remove-controller", f"add-controller answered in {took:.2f} s; "
                f"{added.stdout.strip()} | {removed.stdout.strip()} | after: "
                f"{' | '.join(status.strip().splitlines()[-3:-1])}; leader {leader} killed, {new_leader} took over; "
                f"unregister-controller --id 1: {gone.stdout.strip()!r}, again: refused (not registered), "
                f"--id {active} (active): refused")


# ======================================================================== several log dirs (JBOD)

class TestSeveralLogDirs:
    """One node (broker+controller) with two log dirs: partitions spread over both
    (kafka-log-dirs), and kafka-reassign-partitions with log_dirs moves a replica from one
    to the other (AlterReplicaLogDirs) with its records."""

    @pytest.fixture(scope="class")
    def jbod(self, impl, tmp_path_factory):
        d = tmp_path_factory.mktemp(f"{impl}-jbod")
        dirs = [d / "node-1" / "data", d / "node-1" / "data2"]
        c = Cluster(impl, d, [NodeSpec(1, "broker,controller")],
                    extra_config=lambda spec: {"log.dirs": ",".join(map(str, dirs))})
        c.start(timeout=180)
        try:
            yield c, dirs
        finally:
            c.stop()

    def test_replicas_spread_over_log_dirs_and_move_between_them(self, jbod, observe, tmp_path):
        c, dirs = jbod
        topic = unique("jbod")
        create(c, topic, 4, 1)
        wait_fully_replicated(c, topic, 4, 1)
        producer = confluent_kafka.Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        for i in range(100):
            producer.produce(topic, b"before %d" % i, partition=i % 4)
        assert producer.flush(30) == 0

        def where() -> dict[int, str]:
            return {r["partition"]: r["dir"] for r in log_dirs(c, topic, [1])}
        before = where()
        canonical = {str(p.resolve()) for p in dirs}
        assert sorted(before) == [0, 1, 2, 3] and set(before.values()) == canonical, before
        moving = 0
        target = next(d for d in canonical if d != before[moving])
        plan = tmp_path / "dirs.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": topic, "partition": moving, "replicas": [1], "log_dirs": [target]}]}))
        executed = reassign(c, "--execute", "--reassignment-json-file", str(plan))
        assert executed.code == 0, executed
        took, verified = verify_until_done(c, plan)
        after = wait_until(lambda: (lambda w: w if w.get(moving) == target else None)(where()),
                           f"partition {moving} in {target}", 60, 0.5)
        assert {p: d for p, d in after.items() if p != moving} == {p: d for p, d in before.items() if p != moving}
        producer.produce(topic, b"after", partition=moving)
        assert producer.flush(30) == 0
        consumer = confluent_kafka.Consumer({"bootstrap.servers": c.bootstrap, "group.id": unique("jbod-read"),
                                             "enable.auto.commit": False})
        consumer.assign([confluent_kafka.TopicPartition(topic, moving, 0)])
        values = []
        deadline = time.monotonic() + 30
        while len(values) < 26 and time.monotonic() < deadline:
            values += [m.value() for m in consumer.consume(100, 1.0) if not m.error()]
        consumer.close()
        assert values == [b"before %d" % i for i in range(moving, 100, 4)] + [b"after"], values
        observe("JBOD", f"4 partitions over 2 log dirs {sorted(before.items())}; partition {moving} moved to "
                f"{target} (--verify done after {took:.2f} s): its 25 records and a new one read back; "
                f"--verify: {verified.stdout.strip().splitlines()[-1]}")


THREE_NODES = [NodeSpec(1, "broker,controller", "rack-a"), NodeSpec(2, "broker,controller", "rack-b"),
               NodeSpec(3, "broker,controller", "rack-c")]


class TestFailedLogDir:
    """Three combined nodes with two log dirs each; one of node 1's dirs is removed under
    an acks=all producer: its partitions go offline on node 1 only (out of their ISRs,
    led elsewhere), node 1 keeps serving the partitions in its other dir."""

    @pytest.fixture(scope="class")
    def two_dirs(self, impl, tmp_path_factory):
        d = tmp_path_factory.mktemp(f"{impl}-failed-dir")
        config = dict(CONFIG, **{"log.flush.offset.checkpoint.interval.ms": "1000", "min.insync.replicas": "2"})
        c = Cluster(impl, d, THREE_NODES, extra_config=lambda spec: dict(config, **{
            "log.dirs": f"{d / f'node-{spec.node_id}' / 'data'},{d / f'node-{spec.node_id}' / 'data2'}"}))
        c.start(timeout=180)
        try:
            yield c, d
        finally:
            c.stop()

    def test_a_failed_dir_takes_only_its_partitions_offline(self, two_dirs, observe):
        c, d = two_dirs
        topic = unique("failed-dir")
        create(c, topic, 6, 3)
        wait_fully_replicated(c, topic, 6, 3)
        failing = str((d / "node-1" / "data2").resolve())
        lost = sorted(r["partition"] for r in log_dirs(c, topic, [1]) if r["dir"] == failing)
        kept = [p for p in range(6) if p not in lost]
        assert lost and kept, (lost, kept)
        producer = AckedProducer(c.bootstrap_of([2, 3]), topic, rate=300)
        producer.start()
        try:
            wait_until(lambda: producer.acked_count() >= 300 or None, "300 records acked first", 60)
            t0 = time.monotonic()
            shutil.rmtree(failing)

            def moved():
                ps = partitions_of(c, 2, topic)
                if all(ps[p].leader_id != 1 and 1 not in ps[p].isr_nodes for p in lost):
                    return ps
                raise LookupError({p: (ps[p].leader_id, list(ps[p].isr_nodes)) for p in lost})
            wait_until(moved, f"partitions {lost} out of node 1", TIMEOUT, 0.2)
            took = time.monotonic() - t0
            time.sleep(3.0)
            ps = partitions_of(c, 2, topic)
            assert all(1 in ps[p].isr_nodes for p in kept), {p: list(ps[p].isr_nodes) for p in kept}
            assert c.node(1).alive and c.answers(1), "node 1 stopped"
        finally:
            producer.stop()
        counted = check_acked(c.bootstrap_of([2, 3]), topic, producer.acked)
        assert counted["missing"] == 0 and counted["duplicated"] == 0, counted
        assert producer.unexpected_errors() == {}, producer.unexpected_errors()
        observe("failed log dir", f"node 1's second dir removed: partitions {lost} out of node 1 (ISR and "
                f"leadership) {took:.2f} s later, {kept} kept node 1 in their ISR; producer: "
                f"{counted['acked']} acked, 0 lost, 0 duplicated")
