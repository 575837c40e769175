"""Consumer groups as users run them: every member its own OS process (group_worker.py),
real kafka-python and confluent-kafka consumers subscribed to one group.id, committing
after every batch they process.

What the broker must do for these to pass: FindCoordinator, JoinGroup (with the
MEMBER_ID_REQUIRED round trip of v4+), SyncGroup, Heartbeat (REBALANCE_IN_PROGRESS to
make members rejoin), LeaveGroup, OffsetCommit/OffsetFetch with metadata, session
timeouts, protocol selection, static membership, DescribeGroups (state, protocol,
members with client ids and their assignment bytes), and keeping all of it across a
restart.
"""

from __future__ import annotations

import collections
import time

import kafka.errors
import pytest

import clients
from clients import wait_until

SESSION_MS = 6000  # the broker's group.min.session.timeout.ms: kills are noticed soonest
MOVE_TIMEOUT = 30.0  # generous bound for a rebalance to finish; never a timing assertion


@pytest.fixture
def members(tmp_path):
    started = clients.GroupMembers(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def assert_exactly_once(members, values, topic=None):
    counts = collections.Counter(clients.consumed_values(members, topic))
    dup = {v: n for v, n in counts.items() if n > 1}
    assert not dup, f"{len(dup)} records consumed more than once, e.g. {sorted(dup.items())[:5]}"
    extra = set(counts) - set(values)
    assert not extra, f"consumed records never produced (in this phase): {sorted(extra)[:5]}"
    missing = set(values) - set(counts)
    assert not missing, f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}"


def assert_consumed_by_owner(members, topic, tag=""):
    """Each record (whose value starts with tag) was consumed by a member that owns its
    partition now."""
    for m in members:
        wrong = [r for r in m.records if r[0] == topic and r[3].startswith(tag)
                 and r[1] not in m.partitions(topic)]
        assert not wrong, f"{m} consumed from partitions it does not own: {wrong[:3]}"


def wait_committed_to_end(broker, group, topic, partitions, timeout=clients.READ_TIMEOUT):
    """The group's committed offsets (admin OffsetFetch) reach the log end of every partition."""
    ends = clients.end_offsets(broker, topic, partitions)
    want = {(topic, p): o for p, o in ends.items()}
    last = {}

    def done():
        last["committed"] = {tp: o for tp, (o, _) in clients.group_offsets(broker, group).items()}
        return last["committed"] == want

    try:
        wait_until(done, f"committed offsets of {group} to reach {want}", timeout, interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}; last committed {last.get('committed')}") from None
    return ends


def retrying(fn, *args, timeout=clients.READ_TIMEOUT):
    """fn(*args), again while the broker answers with a retriable error (a coordinator
    still loading its groups after a restart, say), up to the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(*args)
        except kafka.errors.KafkaError as e:
            if not getattr(e, "retriable", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def counts_for(partitions, base=5):
    """A different, known number of records per partition."""
    return {p: base + 3 * p for p in range(partitions)}


# ------------------------------------------------------------------ sharing a topic

def test_three_members_split_partitions_and_consume_each_record_once(broker, topic, members):
    group = clients.unique_name("g-three")
    clients.create_topic(broker, topic, 6)
    ms = [members.start(broker, "kp", group, [topic], "three-kp-1"),
          members.start(broker, "ck", group, [topic], "three-ck-1"),
          members.start(broker, "kp", group, [topic], "three-kp-2")]
    split = clients.wait_split(broker, group, ms, topic, 6)
    assert all(len(ps) >= 1 for ps in split.values())

    values = clients.produce_counts(broker, topic, counts_for(6), "three")
    clients.wait_consumed(ms, values)
    ends = wait_committed_to_end(broker, group, topic, 6)
    assert ends == {p: n for p, n in counts_for(6).items()}

    assert_exactly_once(ms, values)
    assert_consumed_by_owner(ms, topic)
    for m in ms:
        assert not m.failed_commits, f"{m}: {m.failed_commits}"
        # Each member committed exactly the log end of the partitions it owns.
        assert m.committed == {(topic, p): ends[p] for p in m.partitions(topic)}
        # In offset order, from 0, per partition.
        for p in m.partitions(topic):
            assert [o for t, pp, o, _ in m.records if pp == p] == list(range(ends[p]))


@pytest.mark.parametrize("leaver", ["kp", "ck"])
def test_member_that_closes_hands_its_partitions_over(broker, topic, members, leaver):
    group = clients.unique_name(f"g-leave-{leaver}")
    clients.create_topic(broker, topic, 6)
    ms = [members.start(broker, "kp", group, [topic], "leave-kp-1"),
          members.start(broker, "ck", group, [topic], "leave-ck-1"),
          members.start(broker, leaver, group, [topic], f"leave-{leaver}-2")]
    clients.wait_split(broker, group, ms, topic, 6)
    before = clients.produce_counts(broker, topic, counts_for(6), "before")
    clients.wait_consumed(ms, before)
    wait_committed_to_end(broker, group, topic, 6)

    gone, stay = ms[2], ms[:2]
    gone_partitions = gone.partitions(topic)
    gone.stop()  # consumer.close(): LeaveGroup
    split = clients.wait_split(broker, group, stay, topic, 6, timeout=MOVE_TIMEOUT)
    moved_to = {cid for cid, ps in split.items() if ps & gone_partitions}
    assert moved_to, f"{gone_partitions} of the leaver went nowhere: {split}"

    after = clients.produce_counts(broker, topic, counts_for(6), "after")
    clients.wait_consumed(stay, after)
    wait_committed_to_end(broker, group, topic, 6)
    # The new owners started at the committed offsets: nothing before the move again.
    assert_exactly_once(ms, before + after)
    assert_consumed_by_owner(stay, topic, "after-")


def test_killed_member_partitions_move_after_its_session_timeout(broker, topic, members):
    group = clients.unique_name("g-kill")
    clients.create_topic(broker, topic, 6)
    ms = [members.start(broker, "ck", group, [topic], "kill-ck-1", session_timeout_ms=SESSION_MS),
          members.start(broker, "kp", group, [topic], "kill-kp-1", session_timeout_ms=SESSION_MS),
          members.start(broker, "ck", group, [topic], "kill-ck-2", session_timeout_ms=SESSION_MS)]
    clients.wait_split(broker, group, ms, topic, 6)
    before = clients.produce_counts(broker, topic, counts_for(6), "before")
    clients.wait_consumed(ms, before)
    wait_committed_to_end(broker, group, topic, 6)

    victim, stay = ms[1], [ms[0], ms[2]]
    victim_partitions = victim.partitions(topic)
    killed_at = time.monotonic()
    victim.kill()  # kill -9: no LeaveGroup; only the session timeout tells the broker
    split = clients.wait_split(broker, group, stay, topic, 6,
                               timeout=SESSION_MS / 1000 + MOVE_TIMEOUT)
    print(f"partitions of the killed member moved {time.monotonic() - killed_at:.1f}s after the kill")
    assert set().union(*split.values()) >= victim_partitions

    after = clients.produce_counts(broker, topic, counts_for(6), "after")
    clients.wait_consumed(stay, after)
    wait_committed_to_end(broker, group, topic, 6)
    assert_exactly_once(ms, before + after)


def test_joining_member_gets_partitions(broker, topic, members):
    group = clients.unique_name("g-join")
    clients.create_topic(broker, topic, 6)
    ms = [members.start(broker, "kp", group, [topic], "join-kp-1"),
          members.start(broker, "ck", group, [topic], "join-ck-1")]
    clients.wait_split(broker, group, ms, topic, 6)
    before = clients.produce_counts(broker, topic, counts_for(6), "before")
    clients.wait_consumed(ms, before)
    wait_committed_to_end(broker, group, topic, 6)

    ms.append(members.start(broker, "ck", group, [topic], "join-ck-2"))
    split = clients.wait_split(broker, group, ms, topic, 6, timeout=MOVE_TIMEOUT)
    assert split["join-ck-2"], split

    after = clients.produce_counts(broker, topic, counts_for(6), "after")
    clients.wait_consumed(ms, after)
    wait_committed_to_end(broker, group, topic, 6)
    assert_exactly_once(ms, before + after)
    # The newcomer consumed only records produced after it joined.
    assert {v.split("-")[0] for v in clients.consumed_values([ms[2]])} == {"after"}


def test_two_groups_each_receive_every_record(broker, topic, members):
    clients.create_topic(broker, topic, 3)
    values = clients.produce_counts(broker, topic, counts_for(3), "both")
    g1, g2 = clients.unique_name("g-one"), clients.unique_name("g-two")
    one = [members.start(broker, "kp", g1, [topic], "two-groups-kp")]
    two = [members.start(broker, "ck", g2, [topic], "two-groups-ck-1"),
           members.start(broker, "kp", g2, [topic], "two-groups-kp-2")]
    clients.wait_consumed(one, values)
    clients.wait_consumed(two, values)
    clients.wait_split(broker, g2, two, topic, 3)
    assert_exactly_once(one, values)
    assert_exactly_once(two, values)
    for g in (g1, g2):
        assert wait_committed_to_end(broker, g, topic, 3) == counts_for(3)


def test_lone_consumer_is_assigned_every_partition(broker, topic, members):
    # Both targets run with group.initial.rebalance.delay.ms=0, so the first member of a
    # new group is not held back; this only checks that it is assigned and consumes.
    clients.create_topic(broker, topic, 3)
    values = clients.produce_counts(broker, topic, counts_for(3), "lone")
    group = clients.unique_name("g-lone")
    lone = members.start(broker, "ck", group, [topic], "lone-ck")
    assert clients.wait_split(broker, group, [lone], topic, 3) == {"lone-ck": {0, 1, 2}}
    clients.wait_consumed([lone], values)
    assert_exactly_once([lone], values)


# ------------------------------------------------------------------ assignment strategies

# Member sets and what each assignor must give them on one 6-partition topic. Members
# are ordered by member id by range and roundrobin, so the sets are known, not who
# gets which.
STRATEGIES = {
    "range": ([("kp", ["range"]), ("ck", ["range"]), ("kp", ["range"])],
              [{0, 1}, {2, 3}, {4, 5}]),
    "roundrobin": ([("ck", ["roundrobin"]), ("kp", ["roundrobin"]), ("ck", ["roundrobin"])],
                   [{0, 3}, {1, 4}, {2, 5}]),
    "sticky": ([("kp", ["sticky"]), ("kp", ["sticky"]), ("kp", ["sticky"])], None),
    "cooperative-sticky": ([("ck", ["cooperative-sticky"]), ("ck", ["cooperative-sticky"])], None),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_assignment_strategy_splits_the_partitions(broker, topic, members, strategy):
    group = clients.unique_name(f"g-{strategy}")
    clients.create_topic(broker, topic, 6)
    plan, expected = STRATEGIES[strategy]
    ms = [members.start(broker, client, group, [topic], f"{strategy}-{client}-{i}",
                        strategies=names)
          for i, (client, names) in enumerate(plan)]
    split = clients.wait_split(broker, group, ms, topic, 6)
    description = clients.describe_group(broker, group)
    assert (description["protocol_type"], description["protocol_data"]) == ("consumer", strategy)
    sizes = sorted(len(ps) for ps in split.values())
    assert sizes == [6 // len(ms)] * len(ms), f"unbalanced: {split}"
    if expected is not None:
        assert sorted(map(sorted, split.values())) == sorted(map(sorted, expected))

    values = clients.produce_counts(broker, topic, counts_for(6), strategy)
    clients.wait_consumed(ms, values)
    assert_exactly_once(ms, values)


def test_group_picks_a_protocol_every_member_supports(broker, topic, members):
    # kafka-python prefers range but also offers roundrobin; librdkafka offers only
    # roundrobin: the coordinator must pick roundrobin, the one both support.
    group = clients.unique_name("g-pick")
    clients.create_topic(broker, topic, 4)
    ms = [members.start(broker, "kp", group, [topic], "pick-kp", strategies=["range", "roundrobin"]),
          members.start(broker, "ck", group, [topic], "pick-ck", strategies=["roundrobin"])]
    split = clients.wait_split(broker, group, ms, topic, 4)
    assert clients.describe_group(broker, group)["protocol_data"] == "roundrobin"
    assert sorted(map(sorted, split.values())) == [[0, 2], [1, 3]]


def test_sticky_members_keep_their_partitions_when_one_joins(broker, topic, members):
    # The sticky assignor finds each member's previous partitions in the user data of
    # its JoinGroup metadata: the coordinator must hand those bytes to the leader as sent.
    group = clients.unique_name("g-sticky-join")
    clients.create_topic(broker, topic, 6)
    ms = [members.start(broker, "kp", group, [topic], f"sticky-kp-{i}", strategies=["sticky"])
          for i in range(2)]
    first = clients.wait_split(broker, group, ms, topic, 6)
    ms.append(members.start(broker, "kp", group, [topic], "sticky-kp-2", strategies=["sticky"]))
    second = clients.wait_split(broker, group, ms, topic, 6, timeout=MOVE_TIMEOUT)
    for cid, ps in first.items():
        assert second[cid] <= ps, f"{cid} had {ps}, now {second[cid]}: not sticky"
    assert sorted(len(ps) for ps in second.values()) == [2, 2, 2]


def test_cooperative_rebalance_revokes_only_what_moves(broker, topic, members):
    # cooperative-sticky (KIP-429): a member joining takes partitions away from the others
    # in several rounds, and the others' revoke callbacks see only those partitions.
    group = clients.unique_name("g-coop")
    clients.create_topic(broker, topic, 6)
    coop = {"strategies": ["cooperative-sticky"]}
    a = members.start(broker, "ck", group, [topic], "coop-ck-a", **coop)
    assert clients.wait_split(broker, group, [a], topic, 6) == {"coop-ck-a": set(range(6))}
    values = clients.produce_counts(broker, topic, counts_for(6), "coop")
    clients.wait_consumed([a], values)

    b = members.start(broker, "ck", group, [topic], "coop-ck-b", **coop)
    after_b = clients.wait_split(broker, group, [a, b], topic, 6, timeout=MOVE_TIMEOUT)
    c = members.start(broker, "ck", group, [topic], "coop-ck-c", **coop)
    final = clients.wait_split(broker, group, [a, b, c], topic, 6, timeout=MOVE_TIMEOUT)
    assert sorted(len(ps) for ps in after_b.values()) == [3, 3]
    assert sorted(len(ps) for ps in final.values()) == [2, 2, 2]

    for m in (a, b, c):
        revoked = [p for e in m.of("revoke") for t, p in e["removed"]]
        kept = final[m.client_id]
        assert not set(revoked) & kept, (
            f"{m} had {sorted(set(revoked) & kept)} revoked although it keeps them: "
            f"an eager rebalance, not a cooperative one ({m.of_any('assign', 'revoke')})")
        assert len(revoked) == len(set(revoked)), f"{m} revoked a partition twice: {revoked}"
        assert not m.of("lost"), f"{m} lost its partitions: {m.of('lost')}"
    # a gave up exactly what the others took, each partition once.
    a_revoked = {p for e in a.of("revoke") for t, p in e["removed"]}
    assert a_revoked == set(range(6)) - final["coop-ck-a"]
    assert a.of("assign")[0]["assignment"] == [[topic, p] for p in range(6)]
    # The records consumed before the joins are not consumed again by the newcomers.
    assert_exactly_once([a, b, c], values)


# ------------------------------------------------------------------ static membership

def test_static_member_restart_causes_no_rebalance(broker, topic, members):
    group = clients.unique_name("g-static")
    clients.create_topic(broker, topic, 4)
    # A long session: the restart must happen well within it on any machine.
    static = {"session_timeout_ms": 30000}
    a = members.start(broker, "ck", group, [topic], "static-a", instance_id="instance-a", **static)
    b = members.start(broker, "ck", group, [topic], "static-b", instance_id="instance-b", **static)
    split = clients.wait_split(broker, group, [a, b], topic, 4)
    before = clients.produce_counts(broker, topic, counts_for(4), "before")
    clients.wait_consumed([a, b], before)
    wait_committed_to_end(broker, group, topic, 4)
    a_moves = a.of_any("assign", "revoke", "lost")
    described = clients.describe_group(broker, group)
    instances = {m["client_id"]: m["group_instance_id"] for m in described["members"]}
    assert instances == {"static-a": "instance-a", "static-b": "instance-b"}
    old_b_id = next(m["member_id"] for m in described["members"] if m["client_id"] == "static-b")

    b.stop()  # a static member leaves no LeaveGroup behind: the broker keeps its place
    b2 = members.start(broker, "ck", group, [topic], "static-b", instance_id="instance-b", **static)
    b2.wait_assigned(timeout=MOVE_TIMEOUT)
    assert b2.partitions(topic) == split["static-b"]
    after = clients.produce_counts(broker, topic, counts_for(4), "after")
    clients.wait_consumed([a, b2], after)
    wait_committed_to_end(broker, group, topic, 4)

    described = clients.describe_group(broker, group)
    assert described["group_state"] == "Stable"
    assert clients.described_assignments(described) == {
        cid: {(topic, p) for p in ps} for cid, ps in split.items()}
    new_b_id = next(m["member_id"] for m in described["members"] if m["client_id"] == "static-b")
    assert new_b_id != old_b_id, "the rejoining static member should get a new member id"
    # No rebalance for a: not one more assign or revoke callback.
    assert a.of_any("assign", "revoke", "lost") == a_moves
    assert_exactly_once([a, b, b2], before + after)


# ------------------------------------------------------------------ broker restart

@pytest.mark.crash
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_group_and_offsets_survive_broker_restart(own_broker, topic, members, how):
    broker = own_broker
    clients.create_topic(broker, topic, 2)
    first = clients.produce_counts(broker, topic, {0: 50, 1: 50}, "first")

    # g: a kafka-python member processes 60 records, commits them with metadata, leaves.
    g = clients.unique_name("g-restart")
    early = members.start(broker, "kp", g, [topic], "restart-kp", metadata="meta-kp", max_records=60)
    early.wait_for(lambda m: m.of("closed"), "the 60-record member to close")
    early.proc.wait(timeout=10)
    assert len(early.records) == 60 and not early.failed_commits, early.summary()
    # h: a librdkafka member commits everything with metadata and rides through the restart.
    h = clients.unique_name("g-restart-live")
    live = members.start(broker, "ck", h, [topic], "restart-ck", metadata="meta-ck")
    clients.wait_consumed([live], first)
    wait_committed_to_end(broker, h, topic, 2)

    offsets_g = clients.group_offsets(broker, g)
    assert offsets_g == {(topic, p): (o, "meta-kp") for (_, p), o in early.committed.items()}
    assert sum(o for o, _ in offsets_g.values()) == 60
    offsets_h = clients.group_offsets(broker, h)
    assert {tp: o for tp, (o, _) in offsets_h.items()} == {(topic, 0): 50, (topic, 1): 50}
    # librdkafka's Python binding sends the metadata with a trailing NUL; whatever was
    # stored must come back unchanged.
    assert all(meta.rstrip("\x00") == "meta-ck" for _, meta in offsets_h.values())

    if how == "stop":
        broker.stop()
    else:
        broker.kill()
    broker.restart()

    # Right after the restart the coordinator may still be loading the groups: ask again.
    def both_listed():
        groups = {x["group_id"]: x for x in retrying(clients.list_groups_kp, broker)}
        return groups if {g, h} <= set(groups) else None

    listed = wait_until(both_listed, "both groups listed after the restart")
    assert listed[g]["protocol_type"] == "consumer" and listed[g]["group_state"] == "Empty"
    description = retrying(clients.describe_group, broker, g)
    assert (description["group_state"], description["protocol_type"], description["members"]) == (
        "Empty", "consumer", [])
    assert retrying(clients.group_offsets, broker, g) == offsets_g
    assert retrying(clients.group_offsets, broker, h) == offsets_h

    second = clients.produce_counts(broker, topic, {0: 10, 1: 10}, "second")
    # A new member of g resumes exactly at the committed offsets.
    resumed = members.start(broker, "ck", g, [topic], "restart-ck-2")
    clients.wait_consumed([early, resumed], first + second)
    assert_exactly_once([early, resumed], first + second)
    for p in (0, 1):
        start = offsets_g[(topic, p)][0]
        assert [o for _, pp, o, _ in resumed.records if pp == p] == list(range(start, 60))
    # The member that stayed up through the restart gets the new records once, no old ones.
    clients.wait_consumed([live], second)
    assert_exactly_once([live], first + second)


# ------------------------------------------------------------------ bad input (raw protocol)
# Error codes, as Apache Kafka answers them.
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
UNKNOWN_TOPIC_OR_PARTITION = 3


@pytest.fixture
def raw(broker):
    connections = []

    def connect(client_id="compat-raw"):
        c = clients.RawGroupClient(broker, client_id)
        connections.append(c)
        return c

    try:
        yield connect
    finally:
        for c in connections:
            c.close()


def test_join_with_another_protocol_is_rejected_and_the_group_goes_on(broker, topic, members, raw):
    group = clients.unique_name("g-inconsistent")
    clients.create_topic(broker, topic, 2)
    member = members.start(broker, "kp", group, [topic], "inconsistent-kp")
    split = clients.wait_split(broker, group, [member], topic, 2)
    moves = member.of_any("assign", "revoke", "lost")

    intruder = raw("compat-intruder")
    intruder.find_coordinator(group)
    # Another protocol type than the group's ("consumer"), as Kafka Connect would send.
    r = intruder.join(group, [topic], protocol_type="connect")
    assert r.error_code == INCONSISTENT_GROUP_PROTOCOL, r
    # The right type, but no assignor in common with the group.
    r = intruder.join(group, [topic], protocols=["no-such-assignor"])
    assert r.error_code == INCONSISTENT_GROUP_PROTOCOL, r

    # The intruder never became a member: the group is as it was, at once.
    described = clients.describe_group(broker, group)
    assert described["group_state"] == "Stable"
    assert clients.described_assignments(described) == {"inconsistent-kp": {(topic, 0), (topic, 1)}}
    # Nothing changed for the member: no rebalance (it would hear of one in its next
    # heartbeat, within a second), same assignment, still consuming.
    values = clients.produce_counts(broker, topic, {0: 3, 1: 4}, "after")
    clients.wait_consumed([member], values)
    time.sleep(2)
    assert member.of_any("assign", "revoke", "lost") == moves
    assert clients.wait_split(broker, group, [member], topic, 2) == split


def test_join_with_invalid_session_timeout_or_group_id_is_rejected(broker, topic, members, raw):
    group = clients.unique_name("g-invalid-join")
    clients.create_topic(broker, topic, 1)
    c = raw()
    c.find_coordinator(group)
    # Kafka's defaults: group.min.session.timeout.ms=6000, group.max.session.timeout.ms=1800000.
    assert c.join(group, [topic], session_timeout_ms=1000).error_code == INVALID_SESSION_TIMEOUT
    assert c.join(group, [topic], session_timeout_ms=1800001).error_code == INVALID_SESSION_TIMEOUT
    assert c.join("", [topic]).error_code == INVALID_GROUP_ID
    # The failed joins left no member behind: a consumer gets the whole topic.
    member = members.start(broker, "ck", group, [topic], "invalid-join-ck", session_timeout_ms=SESSION_MS)
    assert clients.wait_split(broker, group, [member], topic, 1) == {"invalid-join-ck": {0}}


def test_stale_generation_is_rejected_and_the_group_goes_on(broker, topic, members, raw):
    import threading

    group = clients.unique_name("g-stale")
    clients.create_topic(broker, topic, 2)
    values = clients.produce_counts(broker, topic, {0: 10, 1: 10}, "stale")
    a, b = raw("compat-raw-a"), raw("compat-raw-b")
    a.find_coordinator(group)

    # a alone: generation g1, assigned both partitions.
    j1 = a.join(group, [topic])
    assert j1.error_code == 0 and j1.leader == j1.member_id, j1
    a_id, g1 = j1.member_id, j1.generation_id
    s = a.sync(group, g1, a_id, {a_id: clients.RawGroupClient.assignment(topic, [0, 1])})
    assert s.error_code == 0, s
    assert a.commit(group, g1, a_id, {(topic, 0): 1}) == {(topic, 0): 0}

    # b joins: its JoinGroup waits for the rebalance, a hears of it in its heartbeat.
    b_join = {}
    joiner = threading.Thread(target=lambda: b_join.update(r=b.join(group, [topic])), daemon=True)
    joiner.start()
    wait_until(lambda: a.heartbeat(group, g1, a_id) == REBALANCE_IN_PROGRESS,
               "a's heartbeat to say REBALANCE_IN_PROGRESS", interval=0.3)
    j2 = a.join(group, [topic], member_id=a_id)
    joiner.join(timeout=clients.READ_TIMEOUT)
    assert not joiner.is_alive(), "b's JoinGroup never completed"
    jb = b_join["r"]
    assert (j2.error_code, jb.error_code) == (0, 0), (j2, jb)
    g2 = j2.generation_id
    assert jb.generation_id == g2 and g2 > g1, (j2, jb)
    assert j2.leader == jb.leader and j2.leader in (a_id, jb.member_id)
    b_id = jb.member_id
    leader, follower = (a, b) if j2.leader == a_id else (b, a)
    leader_id, follower_id = (a_id, b_id) if leader is a else (b_id, a_id)
    assert sorted(m.member_id for m in (j2 if leader is a else jb).members) == sorted([a_id, b_id])
    plan = {a_id: clients.RawGroupClient.assignment(topic, [0]),
            b_id: clients.RawGroupClient.assignment(topic, [1])}
    assert leader.sync(group, g2, leader_id, plan).error_code == 0
    assert follower.sync(group, g2, follower_id, {}).error_code == 0

    # The old generation is refused everywhere.
    assert a.sync(group, g1, a_id, plan).error_code == ILLEGAL_GENERATION
    assert a.commit(group, g1, a_id, {(topic, 0): 7}) == {(topic, 0): ILLEGAL_GENERATION}
    assert a.heartbeat(group, g1, a_id) == ILLEGAL_GENERATION
    # So are strangers, and topics that do not exist.
    assert a.heartbeat(group, g2, "no-such-member") == UNKNOWN_MEMBER_ID
    assert b.commit(group, g2, b_id, {("no-such-topic-" + topic, 0): 1}) == {
        ("no-such-topic-" + topic, 0): UNKNOWN_TOPIC_OR_PARTITION}
    # The current generation works.
    assert a.heartbeat(group, g2, a_id) == 0
    assert a.commit(group, g2, a_id, {(topic, 0): 4}) == {(topic, 0): 0}
    assert b.commit(group, g2, b_id, {(topic, 1): 6}) == {(topic, 1): 0}
    assert clients.group_offsets(broker, group) == {(topic, 0): (4, ""), (topic, 1): (6, "")}
    assert (a.leave(group, a_id), b.leave(group, b_id)) == (0, 0)

    # A real consumer takes over from the offsets the current generation committed.
    member = members.start(broker, "kp", group, [topic], "stale-kp")
    clients.wait_split(broker, group, [member], topic, 2)
    expected = [v for v in values if int(v.rsplit("-", 1)[1]) >= (4 if "-p0-" in v else 6)]
    clients.wait_consumed([member], expected)
    assert sorted(clients.consumed_values([member])) == sorted(expected)


def test_commit_for_unknown_topic_is_rejected_per_partition(broker, topic, members):
    group = clients.unique_name("g-unknown-topic")
    clients.create_topic(broker, topic, 2)
    values = clients.produce_counts(broker, topic, {0: 5, 1: 5}, "known")
    first = members.start(broker, "kp", group, [topic], "unknown-topic-kp")
    clients.wait_consumed([first], values)
    wait_committed_to_end(broker, group, topic, 2)
    first.stop()

    # An admin commit (the group is empty now) mixing a good partition and bad ones.
    from kafka import TopicPartition
    from kafka.errors import NoError, UnknownTopicOrPartitionError
    from kafka.structs import OffsetAndMetadata
    missing = "no-such-topic-" + topic
    admin = clients.kp_admin(broker)
    try:
        result = admin.alter_group_offsets(group, {
            TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1),
            TopicPartition(topic, 9): OffsetAndMetadata(1, "", -1),
            TopicPartition(missing, 0): OffsetAndMetadata(1, "", -1)})
        assert result == {TopicPartition(topic, 0): NoError,
                          TopicPartition(topic, 9): UnknownTopicOrPartitionError,
                          TopicPartition(missing, 0): UnknownTopicOrPartitionError}
        assert missing not in admin.list_topics(), "a commit must not create the topic"
    finally:
        admin.close()
    assert clients.group_offsets(broker, group) == {(topic, 0): (2, ""), (topic, 1): (5, "")}

    second = members.start(broker, "ck", group, [topic], "unknown-topic-ck")
    clients.wait_consumed([second], ["known-p0-2", "known-p0-3", "known-p0-4"])
    more = clients.produce_counts(broker, topic, {1: 2}, "more")
    clients.wait_consumed([second], more)
    assert sorted(clients.consumed_values([second])) == sorted(
        ["known-p0-2", "known-p0-3", "known-p0-4"] + more)
