//! `GroupCoordinator` state machine: Kafka's classic group protocol (join,
//! sync, heartbeat, leave, timeouts) and committed offsets. Synchronous and
//! driven by the caller's clock, so tests control time; writes go through a
//! `GroupLog`, and delayed answers are delivered through oneshot channels.

use super::classic_group::{CommittedOffset, Group, GroupState, Member};
use super::records::{RecordKey, RecordValue};
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::oneshot;

use crate::state_topic::TxnProducer;

/// Committed offsets by topic: (partition, offset if committed).
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// Where group records go (`__consumer_offsets` in production).
pub trait GroupLog {
    /// Persists `records` (key, value or None for a tombstone) for `group`.
    fn write(&mut self, group: &str, records: Vec<(RecordKey, Option<Bytes>)>) -> Result<(), i16>;
    /// Persists records that count only if `producer`'s transaction commits.
    fn write_txn(
        &mut self,
        group: &str,
        records: Vec<(RecordKey, Option<Bytes>)>,
        producer: TxnProducer,
    ) -> Result<(), i16>;
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub offsets_retention_ms: i64,
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// An answer now, or one that arrives when the group moves on.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: new members first get MEMBER_ID_REQUIRED and an id.
    pub require_known_member_id: bool,
}

pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A member leaving: by member id, or by instance id for static members.
pub struct LeavingMember {
    pub member_id: String,
    pub instance_id: Option<String>,
}

pub struct OffsetCommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// OffsetCommit v9+ answers GROUP_ID_NOT_FOUND where older ones say ILLEGAL_GENERATION.
    pub version: i16,
    /// (topic, partition, offset, leader epoch, metadata)
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

/// A group as DescribeGroups shows it.
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(s(member_id))
        .with_protocol_name(None)
}

fn sync_error(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Offsets committed in a transaction, waiting for its marker:
/// (group, topic, partition) → offset.
type PendingOffsets = BTreeMap<(String, String, i32), CommittedOffset>;

pub struct Groups {
    groups: HashMap<String, Group>,
    config: GroupConfig,
    /// By producer id.
    pending_txn: HashMap<i64, PendingOffsets>,
}

impl Groups {
    pub fn new(config: GroupConfig) -> Groups {
        Groups {
            groups: HashMap::new(),
            config,
            pending_txn: HashMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// Rebuilds state from the latest record of every key (start-up).
    pub fn load(&mut self, records: BTreeMap<RecordKey, RecordValue>, now: i64) {
        for (key, value) in &records {
            if let (RecordKey::Group { group }, RecordValue::Group(v)) = (key, value) {
                self.groups.insert(group.clone(), Group::from_value(group, v, now));
            }
        }
        for (key, value) in records {
            if let (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                RecordValue::Offset(v),
            ) = (key, value)
            {
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now));
                g.offsets.insert(
                    (topic, partition),
                    CommittedOffset {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp: v.commit_timestamp,
                    },
                );
            }
        }
    }

    /// Restores offsets of transactions still open at start-up.
    pub fn load_pending(&mut self, pending: HashMap<i64, Vec<(RecordKey, RecordValue)>>) {
        for (producer_id, records) in pending {
            let offsets = self.pending_txn.entry(producer_id).or_default();
            for (key, value) in records {
                if let (
                    RecordKey::Offset {
                        group,
                        topic,
                        partition,
                    },
                    RecordValue::Offset(v),
                ) = (key, value)
                {
                    offsets.insert(
                        (group, topic, partition),
                        CommittedOffset {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                        },
                    );
                }
            }
        }
    }

    /// Every live record, for rewriting the log without its history.
    pub fn live_records(&self) -> Vec<(String, RecordKey, Bytes)> {
        let mut out = Vec::new();
        for g in self.groups.values() {
            if g.protocol_type.is_some() || !g.members.is_empty() {
                out.push((
                    g.id.clone(),
                    RecordKey::Group { group: g.id.clone() },
                    g.to_value().encode(),
                ));
            }
            for ((topic, partition), o) in &g.offsets {
                out.push((
                    g.id.clone(),
                    RecordKey::Offset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    o.to_value().encode(),
                ));
            }
        }
        out
    }

    fn persist_group(log: &mut dyn GroupLog, group: &Group) -> Result<(), i16> {
        log.write(
            &group.id,
            vec![(
                RecordKey::Group {
                    group: group.id.clone(),
                },
                Some(group.to_value().encode()),
            )],
        )
    }

    // ----- JoinGroup -------------------------------------------------------------------------

    pub fn join(&mut self, log: &mut dyn GroupLog, req: JoinRequest, now: i64) -> Reply<JoinGroupResponse> {
        if req.group_id.is_empty() {
            return Reply::Now(join_error(E::InvalidGroupId.code(), &req.member_id));
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Reply::Now(join_error(E::InvalidSessionTimeout.code(), &req.member_id));
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Reply::Now(join_error(E::UnknownMemberId.code(), &req.member_id));
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let delay = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(&req.group_id).expect("inserted above");
        if !group.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(join_error(E::InconsistentGroupProtocol.code(), &req.member_id));
        }
        if req.member_id.is_empty() {
            join_unknown_member(group, log, req, delay, now)
        } else {
            join_known_member(group, log, req, delay, now)
        }
    }

    // ----- SyncGroup -------------------------------------------------------------------------

    pub fn sync(&mut self, log: &mut dyn GroupLog, req: SyncRequest, now: i64) -> Reply<SyncGroupResponse> {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Reply::Now(sync_error(E::UnknownMemberId.code()));
        };
        if let Err(code) = validate_member(group, &req.member_id, req.instance_id.as_deref()) {
            return Reply::Now(sync_error(code));
        }
        if req.generation != group.generation {
            return Reply::Now(sync_error(E::IllegalGeneration.code()));
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != group.protocol.as_ref())
        {
            return Reply::Now(sync_error(E::InconsistentGroupProtocol.code()));
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Reply::Now(sync_error(E::UnknownMemberId.code())),
            GroupState::PreparingRebalance => Reply::Now(sync_error(E::RebalanceInProgress.code())),
            GroupState::Stable => {
                let member = &mut group.members[&req.member_id];
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                let assignment = member.assignment.clone();
                Reply::Now(sync_ok(group, &assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let member = group.members.get_mut(&req.member_id).expect("validated");
                member.awaiting_sync = Some(tx);
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                group.pending_sync.remove(&req.member_id);
                if group.is_leader(&req.member_id) {
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in group.members.values_mut() {
                        m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
                    }
                    match Self::persist_group(log, group) {
                        Ok(()) => {
                            group.transition(GroupState::Stable, now);
                            group.sync_deadline = None;
                            group.pending_sync.clear();
                            let (protocol_type, protocol) = (group.protocol_type.clone(), group.protocol.clone());
                            for m in group.members.values_mut() {
                                if let Some(tx) = m.awaiting_sync.take() {
                                    let _ = tx.send(
                                        SyncGroupResponse::default()
                                            .with_protocol_type(protocol_type.as_deref().map(s))
                                            .with_protocol_name(protocol.as_deref().map(s))
                                            .with_assignment(m.assignment.clone()),
                                    );
                                }
                            }
                        }
                        Err(code) => {
                            for m in group.members.values_mut() {
                                m.assignment = Bytes::new();
                                if let Some(tx) = m.awaiting_sync.take() {
                                    let _ = tx.send(sync_error(code));
                                }
                            }
                            prepare_rebalance(group, 0, now);
                        }
                    }
                }
                Reply::Later(rx)
            }
        }
    }

    // ----- Heartbeat -------------------------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return E::UnknownMemberId.code();
        };
        if matches!(group.state, GroupState::Empty | GroupState::Dead) {
            return E::UnknownMemberId.code();
        }
        if let Err(code) = validate_member(group, member_id, instance_id) {
            return code;
        }
        if generation != group.generation {
            return E::IllegalGeneration.code();
        }
        let member = group.members.get_mut(member_id).expect("validated");
        member.heartbeat_deadline = now + member.session_timeout_ms as i64;
        match group.state {
            GroupState::PreparingRebalance => E::RebalanceInProgress.code(),
            _ => 0,
        }
    }

    // ----- LeaveGroup ------------------------------------------------------------------------

    /// Returns the top-level error and one error per leaving member.
    pub fn leave(
        &mut self,
        log: &mut dyn GroupLog,
        group_id: &str,
        leaving: &[LeavingMember],
        now: i64,
    ) -> (i16, Vec<i16>) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return (
                E::UnknownMemberId.code(),
                vec![E::UnknownMemberId.code(); leaving.len()],
            );
        };
        let mut errors = Vec::with_capacity(leaving.len());
        for l in leaving {
            let member_id = if l.member_id.is_empty() {
                match l.instance_id.as_ref().and_then(|i| group.static_members.get(i)) {
                    Some(id) => id.clone(),
                    None => {
                        errors.push(E::UnknownMemberId.code());
                        continue;
                    }
                }
            } else {
                l.member_id.clone()
            };
            if group.pending_members.remove(&member_id).is_some() {
                errors.push(0);
                try_complete_join(group, log, now);
                continue;
            }
            match validate_member(group, &member_id, l.instance_id.as_deref()) {
                Ok(()) => {
                    remove_member_and_rebalance(group, log, &member_id, now);
                    errors.push(0);
                }
                Err(code) => errors.push(code),
            }
        }
        (0, errors)
    }

    // ----- Timers ----------------------------------------------------------------------------

    /// Applies every deadline that has passed: initial delays, join and
    /// sync timeouts, expired sessions and pending members.
    pub fn tick(&mut self, log: &mut dyn GroupLog, now: i64) {
        let delay = self.config.initial_rebalance_delay_ms;
        for group in self.groups.values_mut() {
            let expired_pending: Vec<String> = group
                .pending_members
                .iter()
                .filter(|(_, deadline)| **deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired_pending {
                group.pending_members.remove(&id);
                try_complete_join(group, log, now);
            }
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none() && m.heartbeat_deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %group.id, member = %id, "session timed out; removing member");
                remove_member_and_rebalance(group, log, &id, now);
            }
            if let Some((deadline, remaining)) = group.initial_delay {
                if deadline <= now {
                    if group.new_member_added && remaining > 0 {
                        group.new_member_added = false;
                        let step = delay.min(remaining);
                        group.initial_delay = Some((now + step, remaining - step));
                    } else {
                        group.initial_delay = None;
                        complete_join(group, log, now);
                    }
                }
            }
            if group.state == GroupState::PreparingRebalance
                && group.initial_delay.is_none()
                && group.join_deadline.is_some_and(|d| d <= now)
            {
                complete_join(group, log, now);
            }
            if group.state == GroupState::CompletingRebalance && group.sync_deadline.is_some_and(|d| d <= now) {
                let laggards: Vec<String> = group.pending_sync.iter().cloned().collect();
                group.sync_deadline = None;
                for id in laggards {
                    tracing::info!(group = %group.id, member = %id, "no SyncGroup within the rebalance timeout; removing member");
                    group.remove_member(&id);
                }
                prepare_rebalance(group, 0, now);
                try_complete_join(group, log, now);
            }
        }
    }

    /// The earliest deadline any group waits for, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |d: i64| next = Some(next.map_or(d, |n: i64| n.min(d)));
        for g in self.groups.values() {
            for d in g.pending_members.values() {
                consider(*d);
            }
            for m in g.members.values() {
                if m.awaiting_join.is_none() && m.awaiting_sync.is_none() {
                    consider(m.heartbeat_deadline);
                }
            }
            if let Some((d, _)) = g.initial_delay {
                consider(d);
            }
            if g.state == GroupState::PreparingRebalance {
                if let Some(d) = g.join_deadline {
                    consider(d);
                }
            }
            if g.state == GroupState::CompletingRebalance {
                if let Some(d) = g.sync_deadline {
                    consider(d);
                }
            }
        }
        next
    }

    // ----- Offsets ---------------------------------------------------------------------------

    /// The group a commit goes to, checked as Kafka checks it: an unknown group
    /// is created by a commit outside any generation (a simple group).
    fn group_to_commit_to(&mut self, req: &OffsetCommitRequest, now: i64) -> Result<&mut Group, i16> {
        if req.group_id.is_empty() {
            return Err(E::InvalidGroupId.code());
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation >= 0 {
                // OffsetCommit v9+ names the problem; older versions and TxnOffsetCommit
                // (whose versions stop at 3) say the generation is wrong.
                return Err(if req.version >= 9 {
                    E::GroupIdNotFound.code()
                } else {
                    E::IllegalGeneration.code()
                });
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let group = self.groups.get_mut(&req.group_id).expect("present");
        validate_offset_commit(group, req)?;
        Ok(group)
    }

    /// Commits offsets; returns one error code per requested partition, in
    /// order. `exists` says whether a topic partition exists.
    pub fn commit_offsets(
        &mut self,
        log: &mut dyn GroupLog,
        req: OffsetCommitRequest,
        exists: &dyn Fn(&str, i32) -> bool,
        now: i64,
    ) -> Vec<i16> {
        let max_metadata_bytes = self.config.offset_metadata_max_bytes;
        let group = match self.group_to_commit_to(&req, now) {
            Ok(group) => group,
            Err(code) => return vec![code; req.offsets.len()],
        };
        if let Some(m) = group.members.get_mut(&req.member_id) {
            m.heartbeat_deadline = now + m.session_timeout_ms as i64;
        }
        let (codes, records, accepted) = prepare_offsets(&req, max_metadata_bytes, exists, now);
        if records.is_empty() {
            return codes;
        }
        if let Err(code) = log.write(&req.group_id, records) {
            return codes.into_iter().map(|c| if c == 0 { code } else { c }).collect();
        }
        group.offsets.extend(accepted);
        codes
    }

    /// TxnOffsetCommit: offsets that take effect when the producer's
    /// transaction commits (`complete_txn`). Validated as OffsetCommit is.
    pub fn commit_txn_offsets(
        &mut self,
        log: &mut dyn GroupLog,
        req: OffsetCommitRequest,
        producer: TxnProducer,
        exists: &dyn Fn(&str, i32) -> bool,
        now: i64,
    ) -> Vec<i16> {
        if let Err(code) = self.group_to_commit_to(&req, now) {
            return vec![code; req.offsets.len()];
        }
        let (codes, records, accepted) = prepare_offsets(&req, self.config.offset_metadata_max_bytes, exists, now);
        let accepted = accepted
            .into_iter()
            .map(|((topic, partition), committed)| ((req.group_id.clone(), topic, partition), committed));
        if records.is_empty() {
            return codes;
        }
        if let Err(code) = log.write_txn(&req.group_id, records, producer) {
            return codes.into_iter().map(|c| if c == 0 { code } else { c }).collect();
        }
        self.pending_txn
            .entry(producer.producer_id)
            .or_default()
            .extend(accepted);
        codes
    }

    /// A transaction's marker is in `__consumer_offsets`: its offsets now
    /// count (commit) or are dropped (abort).
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, now: i64) {
        let Some(pending) = self.pending_txn.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for ((group, topic, partition), offset) in pending {
            self.groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now))
                .offsets
                .insert((topic, partition), offset);
        }
    }

    /// Whether an open transaction holds an offset for this partition
    /// (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (group.to_string(), topic.to_string(), partition);
        self.pending_txn.values().any(|p| p.contains_key(&key))
    }

    /// Committed offsets of a group: all of them, or the partitions asked for
    /// (-1 where nothing is committed).
    pub fn fetch_offsets(&self, group_id: &str, wanted: Option<&[(String, Vec<i32>)]>) -> TopicOffsets {
        let group = self.groups.get(group_id);
        match wanted {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let rows = partitions
                        .iter()
                        .map(|p| (*p, group.and_then(|g| g.offsets.get(&(topic.clone(), *p)).cloned())))
                        .collect();
                    (topic.clone(), rows)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> = BTreeMap::new();
                if let Some(g) = group {
                    for ((topic, p), o) in &g.offsets {
                        by_topic.entry(topic.clone()).or_default().push((*p, Some(o.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// OffsetDelete: returns the group error, and per requested partition an error.
    pub fn delete_offsets(
        &mut self,
        log: &mut dyn GroupLog,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (i16, Vec<i16>) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return (E::GroupIdNotFound.code(), vec![0; partitions.len()]);
        };
        let subscribed = if group.state == GroupState::Empty || group.members.is_empty() {
            Some(Default::default())
        } else {
            group.subscribed_topics()
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (topic, p) in partitions {
            // Without a readable subscription, every topic counts as subscribed.
            let in_use = subscribed.as_ref().is_none_or(|s| s.contains(topic));
            if in_use {
                codes.push(E::GroupSubscribedToTopic.code());
                continue;
            }
            codes.push(0);
            if group.offsets.contains_key(&(topic.clone(), *p)) {
                records.push((
                    RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *p,
                    },
                    None,
                ));
                removed.push((topic.clone(), *p));
            }
        }
        if !records.is_empty() {
            if let Err(code) = log.write(group_id, records) {
                return (code, vec![0; partitions.len()]);
            }
            for k in removed {
                group.offsets.remove(&k);
            }
        }
        (0, codes)
    }

    // ----- Administration --------------------------------------------------------------------

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id)?;
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| {
                    // Kafka shows metadata and assignment only for a stable group.
                    let (metadata, assignment) = if stable {
                        (m.metadata_for(&protocol), m.assignment.clone())
                    } else {
                        (Bytes::new(), Bytes::new())
                    };
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        metadata,
                        assignment,
                    )
                })
                .collect(),
            protocol,
        })
    }

    pub fn list(&self) -> Vec<ListedGroup> {
        let mut out: Vec<ListedGroup> = self
            .groups
            .values()
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups for one group: it must exist and be empty.
    pub fn delete_group(&mut self, log: &mut dyn GroupLog, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return E::InvalidGroupId.code();
        }
        let Some(group) = self.groups.get(group_id) else {
            return E::GroupIdNotFound.code();
        };
        if group.state != GroupState::Empty || !group.members.is_empty() {
            return E::NonEmptyGroup.code();
        }
        let mut records: Vec<(RecordKey, Option<Bytes>)> = group
            .offsets
            .keys()
            .map(|(topic, partition)| {
                (
                    RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    None,
                )
            })
            .collect();
        records.push((
            RecordKey::Group {
                group: group_id.to_string(),
            },
            None,
        ));
        if let Err(code) = log.write(group_id, records) {
            return code;
        }
        self.groups.remove(group_id);
        0
    }

    /// Drops offsets past retention: for an empty group, counted from when it
    /// became empty; a group left with nothing is removed.
    pub fn expire_offsets(&mut self, log: &mut dyn GroupLog, now: i64) -> usize {
        let retention = self.config.offsets_retention_ms;
        let mut expired_total = 0;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            if group.state != GroupState::Empty {
                continue;
            }
            let managed = group.protocol_type.is_some();
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, o)| {
                    let since = if managed { group.state_since } else { o.commit_timestamp };
                    since + retention <= now
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<(RecordKey, Option<Bytes>)> = expired
                .iter()
                .map(|(topic, partition)| {
                    (
                        RecordKey::Offset {
                            group: group.id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        None,
                    )
                })
                .collect();
            let empties = expired.len() == group.offsets.len();
            if empties {
                records.push((
                    RecordKey::Group {
                        group: group.id.clone(),
                    },
                    None,
                ));
            }
            if records.is_empty() || log.write(&group.id, records).is_err() {
                continue;
            }
            expired_total += expired.len();
            for k in expired {
                group.offsets.remove(&k);
            }
            if empties {
                dead.push(group.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
        expired_total
    }
}

fn sync_ok(group: &Group, assignment: &Bytes) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_protocol_type(group.protocol_type.as_deref().map(s))
        .with_protocol_name(group.protocol.as_deref().map(s))
        .with_assignment(assignment.clone())
}

/// The member exists and, if static, is the registered one for its instance id.
fn validate_member(group: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
    if let Some(instance) = instance_id {
        match group.static_members.get(instance) {
            Some(registered) if registered != member_id => return Err(E::FencedInstanceId.code()),
            None if !group.members.contains_key(member_id) => return Err(E::UnknownMemberId.code()),
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(E::UnknownMemberId.code());
    }
    Ok(())
}

/// A commit's partitions checked (topic exists, metadata not too large): an
/// error code per partition, the records to write and the offsets accepted.
#[allow(clippy::type_complexity)]
fn prepare_offsets(
    req: &OffsetCommitRequest,
    max_metadata_bytes: usize,
    exists: &dyn Fn(&str, i32) -> bool,
    now: i64,
) -> (
    Vec<i16>,
    Vec<(RecordKey, Option<Bytes>)>,
    Vec<((String, i32), CommittedOffset)>,
) {
    let mut codes = Vec::with_capacity(req.offsets.len());
    let mut records = Vec::new();
    let mut accepted = Vec::new();
    for (topic, partition, offset, epoch, metadata) in &req.offsets {
        let metadata = metadata.clone().unwrap_or_default();
        if !exists(topic, *partition) {
            codes.push(E::UnknownTopicOrPartition.code());
        } else if metadata.len() > max_metadata_bytes {
            codes.push(E::OffsetMetadataTooLarge.code());
        } else {
            let committed = CommittedOffset {
                offset: *offset,
                leader_epoch: *epoch,
                metadata,
                commit_timestamp: now,
            };
            records.push((
                RecordKey::Offset {
                    group: req.group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                },
                Some(committed.to_value().encode()),
            ));
            accepted.push(((topic.clone(), *partition), committed));
            codes.push(0);
        }
    }
    (codes, records, accepted)
}

/// Kafka's ClassicGroup.validateOffsetCommit.
fn validate_offset_commit(group: &Group, req: &OffsetCommitRequest) -> Result<(), i16> {
    if group.state == GroupState::Dead {
        return Err(E::CoordinatorNotAvailable.code());
    }
    if req.generation < 0 && group.state == GroupState::Empty {
        // The admin client or a consumer without group management.
        return Ok(());
    }
    if req.generation >= 0 || !req.member_id.is_empty() || req.instance_id.is_some() {
        validate_member(group, &req.member_id, req.instance_id.as_deref())?;
        if req.generation != group.generation {
            return Err(E::IllegalGeneration.code());
        }
    } else if group.state != GroupState::Empty {
        return Err(E::UnknownMemberId.code());
    }
    if group.state == GroupState::CompletingRebalance {
        return Err(E::RebalanceInProgress.code());
    }
    Ok(())
}

fn join_unknown_member(
    group: &mut Group,
    log: &mut dyn GroupLog,
    req: JoinRequest,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    if let Some(instance) = req.instance_id.clone() {
        let new_id = new_member_id(&instance);
        if let Some(old_id) = group.static_members.get(&instance).cloned() {
            return rejoin_static_member(group, log, req, &old_id, new_id, delay, now);
        }
        return add_member_and_rebalance(group, log, req, new_id, delay, now);
    }
    let new_id = new_member_id(&req.client_id);
    if req.require_known_member_id {
        // The client must come back with this id; until then it holds the join open.
        group
            .pending_members
            .insert(new_id.clone(), now + req.session_timeout_ms as i64);
        return Reply::Now(join_error(E::MemberIdRequired.code(), &new_id));
    }
    add_member_and_rebalance(group, log, req, new_id, delay, now)
}

fn join_known_member(
    group: &mut Group,
    log: &mut dyn GroupLog,
    req: JoinRequest,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let member_id = req.member_id.clone();
    if group.pending_members.remove(&member_id).is_some() {
        return add_member_and_rebalance(group, log, req, member_id, delay, now);
    }
    if let Err(code) = validate_member(group, &member_id, req.instance_id.as_deref()) {
        return Reply::Now(join_error(code, &member_id));
    }
    match group.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(group, log, req, delay, now),
        GroupState::CompletingRebalance => {
            let member = &group.members[&member_id];
            if member.same_protocols(&req.protocols) {
                // A retry of a join whose answer was lost: the same answer again.
                Reply::Now(join_response(group, &member_id))
            } else {
                update_member_and_rebalance(group, log, req, delay, now)
            }
        }
        GroupState::Stable => {
            let member = &group.members[&member_id];
            if group.is_leader(&member_id) || !member.same_protocols(&req.protocols) {
                // The leader rejoining forces a rebalance (e.g. topic metadata changed).
                update_member_and_rebalance(group, log, req, delay, now)
            } else {
                Reply::Now(join_response(group, &member_id))
            }
        }
        GroupState::Empty | GroupState::Dead => Reply::Now(join_error(E::UnknownMemberId.code(), &member_id)),
    }
}

/// A static member restarted (new member id, same instance id). In a stable
/// group whose protocol does not change, it takes its predecessor's place and
/// assignment without a rebalance.
fn rejoin_static_member(
    group: &mut Group,
    log: &mut dyn GroupLog,
    req: JoinRequest,
    old_id: &str,
    new_id: String,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let Some(mut member) = group.members.shift_remove(old_id) else {
        group
            .static_members
            .remove(req.instance_id.as_deref().unwrap_or_default());
        return add_member_and_rebalance(group, log, req, new_id, delay, now);
    };
    let was_leader = group.is_leader(old_id);
    // Whatever the old incarnation waited for, it is fenced now.
    if let Some(tx) = member.awaiting_join.take() {
        let _ = tx.send(join_error(E::FencedInstanceId.code(), old_id));
    }
    if let Some(tx) = member.awaiting_sync.take() {
        let _ = tx.send(sync_error(E::FencedInstanceId.code()));
    }
    group.pending_sync.remove(old_id);
    let old_protocols = std::mem::replace(&mut member.protocols, req.protocols.clone());
    member.id = new_id.clone();
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.heartbeat_deadline = now + req.session_timeout_ms as i64;
    group.members.insert(new_id.clone(), member);
    if let Some(instance) = &req.instance_id {
        group.static_members.insert(instance.clone(), new_id.clone());
    }
    if was_leader {
        group.leader = Some(new_id.clone());
    }
    match group.state {
        GroupState::Stable if group.select_protocol() == group.protocol => {
            if let Err(code) = Groups::persist_group(log, group) {
                // Put the old incarnation back: nothing changed.
                let mut m = group.members.shift_remove(&new_id).expect("just inserted");
                m.id = old_id.to_string();
                m.protocols = old_protocols;
                group.members.insert(old_id.to_string(), m);
                if let Some(instance) = &req.instance_id {
                    group.static_members.insert(instance.clone(), old_id.to_string());
                }
                if was_leader {
                    group.leader = Some(old_id.to_string());
                }
                return Reply::Now(join_error(code, ""));
            }
            // The old leader id is returned so the current leader does not
            // redo an assignment a stable group would not broadcast.
            let leader = if was_leader {
                old_id.to_string()
            } else {
                group.leader.clone().unwrap_or_default()
            };
            Reply::Now(
                JoinGroupResponse::default()
                    .with_generation_id(group.generation)
                    .with_protocol_type(group.protocol_type.as_deref().map(s))
                    .with_protocol_name(group.protocol.as_deref().map(s))
                    .with_leader(s(&leader))
                    .with_member_id(s(&new_id)),
            )
        }
        GroupState::PreparingRebalance => {
            let (tx, rx) = oneshot::channel();
            group.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(tx);
            try_complete_join(group, log, now);
            Reply::Later(rx)
        }
        _ => {
            let (tx, rx) = oneshot::channel();
            group.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(tx);
            prepare_rebalance(group, delay, now);
            try_complete_join(group, log, now);
            Reply::Later(rx)
        }
    }
}

fn add_member_and_rebalance(
    group: &mut Group,
    log: &mut dyn GroupLog,
    req: JoinRequest,
    member_id: String,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    if group.members.is_empty() {
        group.protocol_type = Some(req.protocol_type.clone());
    }
    if let Some(instance) = &req.instance_id {
        group.static_members.insert(instance.clone(), member_id.clone());
    }
    group.members.insert(
        member_id.clone(),
        Member {
            id: member_id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            heartbeat_deadline: now + req.session_timeout_ms as i64,
        },
    );
    if group.leader.is_none() {
        group.leader = Some(member_id);
    }
    if group.state == GroupState::PreparingRebalance {
        // Joining during the initial delay extends it (up to the rebalance timeout).
        group.new_member_added = true;
    } else {
        prepare_rebalance(group, delay, now);
    }
    try_complete_join(group, log, now);
    Reply::Later(rx)
}

fn update_member_and_rebalance(
    group: &mut Group,
    log: &mut dyn GroupLog,
    req: JoinRequest,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    let member = group.members.get_mut(&req.member_id).expect("validated");
    member.protocols = req.protocols;
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    if let Some(old) = member.awaiting_join.replace(tx) {
        // A newer join from the same member supersedes the old request.
        let _ = old.send(join_error(E::RebalanceInProgress.code(), &req.member_id));
    }
    if group.state != GroupState::PreparingRebalance {
        prepare_rebalance(group, delay, now);
    }
    try_complete_join(group, log, now);
    Reply::Later(rx)
}

/// Starts (or restarts) the join phase. Members waiting for their sync
/// answer are told a rebalance is in progress.
fn prepare_rebalance(group: &mut Group, delay: i64, now: i64) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(sync_error(E::RebalanceInProgress.code()));
            }
        }
    }
    let rebalance_timeout = group.max_rebalance_timeout();
    if group.state == GroupState::Empty && delay > 0 {
        group.new_member_added = false;
        group.initial_delay = Some((now + delay, (rebalance_timeout - delay).max(0)));
    }
    group.join_deadline = Some(now + rebalance_timeout);
    group.sync_deadline = None;
    group.pending_sync.clear();
    group.transition(GroupState::PreparingRebalance, now);
}

fn try_complete_join(group: &mut Group, log: &mut dyn GroupLog, now: i64) {
    if group.state == GroupState::PreparingRebalance && group.initial_delay.is_none() && group.all_joined() {
        complete_join(group, log, now);
    }
}

/// Ends the join phase: members that did not rejoin (dynamic ones) are
/// dropped, a new generation starts, and every waiting member is answered.
fn complete_join(group: &mut Group, log: &mut dyn GroupLog, now: i64) {
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let absent: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in absent {
        group.remove_member(&id);
    }
    group.pending_members.clear();
    group.join_deadline = None;
    group.initial_delay = None;
    group.generation += 1;
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.transition(GroupState::Empty, now);
        let _ = Groups::persist_group(log, group);
        return;
    }
    group.protocol = group.select_protocol();
    if group.leader.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
        group.leader = group.members.keys().next().cloned();
    }
    group.transition(GroupState::CompletingRebalance, now);
    group.pending_sync = group.members.keys().cloned().collect();
    group.sync_deadline = Some(now + group.max_rebalance_timeout());
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let response = join_response(group, &id);
        let member = group.members.get_mut(&id).expect("listed");
        member.heartbeat_deadline = now + member.session_timeout_ms as i64;
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(response);
        }
    }
}

/// The JoinGroup answer for the current generation; the leader also gets
/// every member's metadata, to compute the assignment.
fn join_response(group: &Group, member_id: &str) -> JoinGroupResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if group.is_leader(member_id) {
        group
            .members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(&m.id))
                    .with_group_instance_id(m.instance_id.as_deref().map(s))
                    .with_metadata(m.metadata_for(&protocol))
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse::default()
        .with_generation_id(group.generation)
        .with_protocol_type(group.protocol_type.as_deref().map(s))
        .with_protocol_name(group.protocol.as_deref().map(s))
        .with_leader(s(group.leader.as_deref().unwrap_or_default()))
        .with_member_id(s(member_id))
        .with_members(members)
}

fn remove_member_and_rebalance(group: &mut Group, log: &mut dyn GroupLog, member_id: &str, now: i64) {
    if let Some(mut member) = group.remove_member(member_id) {
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(join_error(E::UnknownMemberId.code(), member_id));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            let _ = tx.send(sync_error(E::UnknownMemberId.code()));
        }
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, 0, now);
            try_complete_join(group, log, now);
        }
        GroupState::PreparingRebalance => try_complete_join(group, log, now),
        GroupState::Empty | GroupState::Dead => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::RecordValue;

    type GroupRecords = Vec<(RecordKey, Option<Bytes>)>;

    #[derive(Default)]
    struct MemLog {
        records: Vec<(RecordKey, Option<Bytes>)>,
        /// (producer id, records) of transactional writes.
        txn_records: Vec<(i64, GroupRecords)>,
    }

    impl GroupLog for MemLog {
        fn write(&mut self, _group: &str, records: Vec<(RecordKey, Option<Bytes>)>) -> Result<(), i16> {
            self.records.extend(records);
            Ok(())
        }

        fn write_txn(
            &mut self,
            _group: &str,
            records: Vec<(RecordKey, Option<Bytes>)>,
            producer: TxnProducer,
        ) -> Result<(), i16> {
            self.txn_records.push((producer.producer_id, records));
            Ok(())
        }
    }

    impl MemLog {
        /// The latest value of each key, as a restart would read them.
        fn compacted(&self) -> BTreeMap<RecordKey, RecordValue> {
            let mut out = BTreeMap::new();
            for (k, v) in &self.records {
                match RecordValue::decode(k, v.as_deref()).unwrap() {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            out
        }
    }

    const SESSION: i32 = 10_000;
    const REBALANCE: i32 = 30_000;

    fn groups(delay: i64) -> Groups {
        Groups::new(GroupConfig {
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
    fn join_new(g: &mut Groups, log: &mut MemLog, now: i64) -> (String, Reply<JoinGroupResponse>) {
        let first = now_reply(g.join(log, join_req("", None, &["range"]), now));
        assert_eq!(first.error_code, E::MemberIdRequired.code());
        let id = first.member_id.to_string();
        let reply = g.join(log, join_req(&id, None, &["range"]), now);
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

    fn state(g: &Groups) -> GroupState {
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
        let synced = later(g.sync(&mut log, sync_req(&id, 1, &[(&id, "all")]), 10))
            .try_recv()
            .unwrap();
        assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"all"[..]));
        assert_eq!(state(&g), GroupState::Stable);
        assert_eq!(g.heartbeat("g", 1, &id, None, 20), 0);
        assert_eq!(g.heartbeat("g", 0, &id, None, 20), E::IllegalGeneration.code());
        assert_eq!(g.heartbeat("g", 1, "nobody", None, 20), E::UnknownMemberId.code());
        // The assignment is persisted with the group.
        let stored = log.compacted();
        match stored.get(&RecordKey::Group { group: "g".into() }) {
            Some(RecordValue::Group(v)) => assert_eq!(&v.members[0].assignment[..], b"all"),
            other => panic!("no group record: {other:?}"),
        }
    }

    #[test]
    fn a_second_member_triggers_a_rebalance_that_both_complete() {
        let (mut g, mut log) = (groups(0), MemLog::default());
        let (a, reply) = join_new(&mut g, &mut log, 0);
        later(reply).try_recv().unwrap();
        later(g.sync(&mut log, sync_req(&a, 1, &[(&a, "p0-p5")]), 0))
            .try_recv()
            .unwrap();

        let (b, b_join) = join_new(&mut g, &mut log, 100);
        let mut b_join = later(b_join);
        assert!(b_join.try_recv().is_err(), "B waits for A to rejoin");
        assert_eq!(state(&g), GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat("g", 1, &a, None, 200), E::RebalanceInProgress.code());
        let a_join = later(g.join(&mut log, join_req(&a, None, &["range"]), 300))
            .try_recv()
            .unwrap();
        let b_join = b_join.try_recv().unwrap();
        assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
        assert_eq!(a_join.leader.as_str(), a);
        assert_eq!(a_join.members.len(), 2, "the leader sees every member");
        assert!(b_join.members.is_empty(), "followers see none");

        let mut b_sync = later(g.sync(&mut log, sync_req(&b, 2, &[]), 400));
        assert!(b_sync.try_recv().is_err(), "B waits for the leader's assignment");
        let a_sync = later(g.sync(&mut log, sync_req(&a, 2, &[(&a, "p0-p2"), (&b, "p3-p5")]), 500))
            .try_recv()
            .unwrap();
        assert_eq!(&a_sync.assignment[..], b"p0-p2");
        assert_eq!(&b_sync.try_recv().unwrap().assignment[..], b"p3-p5");
        assert_eq!(state(&g), GroupState::Stable);
        // A stale generation is refused.
        let stale = now_reply(g.sync(&mut log, sync_req(&b, 1, &[]), 600));
        assert_eq!(stale.error_code, E::IllegalGeneration.code());
    }

    /// Two members, stable at generation 2; returns their ids.
    fn stable_pair(g: &mut Groups, log: &mut MemLog) -> (String, String) {
        let (a, reply) = join_new(g, log, 0);
        later(reply).try_recv().unwrap();
        let (b, b_reply) = join_new(g, log, 0);
        let mut b_rx = later(b_reply);
        later(g.join(log, join_req(&a, None, &["range"]), 0))
            .try_recv()
            .unwrap();
        b_rx.try_recv().unwrap();
        let mut b_sync = later(g.sync(log, sync_req(&b, 2, &[]), 0));
        later(g.sync(log, sync_req(&a, 2, &[(&a, "x"), (&b, "y")]), 0))
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
        g.tick(&mut log, 9_500);
        assert_eq!(g.group("g").unwrap().members.len(), 2, "B is within its session");
        g.tick(&mut log, SESSION as i64 + 1);
        assert!(!g.group("g").unwrap().members.contains_key(&b));
        assert_eq!(state(&g), GroupState::PreparingRebalance);
        let joined = later(g.join(&mut log, join_req(&a, None, &["range"]), 10_100))
            .try_recv()
            .unwrap();
        assert_eq!((joined.generation_id, joined.members.len()), (3, 1));
    }

    #[test]
    fn leaving_rebalances_the_rest_at_once() {
        let (mut g, mut log) = (groups(0), MemLog::default());
        let (a, b) = stable_pair(&mut g, &mut log);
        let (top, per) = g.leave(
            &mut log,
            "g",
            &[LeavingMember {
                member_id: b.clone(),
                instance_id: None,
            }],
            100,
        );
        assert_eq!((top, per), (0, vec![0]));
        assert_eq!(state(&g), GroupState::PreparingRebalance);
        let joined = later(g.join(&mut log, join_req(&a, None, &["range"]), 200))
            .try_recv()
            .unwrap();
        assert_eq!(joined.members.len(), 1);
        let (_, per) = g.leave(
            &mut log,
            "g",
            &[LeavingMember {
                member_id: "ghost".into(),
                instance_id: None,
            }],
            300,
        );
        assert_eq!(per, vec![E::UnknownMemberId.code()]);
        // The last member leaving empties the group.
        g.leave(
            &mut log,
            "g",
            &[LeavingMember {
                member_id: a,
                instance_id: None,
            }],
            400,
        );
        assert_eq!(state(&g), GroupState::Empty);
    }

    #[test]
    fn the_initial_delay_waits_for_more_members() {
        let (mut g, mut log) = (groups(3000), MemLog::default());
        let (_, a) = join_new(&mut g, &mut log, 0);
        let mut a = later(a);
        let (_, b) = join_new(&mut g, &mut log, 1000);
        let mut b = later(b);
        g.tick(&mut log, 2999);
        assert!(a.try_recv().is_err());
        // A member joined during the delay: it is extended once more.
        g.tick(&mut log, 3000);
        assert!(a.try_recv().is_err());
        g.tick(&mut log, 6000);
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
        let mut a_join = later(g.join(&mut log, join_req(&a, None, &["range"]), 1000));
        g.heartbeat("g", 2, &b, None, 1000);
        g.tick(&mut log, 1000 + REBALANCE as i64);
        assert_eq!(a_join.try_recv().unwrap().members.len(), 2, "A and C, without B");
        assert_eq!(c.try_recv().unwrap().generation_id, 3);
        assert!(!g.group("g").unwrap().members.contains_key(&b));
        // Nobody syncs: after the rebalance timeout the laggards go.
        g.tick(&mut log, 1000 + 2 * REBALANCE as i64 + 1);
        assert!(g.group("g").unwrap().members.is_empty());
        assert_eq!(state(&g), GroupState::Empty);
    }

    #[test]
    fn a_static_member_restarting_takes_its_place_without_a_rebalance() {
        let (mut g, mut log) = (groups(0), MemLog::default());
        let first = later(g.join(&mut log, join_req("", Some("pod-1"), &["range"]), 0))
            .try_recv()
            .unwrap();
        let old = first.member_id.to_string();
        later(g.sync(&mut log, sync_req(&old, 1, &[(&old, "mine")]), 0))
            .try_recv()
            .unwrap();
        // Restart: a new member id, same instance id, same generation, same assignment.
        let again = now_reply(g.join(&mut log, join_req("", Some("pod-1"), &["range"]), 5000));
        assert_eq!((again.error_code, again.generation_id), (0, 1));
        let new = again.member_id.to_string();
        assert_ne!(new, old);
        assert_eq!(state(&g), GroupState::Stable);
        let mut sync = sync_req(&new, 1, &[]);
        sync.instance_id = Some("pod-1".into());
        assert_eq!(&now_reply(g.sync(&mut log, sync, 5100)).assignment[..], b"mine");
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
            now_reply(g.join(&mut log, short, 0)).error_code,
            E::InvalidSessionTimeout.code()
        );
        let mut no_group = join_req("", None, &["range"]);
        no_group.group_id = String::new();
        assert_eq!(
            now_reply(g.join(&mut log, no_group, 0)).error_code,
            E::InvalidGroupId.code()
        );
        assert_eq!(
            now_reply(g.join(&mut log, join_req("stranger", None, &["range"]), 0)).error_code,
            E::UnknownMemberId.code()
        );
        let (_, reply) = join_new(&mut g, &mut log, 0);
        later(reply).try_recv().unwrap();
        let mut other_type = join_req("", None, &["range"]);
        other_type.protocol_type = "connect".into();
        assert_eq!(
            now_reply(g.join(&mut log, other_type, 0)).error_code,
            E::InconsistentGroupProtocol.code()
        );
        assert_eq!(
            now_reply(g.join(&mut log, join_req("", None, &["roundrobin"]), 0)).error_code,
            E::InconsistentGroupProtocol.code()
        );
    }

    #[test]
    fn the_protocol_most_members_prefer_wins() {
        let (mut g, mut log) = (groups(0), MemLog::default());
        let mut a = join_req("", None, &["sticky", "range"]);
        a.require_known_member_id = false;
        let a = later(g.join(&mut log, a, 0)).try_recv().unwrap();
        assert_eq!(a.protocol_name.as_deref(), Some("sticky"));
        later(g.sync(
            &mut log,
            {
                let mut s = sync_req(&a.member_id, 1, &[]);
                s.protocol_name = Some("sticky".into());
                s
            },
            0,
        ))
        .try_recv()
        .unwrap();
        let mut b = join_req("", None, &["range", "sticky"]);
        b.require_known_member_id = false;
        let mut c = join_req("", None, &["range"]);
        c.require_known_member_id = false;
        let _b = later(g.join(&mut log, b, 1));
        // "sticky" is not supported by C: only "range" is common.
        let _c = later(g.join(&mut log, c, 1));
        let mut a_again = join_req(&a.member_id, None, &["sticky", "range"]);
        a_again.require_known_member_id = false;
        let joined = later(g.join(&mut log, a_again, 2)).try_recv().unwrap();
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
        let codes = g.commit_txn_offsets(
            &mut log,
            commit("eos", -1, "", &[("orders", 0, 5)]),
            producer(7),
            &exists,
            1,
        );
        assert_eq!(codes, vec![0]);
        assert!(log.records.is_empty(), "written as transactional records only");
        assert_eq!(log.txn_records.len(), 1);
        assert!(g.has_pending_txn_offset("eos", "orders", 0));
        assert!(g.fetch_offsets("eos", None).is_empty(), "not visible before the commit");
        g.complete_txn(7, true, 2);
        assert!(!g.has_pending_txn_offset("eos", "orders", 0));
        let fetched = g.fetch_offsets("eos", None);
        assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
        // An aborted transaction's offsets are dropped.
        g.commit_txn_offsets(
            &mut log,
            commit("eos", -1, "", &[("orders", 0, 9)]),
            producer(8),
            &exists,
            3,
        );
        g.complete_txn(8, false, 4);
        let fetched = g.fetch_offsets("eos", None);
        assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
        // Validated as OffsetCommit is: an unknown member is refused.
        assert_eq!(
            g.commit_txn_offsets(
                &mut log,
                commit("eos", 3, "ghost", &[("orders", 0, 1)]),
                producer(9),
                &exists,
                5
            ),
            vec![E::UnknownMemberId.code()]
        );
    }

    #[test]
    fn offsets_commit_fetch_survive_a_reload_and_expire() {
        let (mut g, mut log) = (groups(0), MemLog::default());
        let exists = |t: &str, p: i32| t == "orders" && (0..3).contains(&p);
        // A simple group (no membership) commits at generation -1.
        let codes = g.commit_offsets(
            &mut log,
            commit(
                "simple",
                -1,
                "",
                &[("orders", 0, 10), ("orders", 1, 20), ("nope", 0, 1)],
            ),
            &exists,
            0,
        );
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
        let codes = g.commit_offsets(&mut log, commit("g", 1, &a, &[("orders", 0, 5)]), &exists, 0);
        assert_eq!(codes, vec![E::RebalanceInProgress.code()], "not yet synced");
        later(g.sync(&mut log, sync_req(&a, 1, &[(&a, "x")]), 0))
            .try_recv()
            .unwrap();
        assert_eq!(
            g.commit_offsets(&mut log, commit("g", 1, &a, &[("orders", 0, 5)]), &exists, 0),
            vec![0]
        );
        assert_eq!(
            g.commit_offsets(&mut log, commit("g", 0, &a, &[("orders", 0, 6)]), &exists, 0),
            vec![E::IllegalGeneration.code()]
        );
        assert_eq!(
            g.commit_offsets(&mut log, commit("g", -1, "", &[("orders", 0, 6)]), &exists, 0),
            vec![E::UnknownMemberId.code()],
            "admin commits need an inactive group"
        );
        let mut big = commit("g", 1, &a, &[("orders", 0, 7)]);
        big.offsets[0].4 = Some("x".repeat(5000));
        assert_eq!(
            g.commit_offsets(&mut log, big, &exists, 0),
            vec![E::OffsetMetadataTooLarge.code()]
        );

        // A restart reads the same state back.
        let mut reloaded = groups(0);
        reloaded.load(log.compacted(), 1000);
        assert_eq!(reloaded.group("g").unwrap().state, GroupState::Stable);
        assert!(reloaded.group("g").unwrap().members.contains_key(&a));
        assert_eq!(reloaded.heartbeat("g", 1, &a, None, 1000), 0);
        let o = reloaded.fetch_offsets("g", None);
        assert_eq!((o[0].0.as_str(), o[0].1[0].1.as_ref().unwrap().offset), ("orders", 5));
        assert_eq!(reloaded.fetch_offsets("simple", None)[0].1.len(), 2);

        // Offsets of the simple group expire a retention period after their commit.
        let retention = GroupConfig::default().offsets_retention_ms;
        assert_eq!(reloaded.expire_offsets(&mut log, retention - 1), 0);
        assert_eq!(reloaded.expire_offsets(&mut log, retention), 2);
        assert!(reloaded.group("simple").is_none());
    }

    #[test]
    fn delete_group_needs_an_empty_group_and_leaves_tombstones() {
        let (mut g, mut log) = (groups(0), MemLog::default());
        let exists = |_: &str, _: i32| true;
        let (a, reply) = join_new(&mut g, &mut log, 0);
        later(reply).try_recv().unwrap();
        assert_eq!(g.delete_group(&mut log, "g"), E::NonEmptyGroup.code());
        assert_eq!(g.delete_group(&mut log, "absent"), E::GroupIdNotFound.code());
        g.leave(
            &mut log,
            "g",
            &[LeavingMember {
                member_id: a,
                instance_id: None,
            }],
            0,
        );
        g.commit_offsets(&mut log, commit("g", -1, "", &[("t", 0, 1)]), &exists, 0);
        assert_eq!(g.delete_group(&mut log, "g"), 0);
        assert!(g.group("g").is_none());
        assert!(log.compacted().is_empty(), "nothing of the group survives a reload");
    }
}
