//! Committed offsets: OffsetCommit, TxnOffsetCommit (offsets that count once
//! the transaction commits), OffsetFetch, OffsetDelete and retention. Each
//! change is made of records that take effect when replayed, so a live
//! shard and one loaded from the log agree.

use super::classic_group::{CommittedOffset, Group, GroupState};
use super::consumer_group::ConsumerGroup;
use super::membership::validate_member;
use super::shard::{GroupRecord, GroupShard};
use crate::coordinator::{CoordinatorResult, TxnProducer};
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;

/// Committed offsets by topic: (partition, offset if committed).
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

pub struct OffsetCommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// OffsetCommit v9+ answers GROUP_ID_NOT_FOUND where older ones say ILLEGAL_GENERATION.
    pub version: i16,
    /// TxnOffsetCommit: set by the coordinator, not the caller.
    pub transactional: bool,
    /// (topic, partition, offset, leader epoch, metadata)
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

type Commit = CoordinatorResult<Vec<i16>, GroupRecord>;

impl GroupShard {
    /// Checks a commit as Kafka does: an unknown group may only be committed
    /// to outside any generation (a simple group, created by the commit).
    fn check_commit(&mut self, req: &OffsetCommitRequest, now: i64) -> Result<(), i16> {
        if req.group_id.is_empty() {
            return Err(E::InvalidGroupId.code());
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            if req.generation >= 0 {
                // OffsetCommit v9+ names the problem; older versions and TxnOffsetCommit
                // (whose versions stop at 3) say the generation is wrong.
                return Err(if req.version >= 9 {
                    E::GroupIdNotFound.code()
                } else {
                    E::IllegalGeneration.code()
                });
            }
            return Ok(());
        };
        if let Some(cg) = group.consumer.as_deref_mut() {
            return validate_consumer_commit(cg, req, now, self.config.consumer_session_timeout_ms);
        }
        if let Some(sg) = group.streams.as_deref() {
            return validate_streams_commit(sg, req);
        }
        validate_offset_commit(group, req)?;
        if let Some(m) = group.members.get_mut(&req.member_id) {
            m.heartbeat_deadline = now + m.session_timeout_ms as i64;
        }
        Ok(())
    }

    /// The records of a commit's valid partitions, and an error code per
    /// requested partition, in order.
    fn offset_records(
        &self,
        req: &OffsetCommitRequest,
        exists: &dyn Fn(&str, i32) -> bool,
        now: i64,
    ) -> (Vec<i16>, Vec<GroupRecord>) {
        let mut codes = Vec::with_capacity(req.offsets.len());
        let mut records = Vec::new();
        for (topic, partition, offset, epoch, metadata) in &req.offsets {
            let metadata = metadata.clone().unwrap_or_default();
            if !exists(topic, *partition) {
                codes.push(E::UnknownTopicOrPartition.code());
            } else if metadata.len() > self.config.offset_metadata_max_bytes {
                codes.push(E::OffsetMetadataTooLarge.code());
            } else {
                let committed = CommittedOffset {
                    offset: *offset,
                    leader_epoch: *epoch,
                    metadata,
                    commit_timestamp: now,
                };
                records.push(GroupRecord::offset(&req.group_id, topic, *partition, Some(&committed)));
                codes.push(0);
            }
        }
        (codes, records)
    }

    /// OffsetCommit. `exists` says whether a topic partition exists.
    pub fn commit_offsets(&mut self, req: OffsetCommitRequest, exists: &dyn Fn(&str, i32) -> bool, now: i64) -> Commit {
        if let Err(code) = self.check_commit(&req, now) {
            return CoordinatorResult::answer(vec![code; req.offsets.len()]);
        }
        let (codes, records) = self.offset_records(&req, exists, now);
        CoordinatorResult::replayed(records, codes)
    }

    /// TxnOffsetCommit: offsets that take effect when the producer's
    /// transaction commits. Validated as OffsetCommit is.
    pub fn commit_txn_offsets(
        &mut self,
        mut req: OffsetCommitRequest,
        producer: TxnProducer,
        exists: &dyn Fn(&str, i32) -> bool,
        now: i64,
    ) -> Commit {
        req.transactional = true;
        if let Err(code) = self.check_commit(&req, now) {
            return CoordinatorResult::answer(vec![code; req.offsets.len()]);
        }
        let (codes, records) = self.offset_records(&req, exists, now);
        CoordinatorResult {
            producer: Some(producer),
            ..CoordinatorResult::replayed(records, codes)
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

    /// OffsetDelete: the group error, and per requested partition an error.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> CoordinatorResult<(i16, Vec<i16>), GroupRecord> {
        let Some(group) = self.groups.get(group_id) else {
            return CoordinatorResult::answer((E::GroupIdNotFound.code(), vec![0; partitions.len()]));
        };
        let subscribed = if group.state == GroupState::Empty || group.members.is_empty() {
            Some(Default::default())
        } else {
            group.subscribed_topics()
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (topic, p) in partitions {
            // Without a readable subscription, every topic counts as subscribed.
            let in_use = subscribed.as_ref().is_none_or(|s| s.contains(topic));
            if in_use {
                codes.push(E::GroupSubscribedToTopic.code());
                continue;
            }
            codes.push(0);
            if group.offsets.contains_key(&(topic.clone(), *p)) {
                records.push(GroupRecord::offset(group_id, topic, *p, None));
            }
        }
        CoordinatorResult::replayed(records, (0, codes))
    }

    /// Drops offsets past retention: for an empty group, counted from when it
    /// became empty; a group left with nothing is removed. Answers how many.
    pub fn expire_offsets(&mut self, now: i64) -> CoordinatorResult<usize, GroupRecord> {
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        let mut expired_total = 0;
        for group in self.groups.values() {
            if group.state != GroupState::Empty || group.has_protocol_members() {
                continue;
            }
            let managed = group.protocol_type.is_some();
            let expired: Vec<&(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, o)| {
                    let since = if managed { group.state_since } else { o.commit_timestamp };
                    since + retention <= now
                })
                .map(|(k, _)| k)
                .collect();
            expired_total += expired.len();
            records.extend(
                expired
                    .iter()
                    .map(|(topic, partition)| GroupRecord::offset(&group.id, topic, *partition, None)),
            );
            if !expired.is_empty() && expired.len() == group.offsets.len() {
                records.push(GroupRecord::group_tombstone(&group.id));
            }
        }
        CoordinatorResult::replayed(records, expired_total)
    }
}

/// Kafka's ConsumerGroup.validateOffsetCommit: an empty group takes commits
/// from outside (the admin client); a member commits with its current epoch.
fn validate_consumer_commit(
    cg: &mut ConsumerGroup,
    req: &OffsetCommitRequest,
    now: i64,
    session_timeout_ms: i32,
) -> Result<(), i16> {
    if req.generation < 0 && cg.members.is_empty() {
        return Ok(());
    }
    match cg.members.get(&req.member_id) {
        // A classic member commits with its generation: its member epoch.
        Some(m) if m.classic.is_some() => {
            if req.generation != m.member_epoch {
                return Err(E::IllegalGeneration.code());
            }
        }
        m => check_member_epoch(m.map(|m| m.member_epoch), req)?,
    }
    let Some(member) = cg.members.get_mut(&req.member_id) else {
        return Err(E::UnknownMemberId.code());
    };
    let session = member
        .classic
        .as_ref()
        .map_or(session_timeout_ms, |c| c.session_timeout_ms);
    member.session_deadline = member.session_deadline.max(now + session as i64);
    Ok(())
}

/// Kafka's StreamsGroup.validateOffsetCommit: an empty group takes commits
/// from outside; a member commits with its current epoch.
fn validate_streams_commit(sg: &super::streams_group::StreamsGroup, req: &OffsetCommitRequest) -> Result<(), i16> {
    if req.generation < 0 && sg.members.is_empty() {
        return Ok(());
    }
    let epoch = sg.members.get(&req.member_id).map(|m| m.member_epoch);
    check_member_epoch(epoch, req)
}

/// A KIP-848 or KIP-1071 member's commit: known, of the new protocol's
/// versions (or transactional), at its current epoch.
fn check_member_epoch(member_epoch: Option<i32>, req: &OffsetCommitRequest) -> Result<(), i16> {
    let Some(member_epoch) = member_epoch else {
        return Err(E::UnknownMemberId.code());
    };
    if !req.transactional && req.version < 9 {
        // A classic-protocol commit to a member of the new protocols.
        return Err(E::UnknownMemberId.code());
    }
    if req.generation > member_epoch {
        return Err(E::FencedMemberEpoch.code());
    }
    if req.generation < member_epoch {
        return Err(E::StaleMemberEpoch.code());
    }
    Ok(())
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
    } else if !req.transactional && group.state != GroupState::Empty {
        // TxnOffsetCommit v0-v2 carries no member: Kafka takes it.
        return Err(E::UnknownMemberId.code());
    }
    if !req.transactional && group.state == GroupState::CompletingRebalance {
        return Err(E::RebalanceInProgress.code());
    }
    Ok(())
}
