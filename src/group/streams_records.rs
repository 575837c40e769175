//! A streams group (KIP-1071) in `__consumer_offsets`, in Kafka 4.4's
//! layouts: StreamsGroupMetadata (key 17: the group epoch),
//! StreamsGroupMemberMetadata (19), StreamsGroupTargetAssignmentMetadata
//! (20: the assignment epoch), StreamsGroupTargetAssignmentMember (21),
//! StreamsGroupCurrentMemberAssignment (22) and StreamsGroupTopology (23).
//! The values' codecs; `streams_changes` writes and replays them.

use super::records::RecordError;
use super::streams_group::{MemberState, StreamsMember, Subtopology, Tasks, TopicInfo, Topology};
use crate::coordinator::flexible::{
    get_compact_len, get_compact_string, get_tagged_fields, need, put_compact_len, put_compact_string,
    put_tagged_fields,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

pub const GROUP_METADATA: i16 = 17;
pub const MEMBER_METADATA: i16 = 19;
pub const TARGET_METADATA: i16 = 20;
pub const TARGET_MEMBER: i16 = 21;
pub const CURRENT_ASSIGNMENT: i16 = 22;
pub const TOPOLOGY: i16 = 23;

/// Whether a record kind is one of a member's (its key names the member).
pub fn is_member_kind(kind: i16) -> bool {
    matches!(kind, MEMBER_METADATA | TARGET_MEMBER | CURRENT_ASSIGNMENT)
}

pub fn is_streams_kind(kind: i16) -> bool {
    matches!(kind, GROUP_METADATA | TARGET_METADATA | TOPOLOGY) || is_member_kind(kind)
}

/// What a member told the group (StreamsGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: BTreeMap<String, String>,
}

impl MemberMetadata {
    pub fn of(m: &StreamsMember) -> MemberMetadata {
        MemberMetadata {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            topology_epoch: m.topology_epoch,
            process_id: m.process_id.clone(),
            user_endpoint: m.user_endpoint.clone(),
            client_tags: m.client_tags.clone(),
        }
    }
}

/// Where a member is (StreamsGroupCurrentMemberAssignmentValue). Sluice
/// assigns no warm-up tasks and revokes only active ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub active: Tasks,
    pub standby: Tasks,
    pub active_pending_revocation: Tasks,
}

impl CurrentAssignment {
    pub fn of(m: &StreamsMember) -> CurrentAssignment {
        CurrentAssignment {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            state: m.state,
            active: m.active.clone(),
            standby: m.standby.clone(),
            active_pending_revocation: m.pending_revocation.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamsValue {
    /// The group epoch; a hash of the topics its topology uses.
    Group {
        epoch: i32,
        metadata_hash: i64,
    },
    Member(MemberMetadata),
    AssignmentEpoch(i32),
    Target {
        active: Tasks,
        standby: Tasks,
    },
    Current(CurrentAssignment),
    Topology(Topology),
}

/// Kafka's streams MemberState codes (not the consumer group's).
fn state_code(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 1,
        MemberState::UnrevokedTasks => 2,
        MemberState::UnreleasedTasks => 3,
    }
}

fn state_of(code: i8) -> MemberState {
    match code {
        2 => MemberState::UnrevokedTasks,
        3 => MemberState::UnreleasedTasks,
        _ => MemberState::Stable,
    }
}

// ----- Encoding -----

fn put_strings(buf: &mut BytesMut, list: &[String]) {
    put_compact_len(buf, Some(list.len()));
    for s in list {
        put_compact_string(buf, Some(s));
    }
}

fn put_pairs<'a>(buf: &mut BytesMut, pairs: impl ExactSizeIterator<Item = (&'a String, &'a String)>) {
    put_compact_len(buf, Some(pairs.len()));
    for (k, v) in pairs {
        put_compact_string(buf, Some(k));
        put_compact_string(buf, Some(v));
        put_tagged_fields(buf, &[]);
    }
}

/// TaskIds: a subtopology and its partitions, one entry per subtopology.
fn put_tasks(buf: &mut BytesMut, tasks: &Tasks) {
    let entries: Vec<_> = tasks.iter().filter(|(_, p)| !p.is_empty()).collect();
    put_compact_len(buf, Some(entries.len()));
    for (subtopology, partitions) in entries {
        put_compact_string(buf, Some(subtopology));
        put_compact_len(buf, Some(partitions.len()));
        for p in partitions {
            buf.put_i32(*p);
        }
        put_tagged_fields(buf, &[]);
    }
}

fn put_topic_infos(buf: &mut BytesMut, topics: &[TopicInfo]) {
    put_compact_len(buf, Some(topics.len()));
    for t in topics {
        put_compact_string(buf, Some(&t.name));
        buf.put_i32(t.partitions);
        buf.put_i16(t.replication_factor);
        put_pairs(buf, t.configs.iter().map(|(k, v)| (k, v)));
        put_tagged_fields(buf, &[]);
    }
}

/// A copartition group names its topics by their place in the
/// subtopology's source topics or repartition source topics.
fn put_copartition_group(buf: &mut BytesMut, st: &Subtopology, names: &[String]) {
    let index_in = |list: Vec<&String>| -> Vec<i16> {
        names
            .iter()
            .filter_map(|n| list.iter().position(|x| *x == n))
            .map(|i| i as i16)
            .collect()
    };
    let sources = index_in(st.source_topics.iter().collect());
    let repartition = index_in(st.repartition_source_topics.iter().map(|t| &t.name).collect());
    for list in [&sources[..], &[], &repartition[..]] {
        put_compact_len(buf, Some(list.len()));
        for i in list {
            buf.put_i16(*i);
        }
    }
    put_tagged_fields(buf, &[]);
}

fn put_topology(buf: &mut BytesMut, t: &Topology) {
    buf.put_i32(t.epoch);
    put_compact_len(buf, Some(t.subtopologies.len()));
    for st in &t.subtopologies {
        put_compact_string(buf, Some(&st.id));
        put_strings(buf, &st.source_topics);
        put_strings(buf, &[]); // source topic regexes: none from the clients Sluice serves
        put_topic_infos(buf, &st.changelog_topics);
        put_strings(buf, &st.repartition_sink_topics);
        put_topic_infos(buf, &st.repartition_source_topics);
        put_compact_len(buf, Some(st.copartition_groups.len()));
        for group in &st.copartition_groups {
            put_copartition_group(buf, st, group);
        }
        put_tagged_fields(buf, &[]);
    }
}

impl StreamsValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        match self {
            StreamsValue::Group { epoch, metadata_hash } => {
                buf.put_i32(*epoch);
                buf.put_i64(*metadata_hash);
            }
            StreamsValue::AssignmentEpoch(e) => buf.put_i32(*e),
            StreamsValue::Member(m) => {
                put_compact_string(&mut buf, m.instance_id.as_deref());
                put_compact_string(&mut buf, m.rack_id.as_deref());
                put_compact_string(&mut buf, Some(&m.client_id));
                put_compact_string(&mut buf, Some(&m.client_host));
                buf.put_i32(m.rebalance_timeout_ms);
                buf.put_i32(m.topology_epoch);
                put_compact_string(&mut buf, Some(&m.process_id));
                // A nullable struct: a byte (-1 null, 1 present) before it.
                match &m.user_endpoint {
                    Some((host, port)) => {
                        buf.put_i8(1);
                        put_compact_string(&mut buf, Some(host));
                        buf.put_u16(*port);
                        put_tagged_fields(&mut buf, &[]);
                    }
                    None => buf.put_i8(-1),
                }
                put_pairs(&mut buf, m.client_tags.iter());
            }
            StreamsValue::Target { active, standby } => {
                put_tasks(&mut buf, active);
                put_tasks(&mut buf, standby);
                put_tasks(&mut buf, &Tasks::new());
            }
            StreamsValue::Current(c) => {
                buf.put_i32(c.member_epoch);
                buf.put_i32(c.previous_member_epoch);
                buf.put_i8(state_code(c.state));
                put_tasks(&mut buf, &c.active);
                put_tasks(&mut buf, &c.standby);
                put_tasks(&mut buf, &Tasks::new());
                put_tasks(&mut buf, &c.active_pending_revocation);
                put_tasks(&mut buf, &Tasks::new());
                put_tasks(&mut buf, &Tasks::new());
            }
            StreamsValue::Topology(t) => put_topology(&mut buf, t),
        }
        put_tagged_fields(&mut buf, &[]);
        buf.freeze()
    }

    pub fn decode(kind: i16, mut buf: &[u8]) -> Result<StreamsValue, RecordError> {
        let b = &mut buf;
        need(b, 2)?;
        let _version = b.get_i16();
        let value = match kind {
            GROUP_METADATA => {
                need(b, 12)?;
                StreamsValue::Group {
                    epoch: b.get_i32(),
                    metadata_hash: b.get_i64(),
                }
            }
            TARGET_METADATA => {
                need(b, 4)?;
                StreamsValue::AssignmentEpoch(b.get_i32())
            }
            MEMBER_METADATA => {
                let instance_id = get_compact_string(b)?;
                let rack_id = get_compact_string(b)?;
                let client_id = get_compact_string(b)?.unwrap_or_default();
                let client_host = get_compact_string(b)?.unwrap_or_default();
                need(b, 8)?;
                let (rebalance_timeout_ms, topology_epoch) = (b.get_i32(), b.get_i32());
                let process_id = get_compact_string(b)?.unwrap_or_default();
                need(b, 1)?;
                let user_endpoint = if b.get_i8() < 0 {
                    None
                } else {
                    let host = get_compact_string(b)?.unwrap_or_default();
                    need(b, 2)?;
                    let port = b.get_u16();
                    skip_tagged(b)?;
                    Some((host, port))
                };
                let client_tags = get_pairs(b)?.into_iter().collect();
                StreamsValue::Member(MemberMetadata {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    rebalance_timeout_ms,
                    topology_epoch,
                    process_id,
                    user_endpoint,
                    client_tags,
                })
            }
            TARGET_MEMBER => {
                let active = get_tasks(b)?;
                let standby = get_tasks(b)?;
                let _warmup = get_tasks(b)?;
                StreamsValue::Target { active, standby }
            }
            CURRENT_ASSIGNMENT => {
                need(b, 9)?;
                let (member_epoch, previous_member_epoch, state) = (b.get_i32(), b.get_i32(), b.get_i8());
                let active = get_tasks(b)?;
                let standby = get_tasks(b)?;
                let _warmup = get_tasks(b)?;
                let active_pending_revocation = get_tasks(b)?;
                let _standby_pending = get_tasks(b)?;
                let _warmup_pending = get_tasks(b)?;
                StreamsValue::Current(CurrentAssignment {
                    member_epoch,
                    previous_member_epoch,
                    state: state_of(state),
                    active,
                    standby,
                    active_pending_revocation,
                })
            }
            TOPOLOGY => StreamsValue::Topology(get_topology(b)?),
            _ => return Err(RecordError::unknown_key()),
        };
        // Tagged fields Sluice does not keep (validated topology epoch, assignment time).
        skip_tagged(b)?;
        Ok(value)
    }
}

fn skip_tagged(b: &mut &[u8]) -> Result<(), RecordError> {
    get_tagged_fields(b, |_, _| Ok::<(), RecordError>(()))
}

fn get_strings(b: &mut &[u8]) -> Result<Vec<String>, RecordError> {
    let n = get_compact_len(b, 1)?;
    (0..n).map(|_| Ok(get_compact_string(b)?.unwrap_or_default())).collect()
}

fn get_pairs(b: &mut &[u8]) -> Result<Vec<(String, String)>, RecordError> {
    let n = get_compact_len(b, 3)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = get_compact_string(b)?.unwrap_or_default();
        let v = get_compact_string(b)?.unwrap_or_default();
        skip_tagged(b)?;
        out.push((k, v));
    }
    Ok(out)
}

fn get_tasks(b: &mut &[u8]) -> Result<Tasks, RecordError> {
    let n = get_compact_len(b, 3)?;
    let mut out = Tasks::new();
    for _ in 0..n {
        let subtopology = get_compact_string(b)?.unwrap_or_default();
        let count = get_compact_len(b, 4)?;
        let partitions: BTreeSet<i32> = (0..count).map(|_| b.get_i32()).collect();
        skip_tagged(b)?;
        out.entry(subtopology).or_default().extend(partitions);
    }
    Ok(out)
}

fn get_topic_infos(b: &mut &[u8]) -> Result<Vec<TopicInfo>, RecordError> {
    let n = get_compact_len(b, 8)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = get_compact_string(b)?.unwrap_or_default();
        need(b, 6)?;
        let (partitions, replication_factor) = (b.get_i32(), b.get_i16());
        let configs = get_pairs(b)?;
        skip_tagged(b)?;
        out.push(TopicInfo {
            name,
            partitions,
            replication_factor,
            configs,
        });
    }
    Ok(out)
}

fn get_indexes(b: &mut &[u8]) -> Result<Vec<i16>, RecordError> {
    let n = get_compact_len(b, 2)?;
    Ok((0..n).map(|_| b.get_i16()).collect())
}

fn get_topology(b: &mut &[u8]) -> Result<Topology, RecordError> {
    need(b, 4)?;
    let epoch = b.get_i32();
    let n = get_compact_len(b, 8)?;
    let mut subtopologies = Vec::with_capacity(n);
    for _ in 0..n {
        let id = get_compact_string(b)?.unwrap_or_default();
        let source_topics = get_strings(b)?;
        let _regexes = get_strings(b)?;
        let changelog_topics = get_topic_infos(b)?;
        let repartition_sink_topics = get_strings(b)?;
        let repartition_source_topics = get_topic_infos(b)?;
        let groups = get_compact_len(b, 4)?;
        let mut copartition_groups = Vec::with_capacity(groups);
        for _ in 0..groups {
            let sources = get_indexes(b)?;
            let _regex = get_indexes(b)?;
            let repartition = get_indexes(b)?;
            skip_tagged(b)?;
            let at = |i: &i16, names: Vec<&String>| names.get(*i as usize).map(|s| s.to_string());
            copartition_groups.push(
                sources
                    .iter()
                    .filter_map(|i| at(i, source_topics.iter().collect()))
                    .chain(
                        repartition
                            .iter()
                            .filter_map(|i| at(i, repartition_source_topics.iter().map(|t| &t.name).collect())),
                    )
                    .collect(),
            );
        }
        skip_tagged(b)?;
        subtopologies.push(Subtopology {
            id,
            source_topics,
            repartition_sink_topics,
            changelog_topics,
            repartition_source_topics,
            copartition_groups,
        });
    }
    Ok(Topology { epoch, subtopologies })
}

/// A hash of the partition counts a group's topology was configured
/// against (FNV-1a): a coordinator that loads the group and finds the same
/// topics does not start a new assignment for them.
pub fn topics_hash(counts: &BTreeMap<String, i32>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, partitions) in counts {
        for b in name.as_bytes().iter().chain(&[0]).chain(&partitions.to_be_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

#[cfg(test)]
#[path = "tests/streams_records.rs"]
mod tests;
