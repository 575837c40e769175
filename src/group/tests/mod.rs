//! Tests of the group shard's operations, driven with a test clock. The
//! records written are kept in memory so that a reload (replaying them into
//! a new shard) can be compared with the live one.

mod membership;
mod offsets;
mod share_groups;

use crate::coordinator::{CoordinatorResult, Shard, TxnProducer};
use crate::group::classic_group::GroupState;
use crate::group::membership::{JoinRequest, SyncRequest};
use crate::group::offsets::OffsetCommitRequest;
use crate::group::shard::{GroupConfig, GroupRecord, GroupShard, Reply};
use bytes::Bytes;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::ResponseError as E;
use tokio::sync::oneshot;

/// What was written, in order.
pub(super) enum Entry {
    Records(Vec<GroupRecord>, Option<TxnProducer>),
    Marker(i64, bool),
}

#[derive(Default)]
pub(super) struct MemLog {
    pub(super) entries: Vec<Entry>,
}

impl MemLog {
    /// A new shard loaded from what was written (through the records' bytes).
    pub(super) fn reload(&self, delay: i64, now: i64) -> GroupShard {
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
pub(super) trait Exec {
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

pub(super) const SESSION: i32 = 10_000;
pub(super) const REBALANCE: i32 = 30_000;

pub(super) fn groups(delay: i64) -> GroupShard {
    GroupShard::new(GroupConfig {
        initial_rebalance_delay_ms: delay,
        ..GroupConfig::default()
    })
}

pub(super) fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
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
        topics: Default::default(),
    }
}

pub(super) fn now_reply<T>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Later(_) => panic!("expected an immediate answer"),
    }
}

pub(super) fn later<T: std::fmt::Debug>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Later(rx) => rx,
        Reply::Now(t) => panic!("expected a delayed answer, got {t:?}"),
    }
}

/// A new dynamic member: MEMBER_ID_REQUIRED, then the join proper.
pub(super) fn join_new(g: &mut GroupShard, log: &mut MemLog, now: i64) -> (String, Reply<JoinGroupResponse>) {
    let first = now_reply(g.exec(log, |s| s.join(join_req("", None, &["range"]), now)));
    assert_eq!(first.error_code, E::MemberIdRequired.code());
    let id = first.member_id.to_string();
    let reply = g.exec(log, |s| s.join(join_req(&id, None, &["range"]), now));
    (id, reply)
}

pub(super) fn sync_req(member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
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

pub(super) fn state(g: &GroupShard) -> GroupState {
    g.group("g").unwrap().state
}

pub(super) fn stable_pair(g: &mut GroupShard, log: &mut MemLog) -> (String, String) {
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

pub(super) fn commit(group: &str, generation: i32, member: &str, offsets: &[(&str, i32, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        generation,
        member_id: member.into(),
        instance_id: None,
        version: 8,
        transactional: false,
        offsets: offsets
            .iter()
            .map(|(t, p, o)| (t.to_string(), *p, *o, 0, Some(format!("meta-{o}"))))
            .collect(),
    }
}
