//! The group shard's operations, driven with a test clock, with every
//! record kept in memory so that a reload (replaying them into a new shard)
//! can be compared with the live one.

use super::classic_group::GroupState;
use super::membership::{JoinRequest, LeavingMember, SyncRequest};
use super::offsets::OffsetCommitRequest;
use super::shard::{GroupConfig, GroupRecord, GroupShard, Reply};
use crate::coordinator::{CoordinatorResult, Shard, TxnProducer};
use bytes::Bytes;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::ResponseError as E;
use tokio::sync::oneshot;

/// What was written, in order.
enum Entry {
    Records(Vec<GroupRecord>, Option<TxnProducer>),
    Marker(i64, bool),
}

#[derive(Default)]
struct MemLog {
    entries: Vec<Entry>,
}

impl MemLog {
    /// A new shard loaded from what was written (through the records' bytes).
    fn reload(&self, delay: i64, now: i64) -> GroupShard {
        let mut shard = groups(delay);
        for entry in &self.entries {
            match entry {
                Entry::Records(records, producer) => {
                    for r in records {
                        let (key, value) = GroupShard::encode(r);
                        let decoded = GroupShard::decode(&key, value.as_deref()).unwrap();
                        assert_eq!(&decoded, r, "a record survives its encoding");
                        shard.replay(&decoded, *producer, now);
                    }
                }
                Entry::Marker(pid, commit) => shard.replay_marker(*pid, *commit, now),
            }
        }
        shard
    }
}

/// Runs an operation as the runtime does: records written, replayed if asked.
trait Exec {
    fn exec<T>(&mut self, log: &mut MemLog, op: impl FnOnce(&mut GroupShard) -> CoordinatorResult<T, GroupRecord>)
        -> T;
    fn exec_marker(&mut self, log: &mut MemLog, producer_id: i64, commit: bool, now: i64);
}

impl Exec for GroupShard {
    fn exec<T>(
        &mut self,
        log: &mut MemLog,
        op: impl FnOnce(&mut GroupShard) -> CoordinatorResult<T, GroupRecord>,
    ) -> T {
        let result = op(self);
        if !result.records.is_empty() {
            if result.replay {
                for r in &result.records {
                    self.replay(r, result.producer, 0);
                }
            }
            log.entries.push(Entry::Records(result.records, result.producer));
        }
        result.response
    }

    fn exec_marker(&mut self, log: &mut MemLog, producer_id: i64, commit: bool, now: i64) {
        self.replay_marker(producer_id, commit, now);
        log.entries.push(Entry::Marker(producer_id, commit));
    }
}

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn groups(delay: i64) -> GroupShard {
    GroupShard::new(GroupConfig {
        initial_rebalance_delay_ms: delay,
        ..GroupConfig::default()
    })
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: instance.map(String::from),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

fn now_reply<T>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Later(_) => panic!("expected an immediate answer"),
    }
}

fn later<T: std::fmt::Debug>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Later(rx) => rx,
        Reply::Now(t) => panic!("expected a delayed answer, got {t:?}"),
    }
}

/// A new dynamic member: MEMBER_ID_REQUIRED, then the join proper.
fn join_new(g: &mut GroupShard, log: &mut MemLog, now: i64) -> (String, Reply<JoinGroupResponse>) {
    let first = now_reply(g.exec(log, |s| s.join(join_req("", None, &["range"]), now)));
    assert_eq!(first.error_code, E::MemberIdRequired.code());
    let id = first.member_id.to_string();
    let reply = g.exec(log, |s| s.join(join_req(&id, None, &["range"]), now));
    (id, reply)
}

fn sync_req(member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation,
        member_id: member.into(),
        instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn state(g: &GroupShard) -> GroupState {
    g.group("g").unwrap().state
}

#[test]
fn a_lone_member_joins_syncs_and_heartbeats_without_waiting() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (id, reply) = join_new(&mut g, &mut log, 0);
    let joined = later(reply).try_recv().expect("answered at once with no initial delay");
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.as_str(), id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(state(&g), GroupState::CompletingRebalance);
    let synced = later(g.exec(&mut log, |s| s.sync(sync_req(&id, 1, &[(&id, "all")]), 10)))
        .try_recv()
        .unwrap();
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"all"[..]));
    assert_eq!(state(&g), GroupState::Stable);
    assert_eq!(g.heartbeat("g", 1, &id, None, 20), 0);
    assert_eq!(g.heartbeat("g", 0, &id, None, 20), E::IllegalGeneration.code());
    assert_eq!(g.heartbeat("g", 1, "nobody", None, 20), E::UnknownMemberId.code());
    // The assignment is persisted with the group: a reload has it.
    let reloaded = log.reload(0, 20);
    let group = reloaded.group("g").expect("the group is persisted");
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(&group.members[&id].assignment[..], b"all");
}

#[test]
fn a_second_member_triggers_a_rebalance_that_both_complete() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    later(g.exec(&mut log, |s| s.sync(sync_req(&a, 1, &[(&a, "p0-p5")]), 0)))
        .try_recv()
        .unwrap();

    let (b, b_join) = join_new(&mut g, &mut log, 100);
    let mut b_join = later(b_join);
    assert!(b_join.try_recv().is_err(), "B waits for A to rejoin");
    assert_eq!(state(&g), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat("g", 1, &a, None, 200), E::RebalanceInProgress.code());
    let a_join = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 300)))
        .try_recv()
        .unwrap();
    let b_join = b_join.try_recv().unwrap();
    assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
    assert_eq!(a_join.leader.as_str(), a);
    assert_eq!(a_join.members.len(), 2, "the leader sees every member");
    assert!(b_join.members.is_empty(), "followers see none");

    let mut b_sync = later(g.exec(&mut log, |s| s.sync(sync_req(&b, 2, &[]), 400)));
    assert!(b_sync.try_recv().is_err(), "B waits for the leader's assignment");
    let a_sync = later(g.exec(&mut log, |s| {
        s.sync(sync_req(&a, 2, &[(&a, "p0-p2"), (&b, "p3-p5")]), 500)
    }))
    .try_recv()
    .unwrap();
    assert_eq!(&a_sync.assignment[..], b"p0-p2");
    assert_eq!(&b_sync.try_recv().unwrap().assignment[..], b"p3-p5");
    assert_eq!(state(&g), GroupState::Stable);
    // A stale generation is refused.
    let stale = now_reply(g.exec(&mut log, |s| s.sync(sync_req(&b, 1, &[]), 600)));
    assert_eq!(stale.error_code, E::IllegalGeneration.code());
}

/// Two members, stable at generation 2; returns their ids.
fn stable_pair(g: &mut GroupShard, log: &mut MemLog) -> (String, String) {
    let (a, reply) = join_new(g, log, 0);
    later(reply).try_recv().unwrap();
    let (b, b_reply) = join_new(g, log, 0);
    let mut b_rx = later(b_reply);
    later(g.exec(log, |s| s.join(join_req(&a, None, &["range"]), 0)))
        .try_recv()
        .unwrap();
    b_rx.try_recv().unwrap();
    let mut b_sync = later(g.exec(log, |s| s.sync(sync_req(&b, 2, &[]), 0)));
    later(g.exec(log, |s| s.sync(sync_req(&a, 2, &[(&a, "x"), (&b, "y")]), 0)))
        .try_recv()
        .unwrap();
    b_sync.try_recv().unwrap();
    (a, b)
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, b) = stable_pair(&mut g, &mut log);
    assert_eq!(g.heartbeat("g", 2, &a, None, 9_000), 0);
    g.exec(&mut log, |s| s.tick(9_500));
    assert_eq!(g.group("g").unwrap().members.len(), 2, "B is within its session");
    g.exec(&mut log, |s| s.tick(SESSION as i64 + 1));
    assert!(!g.group("g").unwrap().members.contains_key(&b));
    assert_eq!(state(&g), GroupState::PreparingRebalance);
    let joined = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 10_100)))
        .try_recv()
        .unwrap();
    assert_eq!((joined.generation_id, joined.members.len()), (3, 1));
}

#[test]
fn leaving_rebalances_the_rest_at_once() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, b) = stable_pair(&mut g, &mut log);
    let (top, per) = g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: b.clone(),
                instance_id: None,
            }],
            100,
        )
    });
    assert_eq!((top, per), (0, vec![0]));
    assert_eq!(state(&g), GroupState::PreparingRebalance);
    let joined = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 200)))
        .try_recv()
        .unwrap();
    assert_eq!(joined.members.len(), 1);
    let (_, per) = g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: "ghost".into(),
                instance_id: None,
            }],
            300,
        )
    });
    assert_eq!(per, vec![E::UnknownMemberId.code()]);
    // The last member leaving empties the group.
    g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: a,
                instance_id: None,
            }],
            400,
        )
    });
    assert_eq!(state(&g), GroupState::Empty);
}

#[test]
fn the_initial_delay_waits_for_more_members() {
    let (mut g, mut log) = (groups(3000), MemLog::default());
    let (_, a) = join_new(&mut g, &mut log, 0);
    let mut a = later(a);
    let (_, b) = join_new(&mut g, &mut log, 1000);
    let mut b = later(b);
    g.exec(&mut log, |s| s.tick(2999));
    assert!(a.try_recv().is_err());
    // A member joined during the delay: it is extended once more.
    g.exec(&mut log, |s| s.tick(3000));
    assert!(a.try_recv().is_err());
    g.exec(&mut log, |s| s.tick(6000));
    let (a, b) = (a.try_recv().unwrap(), b.try_recv().unwrap());
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
}

#[test]
fn members_that_do_not_rejoin_or_sync_in_time_are_dropped() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, b) = stable_pair(&mut g, &mut log);
    // A new member forces a rebalance; B never rejoins.
    let (_, c) = join_new(&mut g, &mut log, 1000);
    let mut c = later(c);
    let mut a_join = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 1000)));
    g.heartbeat("g", 2, &b, None, 1000);
    g.exec(&mut log, |s| s.tick(1000 + REBALANCE as i64));
    assert_eq!(a_join.try_recv().unwrap().members.len(), 2, "A and C, without B");
    assert_eq!(c.try_recv().unwrap().generation_id, 3);
    assert!(!g.group("g").unwrap().members.contains_key(&b));
    // Nobody syncs: after the rebalance timeout the laggards go.
    g.exec(&mut log, |s| s.tick(1000 + 2 * REBALANCE as i64 + 1));
    assert!(g.group("g").unwrap().members.is_empty());
    assert_eq!(state(&g), GroupState::Empty);
}

#[test]
fn a_static_member_restarting_takes_its_place_without_a_rebalance() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let first = later(g.exec(&mut log, |s| s.join(join_req("", Some("pod-1"), &["range"]), 0)))
        .try_recv()
        .unwrap();
    let old = first.member_id.to_string();
    later(g.exec(&mut log, |s| s.sync(sync_req(&old, 1, &[(&old, "mine")]), 0)))
        .try_recv()
        .unwrap();
    // Restart: a new member id, same instance id, same generation, same assignment.
    let again = now_reply(g.exec(&mut log, |s| s.join(join_req("", Some("pod-1"), &["range"]), 5000)));
    assert_eq!((again.error_code, again.generation_id), (0, 1));
    let new = again.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(state(&g), GroupState::Stable);
    let mut sync = sync_req(&new, 1, &[]);
    sync.instance_id = Some("pod-1".into());
    assert_eq!(
        &now_reply(g.exec(&mut log, |s| s.sync(sync, 5100))).assignment[..],
        b"mine"
    );
    // The old incarnation is fenced.
    assert_eq!(
        g.heartbeat("g", 1, &old, Some("pod-1"), 5200),
        E::FencedInstanceId.code()
    );
    assert_eq!(g.heartbeat("g", 1, &new, Some("pod-1"), 5200), 0);
}

#[test]
fn bad_joins_get_kafka_errors() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let mut short = join_req("", None, &["range"]);
    short.session_timeout_ms = 100;
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(short, 0))).error_code,
        E::InvalidSessionTimeout.code()
    );
    let mut no_group = join_req("", None, &["range"]);
    no_group.group_id = String::new();
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(no_group, 0))).error_code,
        E::InvalidGroupId.code()
    );
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(join_req("stranger", None, &["range"]), 0))).error_code,
        E::UnknownMemberId.code()
    );
    let (_, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    let mut other_type = join_req("", None, &["range"]);
    other_type.protocol_type = "connect".into();
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(other_type, 0))).error_code,
        E::InconsistentGroupProtocol.code()
    );
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(join_req("", None, &["roundrobin"]), 0))).error_code,
        E::InconsistentGroupProtocol.code()
    );
}

#[test]
fn the_protocol_most_members_prefer_wins() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let mut a = join_req("", None, &["sticky", "range"]);
    a.require_known_member_id = false;
    let a = later(g.exec(&mut log, |s| s.join(a, 0))).try_recv().unwrap();
    assert_eq!(a.protocol_name.as_deref(), Some("sticky"));
    later(g.exec(&mut log, |s| {
        s.sync(
            {
                let mut s = sync_req(&a.member_id, 1, &[]);
                s.protocol_name = Some("sticky".into());
                s
            },
            0,
        )
    }))
    .try_recv()
    .unwrap();
    let mut b = join_req("", None, &["range", "sticky"]);
    b.require_known_member_id = false;
    let mut c = join_req("", None, &["range"]);
    c.require_known_member_id = false;
    let _b = later(g.exec(&mut log, |s| s.join(b, 1)));
    // "sticky" is not supported by C: only "range" is common.
    let _c = later(g.exec(&mut log, |s| s.join(c, 1)));
    let mut a_again = join_req(&a.member_id, None, &["sticky", "range"]);
    a_again.require_known_member_id = false;
    let joined = later(g.exec(&mut log, |s| s.join(a_again, 2))).try_recv().unwrap();
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
}

fn commit(group: &str, generation: i32, member: &str, offsets: &[(&str, i32, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        generation,
        member_id: member.into(),
        instance_id: None,
        version: 8,
        offsets: offsets
            .iter()
            .map(|(t, p, o)| (t.to_string(), *p, *o, 0, Some(format!("meta-{o}"))))
            .collect(),
    }
}

#[test]
fn offsets_committed_in_a_transaction_count_once_it_commits() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |t: &str, p: i32| t == "orders" && p == 0;
    let producer = |producer_id| TxnProducer {
        producer_id,
        producer_epoch: 0,
    };
    let codes = g.exec(&mut log, |s| {
        s.commit_txn_offsets(commit("eos", -1, "", &[("orders", 0, 5)]), producer(7), &exists, 1)
    });
    assert_eq!(codes, vec![0]);
    assert!(
        matches!(&log.entries[..], [Entry::Records(_, Some(p))] if p.producer_id == 7),
        "written as transactional records only"
    );
    assert!(g.has_pending_txn_offset("eos", "orders", 0));
    assert!(g.fetch_offsets("eos", None).is_empty(), "not visible before the commit");
    g.exec_marker(&mut log, 7, true, 2);
    assert!(!g.has_pending_txn_offset("eos", "orders", 0));
    let fetched = g.fetch_offsets("eos", None);
    assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
    // An aborted transaction's offsets are dropped.
    g.exec(&mut log, |s| {
        s.commit_txn_offsets(commit("eos", -1, "", &[("orders", 0, 9)]), producer(8), &exists, 3)
    });
    g.exec_marker(&mut log, 8, false, 4);
    let fetched = g.fetch_offsets("eos", None);
    assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
    // Validated as OffsetCommit is: an unknown member is refused.
    assert_eq!(
        g.exec(&mut log, |s| s.commit_txn_offsets(
            commit("eos", 3, "ghost", &[("orders", 0, 1)]),
            producer(9),
            &exists,
            5
        )),
        vec![E::UnknownMemberId.code()]
    );
}

#[test]
fn offsets_commit_fetch_survive_a_reload_and_expire() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |t: &str, p: i32| t == "orders" && (0..3).contains(&p);
    // A simple group (no membership) commits at generation -1.
    let codes = g.exec(&mut log, |s| {
        s.commit_offsets(
            commit(
                "simple",
                -1,
                "",
                &[("orders", 0, 10), ("orders", 1, 20), ("nope", 0, 1)],
            ),
            &exists,
            0,
        )
    });
    assert_eq!(codes, vec![0, 0, E::UnknownTopicOrPartition.code()]);
    let fetched = g.fetch_offsets("simple", Some(&[("orders".to_string(), vec![0, 1, 2])]));
    let got: Vec<(i32, Option<i64>)> = fetched[0]
        .1
        .iter()
        .map(|(p, o)| (*p, o.as_ref().map(|o| o.offset)))
        .collect();
    assert_eq!(got, vec![(0, Some(10)), (1, Some(20)), (2, None)]);
    assert_eq!(fetched[0].1[0].1.as_ref().unwrap().metadata, "meta-10");
    // Membership rules for a managed group.
    let (a, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    let codes = g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", 1, &a, &[("orders", 0, 5)]), &exists, 0)
    });
    assert_eq!(codes, vec![E::RebalanceInProgress.code()], "not yet synced");
    later(g.exec(&mut log, |s| s.sync(sync_req(&a, 1, &[(&a, "x")]), 0)))
        .try_recv()
        .unwrap();
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(
            commit("g", 1, &a, &[("orders", 0, 5)]),
            &exists,
            0
        )),
        vec![0]
    );
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(
            commit("g", 0, &a, &[("orders", 0, 6)]),
            &exists,
            0
        )),
        vec![E::IllegalGeneration.code()]
    );
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(
            commit("g", -1, "", &[("orders", 0, 6)]),
            &exists,
            0
        )),
        vec![E::UnknownMemberId.code()],
        "admin commits need an inactive group"
    );
    let mut big = commit("g", 1, &a, &[("orders", 0, 7)]);
    big.offsets[0].4 = Some("x".repeat(5000));
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(big, &exists, 0)),
        vec![E::OffsetMetadataTooLarge.code()]
    );

    // A restart reads the same state back.
    let mut reloaded = log.reload(0, 1000);
    assert_eq!(reloaded.group("g").unwrap().state, GroupState::Stable);
    assert!(reloaded.group("g").unwrap().members.contains_key(&a));
    assert_eq!(reloaded.heartbeat("g", 1, &a, None, 1000), 0);
    let o = reloaded.fetch_offsets("g", None);
    assert_eq!((o[0].0.as_str(), o[0].1[0].1.as_ref().unwrap().offset), ("orders", 5));
    assert_eq!(reloaded.fetch_offsets("simple", None)[0].1.len(), 2);

    // Offsets of the simple group expire a retention period after their commit.
    let retention = GroupConfig::default().offsets_retention_ms;
    assert_eq!(reloaded.exec(&mut log, |s| s.expire_offsets(retention - 1)), 0);
    assert_eq!(reloaded.exec(&mut log, |s| s.expire_offsets(retention)), 2);
    assert!(reloaded.group("simple").is_none());
}

#[test]
fn delete_group_needs_an_empty_group_and_leaves_tombstones() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |_: &str, _: i32| true;
    let (a, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    assert_eq!(g.exec(&mut log, |s| s.delete_group("g")), E::NonEmptyGroup.code());
    assert_eq!(
        g.exec(&mut log, |s| s.delete_group("absent")),
        E::GroupIdNotFound.code()
    );
    g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: a,
                instance_id: None,
            }],
            0,
        )
    });
    g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", -1, "", &[("t", 0, 1)]), &exists, 0)
    });
    assert_eq!(g.exec(&mut log, |s| s.delete_group("g")), 0);
    assert!(g.group("g").is_none());
    let reloaded = log.reload(0, 0);
    assert!(reloaded.group("g").is_none(), "nothing of the group survives a reload");
}

/// What a group keeps across a restart: generation, protocol, leader,
/// members with their assignments, committed offsets.
fn durable(g: &GroupShard) -> Vec<String> {
    let mut out: Vec<String> = g
        .groups
        .values()
        .map(|group| {
            let members: Vec<String> = group
                .members
                .values()
                .map(|m| format!("{}={:?}", m.id, m.assignment))
                .collect();
            format!(
                "{} {:?} gen={} {:?} leader={:?} members={members:?} offsets={:?}",
                group.id, group.state, group.generation, group.protocol, group.leader, group.offsets
            )
        })
        .collect();
    out.sort();
    let mut pending: Vec<String> = g
        .pending_txn
        .iter()
        .map(|(p, o)| format!("pending {p} {o:?}"))
        .collect();
    pending.sort();
    out.extend(pending);
    out
}

#[test]
fn loading_replays_the_records_into_the_same_state() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |_: &str, _: i32| true;
    let (a, b) = stable_pair(&mut g, &mut log);
    g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", 2, &a, &[("orders", 0, 10), ("orders", 1, 11)]), &exists, 1)
    });
    g.exec(&mut log, |s| {
        s.commit_offsets(commit("simple", -1, "", &[("t", 0, 1), ("t", 1, 2)]), &exists, 2)
    });
    let producer = |producer_id| TxnProducer {
        producer_id,
        producer_epoch: 0,
    };
    // One transaction commits, one aborts, one stays open.
    for (pid, offset) in [(7, 20), (8, 30), (9, 40)] {
        let req = commit("eos", -1, "", &[("orders", 0, offset)]);
        g.exec(&mut log, |s| s.commit_txn_offsets(req, producer(pid), &exists, 3));
    }
    g.exec_marker(&mut log, 7, true, 4);
    g.exec_marker(&mut log, 8, false, 4);
    let (_, codes) = g.exec(&mut log, |s| s.delete_offsets("simple", &[("t".to_string(), 1)]));
    assert_eq!(codes, vec![0]);
    // b leaves; a rejoins alone and syncs: a new generation.
    g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: b.clone(),
                instance_id: None,
            }],
            5,
        )
    });
    later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 6)))
        .try_recv()
        .unwrap();
    later(g.exec(&mut log, |s| s.sync(sync_req(&a, 3, &[(&a, "everything")]), 7)))
        .try_recv()
        .unwrap();
    let live = durable(&g);
    assert!(live.iter().any(|l| l.starts_with("g Stable gen=3")), "{live:#?}");
    assert!(live.iter().any(|l| l.starts_with("pending 9")), "{live:#?}");
    assert_eq!(durable(&log.reload(0, 8)), live);
}
