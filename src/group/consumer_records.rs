//! A KIP-848 consumer group in `__consumer_offsets`, in Kafka's layouts:
//! ConsumerGroupMetadata (key 3: the group epoch), ConsumerGroupMemberMetadata
//! (5), ConsumerGroupTargetAssignmentMetadata (6: the assignment epoch),
//! ConsumerGroupTargetAssignmentMember (7) and
//! ConsumerGroupCurrentMemberAssignment (8). Each change writes the records
//! of what changed; loading replays them, so a group and its members' epochs
//! and assignments survive a coordinator restart or move.

use super::consumer_group::{Assignment, ClassicMember, ConsumerGroup, ConsumerMember, MemberState};
use super::member_snapshots::MemberSnapshots;
use super::records::{RecordError, RecordKey, RecordValue};
use super::shard::GroupRecord;
use crate::coordinator::flexible::{
    get_compact_len, get_compact_string, get_tagged_fields, get_uvarint, need, put_compact_string, put_tagged_fields,
    put_uvarint, Truncated,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub const GROUP_METADATA: i16 = 3;
pub const MEMBER_METADATA: i16 = 5;
pub const TARGET_METADATA: i16 = 6;
pub const TARGET_MEMBER: i16 = 7;
pub const CURRENT_ASSIGNMENT: i16 = 8;

impl From<Truncated> for RecordError {
    fn from(_: Truncated) -> RecordError {
        RecordError::truncated()
    }
}

/// What a member told the group (ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// ClassicMemberMetadata (tagged field 0): set for a classic member.
    pub classic: Option<ClassicMember>,
}

impl MemberMetadata {
    pub fn of(m: &ConsumerMember) -> MemberMetadata {
        MemberMetadata {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: m.subscribed_topic_names.clone(),
            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            server_assignor: m.server_assignor.clone(),
            classic: m.classic.clone(),
        }
    }
}

/// Where a member is (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

impl CurrentAssignment {
    pub fn of(m: &ConsumerMember) -> CurrentAssignment {
        CurrentAssignment {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            state: m.state,
            assigned: m.assigned.clone(),
            pending_revocation: m.pending_revocation.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerValue {
    /// The group epoch, and a hash of the topics it subscribes to.
    Group {
        epoch: i32,
        metadata_hash: i64,
    },
    Member(MemberMetadata),
    AssignmentEpoch(i32),
    Target(Assignment),
    Current(CurrentAssignment),
}

fn state_code(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(code: i8) -> MemberState {
    match code {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

// ----- Encoding (flexible versions: compact strings and arrays) -----

fn put_assignment(buf: &mut BytesMut, a: &Assignment) {
    let topics: Vec<(&Uuid, &BTreeSet<i32>)> = a.iter().filter(|(_, p)| !p.is_empty()).collect();
    put_uvarint(buf, topics.len() as u32 + 1);
    for (id, partitions) in topics {
        buf.put_slice(id.as_bytes());
        put_uvarint(buf, partitions.len() as u32 + 1);
        for p in partitions {
            buf.put_i32(*p);
        }
        put_tagged_fields(buf, &[]);
    }
}

impl ConsumerValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        match self {
            ConsumerValue::Group { epoch, metadata_hash } => {
                buf.put_i32(*epoch);
                // MetadataHash is tagged field 0 (KIP-1101).
                if *metadata_hash != 0 {
                    put_tagged_fields(&mut buf, &[(0, &metadata_hash.to_be_bytes())]);
                } else {
                    put_tagged_fields(&mut buf, &[]);
                }
                return buf.freeze();
            }
            ConsumerValue::AssignmentEpoch(e) => buf.put_i32(*e),
            ConsumerValue::Member(m) => {
                put_compact_string(&mut buf, m.instance_id.as_deref());
                put_compact_string(&mut buf, m.rack_id.as_deref());
                put_compact_string(&mut buf, Some(&m.client_id));
                put_compact_string(&mut buf, Some(&m.client_host));
                put_uvarint(&mut buf, m.subscribed_topic_names.len() as u32 + 1);
                for name in &m.subscribed_topic_names {
                    put_compact_string(&mut buf, Some(name));
                }
                put_compact_string(&mut buf, m.subscribed_topic_regex.as_deref());
                buf.put_i32(m.rebalance_timeout_ms);
                put_compact_string(&mut buf, m.server_assignor.as_deref());
                if let Some(classic) = &m.classic {
                    put_tagged_fields(&mut buf, &[(0, &encode_classic(classic))]);
                    return buf.freeze();
                }
            }
            ConsumerValue::Target(a) => put_assignment(&mut buf, a),
            ConsumerValue::Current(c) => {
                buf.put_i32(c.member_epoch);
                buf.put_i32(c.previous_member_epoch);
                buf.put_i8(state_code(c.state));
                put_assignment(&mut buf, &c.assigned);
                put_assignment(&mut buf, &c.pending_revocation);
            }
        }
        put_tagged_fields(&mut buf, &[]);
        buf.freeze()
    }

    pub fn decode(kind: i16, mut buf: &[u8]) -> Result<ConsumerValue, RecordError> {
        let b = &mut buf;
        need(b, 2)?;
        let _version = b.get_i16();
        let value = match kind {
            GROUP_METADATA => {
                need(b, 4)?;
                let epoch = b.get_i32();
                let mut metadata_hash = 0;
                get_tagged_fields(b, |tag, mut data| {
                    if tag == 0 && data.len() == 8 {
                        metadata_hash = data.get_i64();
                    }
                    Ok::<(), RecordError>(())
                })?;
                return Ok(ConsumerValue::Group { epoch, metadata_hash });
            }
            TARGET_METADATA => {
                need(b, 4)?;
                ConsumerValue::AssignmentEpoch(b.get_i32())
            }
            MEMBER_METADATA => {
                let instance_id = get_compact_string(b)?;
                let rack_id = get_compact_string(b)?;
                let client_id = get_compact_string(b)?.unwrap_or_default();
                let client_host = get_compact_string(b)?.unwrap_or_default();
                let count = get_compact_len(b, 1)?;
                let mut subscribed_topic_names = Vec::with_capacity(count);
                for _ in 0..count {
                    subscribed_topic_names.push(get_compact_string(b)?.unwrap_or_default());
                }
                let subscribed_topic_regex = get_compact_string(b)?;
                need(b, 4)?;
                let rebalance_timeout_ms = b.get_i32();
                let server_assignor = get_compact_string(b)?;
                let mut classic = None;
                get_tagged_fields(b, |tag, data| {
                    if tag == 0 {
                        classic = Some(decode_classic(&data)?);
                    }
                    Ok::<(), RecordError>(())
                })?;
                return Ok(ConsumerValue::Member(MemberMetadata {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex,
                    rebalance_timeout_ms,
                    server_assignor,
                    classic,
                }));
            }
            TARGET_MEMBER => ConsumerValue::Target(get_assignment(b)?),
            CURRENT_ASSIGNMENT => {
                need(b, 9)?;
                let (member_epoch, previous_member_epoch, state) = (b.get_i32(), b.get_i32(), b.get_i8());
                ConsumerValue::Current(CurrentAssignment {
                    member_epoch,
                    previous_member_epoch,
                    state: state_of(state),
                    assigned: get_assignment(b)?,
                    pending_revocation: get_assignment(b)?,
                })
            }
            _ => return Err(RecordError::unknown_key()),
        };
        // Tagged fields of a newer Kafka (metadata hash, assignment epochs) are not kept.
        get_tagged_fields(b, |_, _| Ok::<(), RecordError>(()))?;
        Ok(value)
    }
}

/// ClassicMemberMetadata: the session timeout and the protocols, each a
/// name and its metadata.
fn encode_classic(c: &ClassicMember) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(c.session_timeout_ms);
    put_uvarint(&mut buf, c.protocols.len() as u32 + 1);
    for (name, metadata) in &c.protocols {
        put_compact_string(&mut buf, Some(name));
        put_uvarint(&mut buf, metadata.len() as u32 + 1);
        buf.put_slice(metadata);
        put_tagged_fields(&mut buf, &[]);
    }
    put_tagged_fields(&mut buf, &[]);
    buf.to_vec()
}

fn decode_classic(mut data: &[u8]) -> Result<ClassicMember, RecordError> {
    let b = &mut data;
    need(b, 4)?;
    let session_timeout_ms = b.get_i32();
    let count = get_compact_len(b, 2)?;
    let mut protocols = Vec::with_capacity(count);
    for _ in 0..count {
        let name = get_compact_string(b)?.unwrap_or_default();
        let len = (get_uvarint(b)? as usize).saturating_sub(1);
        need(b, len)?;
        let metadata = Bytes::copy_from_slice(&b[..len]);
        b.advance(len);
        get_tagged_fields(b, |_, _| Ok::<(), RecordError>(()))?;
        protocols.push((name, metadata));
    }
    get_tagged_fields(b, |_, _| Ok::<(), RecordError>(()))?;
    Ok(ClassicMember {
        session_timeout_ms,
        protocols,
    })
}

fn get_assignment(b: &mut &[u8]) -> Result<Assignment, RecordError> {
    let topics = get_compact_len(b, 18)?;
    let mut out = Assignment::new();
    for _ in 0..topics {
        need(b, 16)?;
        let id = Uuid::from_slice(&b[..16]).map_err(|_| RecordError::truncated())?;
        b.advance(16);
        let count = get_compact_len(b, 4)?;
        let partitions: BTreeSet<i32> = (0..count).map(|_| b.get_i32()).collect();
        get_tagged_fields(b, |_, _| Ok::<(), RecordError>(()))?;
        out.insert(id, partitions);
    }
    Ok(out)
}

/// A hash of the topics a group subscribes to (names, ids, partition
/// counts), FNV-1a: stable across runs, for Sluice's own reading only.
pub fn metadata_hash(topics: &BTreeMap<String, (Uuid, i32)>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, (id, partitions)) in topics {
        eat(name.as_bytes());
        eat(&[0]);
        eat(id.as_bytes());
        eat(&partitions.to_be_bytes());
    }
    h as i64
}

// ----- Records of a change -----

fn record(kind: i16, group: &str, member: Option<&str>, value: Option<ConsumerValue>) -> GroupRecord {
    GroupRecord {
        key: RecordKey::Consumer {
            kind,
            group: group.to_string(),
            member: member.map(str::to_string),
        },
        value: value.map(RecordValue::Consumer),
    }
}

/// What a group looked like before an operation, to write what it changed.
pub struct Before {
    group_epoch: i32,
    assignment_epoch: i32,
    members: MemberSnapshots<MemberMetadata, CurrentAssignment>,
}

impl Before {
    /// Copies the `watched` member's state (see MemberSnapshots).
    pub fn of(cg: &ConsumerGroup, watched: Option<&str>) -> Before {
        Before {
            group_epoch: cg.group_epoch,
            assignment_epoch: cg.assignment_epoch,
            members: MemberSnapshots::of(cg.members.iter(), watched, |m| {
                (MemberMetadata::of(m), CurrentAssignment::of(m))
            }),
        }
    }

    /// A group that did not exist yet.
    pub fn none() -> Before {
        Before {
            group_epoch: 0,
            assignment_epoch: 0,
            members: MemberSnapshots::none(),
        }
    }
}

/// The records of what changed in `cg` since `before`: members gone
/// (tombstones), member metadata, the group epoch, a new target, and the
/// members' current assignments, in Kafka's order.
pub fn changes(group: &str, before: &Before, cg: &ConsumerGroup) -> Vec<GroupRecord> {
    let mut out = Vec::new();
    let members = before
        .members
        .changes(&cg.members, |m| (MemberMetadata::of(m), CurrentAssignment::of(m)));
    for id in members.gone {
        out.push(record(CURRENT_ASSIGNMENT, group, Some(id), None));
        out.push(record(TARGET_MEMBER, group, Some(id), None));
        out.push(record(MEMBER_METADATA, group, Some(id), None));
    }
    for (id, metadata) in members.metadata {
        out.push(record(
            MEMBER_METADATA,
            group,
            Some(id),
            Some(ConsumerValue::Member(metadata)),
        ));
    }
    if cg.group_epoch != before.group_epoch {
        let value = ConsumerValue::Group {
            epoch: cg.group_epoch,
            metadata_hash: metadata_hash(&cg.subscribed_topics),
        };
        out.push(record(GROUP_METADATA, group, None, Some(value)));
    }
    if cg.assignment_epoch != before.assignment_epoch {
        for (id, target) in &cg.target {
            out.push(record(
                TARGET_MEMBER,
                group,
                Some(id),
                Some(ConsumerValue::Target(target.clone())),
            ));
        }
        out.push(record(
            TARGET_METADATA,
            group,
            None,
            Some(ConsumerValue::AssignmentEpoch(cg.assignment_epoch)),
        ));
    }
    for (id, current) in members.current {
        out.push(record(
            CURRENT_ASSIGNMENT,
            group,
            Some(id),
            Some(ConsumerValue::Current(current)),
        ));
    }
    out
}

/// The tombstones of a consumer group that is deleted or becomes another kind.
pub fn group_tombstones(group: &str, cg: &ConsumerGroup) -> Vec<GroupRecord> {
    let mut out = changes(group, &Before::of(cg, None), &ConsumerGroup::new());
    out.retain(|r| r.value.is_none());
    out.push(record(TARGET_METADATA, group, None, None));
    out.push(record(GROUP_METADATA, group, None, None));
    out
}

/// Replays one record into the group's state (`cg` None: a tombstone of
/// the group itself took it away). Members come back with a new session.
pub fn replay(
    cg: &mut ConsumerGroup,
    kind: i16,
    member: Option<&str>,
    value: Option<&ConsumerValue>,
    session_deadline: i64,
) {
    match (value, member) {
        (Some(ConsumerValue::Group { epoch, metadata_hash }), _) => {
            cg.group_epoch = *epoch;
            cg.loaded_metadata_hash = Some(*metadata_hash);
        }
        (Some(ConsumerValue::AssignmentEpoch(e)), _) => cg.assignment_epoch = *e,
        (Some(ConsumerValue::Member(v)), Some(id)) => {
            if let Some(instance) = &v.instance_id {
                cg.static_members.insert(instance.clone(), id.to_string());
            }
            if let Some(m) = member_entry(cg, id, session_deadline) {
                m.instance_id = v.instance_id.clone();
                m.rack_id = v.rack_id.clone();
                m.client_id = v.client_id.clone();
                m.client_host = v.client_host.clone();
                m.subscribed_topic_names = v.subscribed_topic_names.clone();
                m.subscribed_topic_regex = v.subscribed_topic_regex.clone();
                m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                m.server_assignor = v.server_assignor.clone();
                m.classic = v.classic.clone();
            }
        }
        (Some(ConsumerValue::Target(a)), Some(id)) => {
            cg.target.insert(id.to_string(), a.clone());
        }
        (Some(ConsumerValue::Current(c)), Some(id)) => {
            if let Some(m) = member_entry(cg, id, session_deadline) {
                m.member_epoch = c.member_epoch;
                m.previous_member_epoch = c.previous_member_epoch;
                m.state = c.state;
                m.assigned = c.assigned.clone();
                m.pending_revocation = c.pending_revocation.clone();
                if m.state == MemberState::UnrevokedPartitions {
                    m.revocation_deadline = Some(session_deadline);
                }
            }
        }
        (None, Some(id)) if kind == MEMBER_METADATA => {
            if let Some(m) = cg.members.remove(id) {
                if let Some(instance) = m.instance_id {
                    if cg.static_members.get(&instance).is_some_and(|x| x == id) {
                        cg.static_members.remove(&instance);
                    }
                }
            }
        }
        (None, Some(id)) if kind == TARGET_MEMBER => {
            cg.target.remove(id);
        }
        _ => {}
    }
}

/// A member as loading finds it: known, or new with a fresh session.
fn member_entry<'a>(cg: &'a mut ConsumerGroup, id: &str, session_deadline: i64) -> Option<&'a mut ConsumerMember> {
    Some(
        cg.members
            .entry(id.to_string())
            .or_insert_with(|| ConsumerMember::new(id.to_string(), session_deadline)),
    )
}

#[cfg(test)]
#[path = "tests/consumer_records.rs"]
mod tests;
