//! `GroupShard`: the group coordinator's state for one partition of
//! `__consumer_offsets` — its groups (Kafka's classic protocol), their
//! committed offsets, and offsets committed in transactions still open.
//! Loading the partition replays its records here; the operations
//! (`membership`, `rebalance`, `offsets`, `admin`) return the records they
//! make. Synchronous and driven by the caller's clock, so tests control time.

use super::classic_group::{CommittedOffset, Group, GroupState};
use super::consumer_group::ConsumerGroup;
use super::consumer_records;
use super::records::{RecordKey, RecordValue, ShareGroupValue};
use super::streams_changes;
use super::streams_group::StreamsGroup;
use super::streams_heartbeat::StreamsSettings;
use super::streams_records;
use crate::coordinator::{Shard, TxnProducer};
use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::oneshot;

/// A record of `__consumer_offsets`: a key and its value (None: a tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub key: RecordKey,
    pub value: Option<RecordValue>,
}

impl GroupRecord {
    /// The record that persists a group's membership and assignment.
    pub fn group(group: &Group) -> GroupRecord {
        GroupRecord {
            key: RecordKey::Group {
                group: group.id.clone(),
            },
            value: Some(RecordValue::Group(group.to_value())),
        }
    }

    pub fn group_tombstone(group: &str) -> GroupRecord {
        GroupRecord {
            key: RecordKey::Group {
                group: group.to_string(),
            },
            value: None,
        }
    }

    /// A share group's existence and epoch (None: it is deleted).
    pub fn share_group(group: &str, epoch: Option<i32>) -> GroupRecord {
        GroupRecord {
            key: RecordKey::ShareGroup {
                group: group.to_string(),
            },
            value: epoch.map(|epoch| {
                RecordValue::ShareGroup(ShareGroupValue {
                    epoch,
                    metadata_hash: 0,
                })
            }),
        }
    }

    pub fn offset(group: &str, topic: &str, partition: i32, offset: Option<&CommittedOffset>) -> GroupRecord {
        GroupRecord {
            key: RecordKey::Offset {
                group: group.to_string(),
                topic: topic.to_string(),
                partition,
            },
            value: offset.map(|o| RecordValue::Offset(o.to_value())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub offsets_retention_ms: i64,
    pub offset_metadata_max_bytes: usize,
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    /// The first is the default.
    pub consumer_assignors: Vec<String>,
    pub consumer_max_size: i32,
    pub migration_policy: crate::config::MigrationPolicy,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5000,
            consumer_assignors: vec!["uniform".to_string(), "range".to_string()],
            consumer_max_size: i32::MAX,
            migration_policy: crate::config::MigrationPolicy::default(),
        }
    }
}

/// An answer now, or one that arrives when the group moves on.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// Offsets committed in a transaction, waiting for its marker:
/// (group, topic, partition) → offset.
pub(super) type PendingOffsets = BTreeMap<(String, String, i32), CommittedOffset>;

pub struct GroupShard {
    pub(super) groups: HashMap<String, Group>,
    pub(super) config: GroupConfig,
    /// By producer id.
    pub(super) pending_txn: HashMap<i64, PendingOffsets>,
}

impl GroupShard {
    pub fn new(config: GroupConfig) -> GroupShard {
        GroupShard {
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

    /// An offset record applied: `producer` set for one of an open transaction.
    fn replay_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: Option<&RecordValue>,
        producer: Option<TxnProducer>,
        now: i64,
    ) {
        let committed = match value {
            Some(RecordValue::Offset(v)) => Some(CommittedOffset {
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata.clone(),
                commit_timestamp: v.commit_timestamp,
            }),
            _ => None,
        };
        let key = (topic.to_string(), partition);
        match (producer, committed) {
            (Some(p), Some(c)) => {
                self.pending_txn
                    .entry(p.producer_id)
                    .or_default()
                    .insert((group.to_string(), key.0, key.1), c);
            }
            (Some(_), None) => {}
            (None, Some(c)) => {
                self.groups
                    .entry(group.to_string())
                    .or_insert_with(|| Group::new(group, now))
                    .offsets
                    .insert(key, c);
            }
            (None, None) => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.offsets.remove(&key);
                    if is_forgettable(g) {
                        self.groups.remove(group);
                    }
                }
            }
        }
    }
}

/// A group with nothing left: no members, no protocol, no offsets.
fn is_forgettable(g: &Group) -> bool {
    g.offsets.is_empty()
        && g.members.is_empty()
        && g.protocol_type.is_none()
        && g.state == GroupState::Empty
        && g.consumer.is_none()
        && g.share.is_none()
        && g.streams.is_none()
}

impl Shard for GroupShard {
    type Record = GroupRecord;

    fn replay(&mut self, record: &GroupRecord, producer: Option<TxnProducer>, now: i64) {
        match (&record.key, &record.value) {
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                value,
            ) => self.replay_offset(group, topic, *partition, value.as_ref(), producer, now),
            (RecordKey::Group { group }, Some(RecordValue::Group(v))) => {
                let offsets = self.groups.remove(group).map(|g| g.offsets).unwrap_or_default();
                let mut loaded = Group::from_value(group, v, now);
                loaded.offsets = offsets;
                self.groups.insert(group.clone(), loaded);
            }
            (RecordKey::ShareGroup { group }, Some(RecordValue::ShareGroup(v))) => {
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, now));
                let sg = g.share.get_or_insert_with(Default::default);
                sg.group_epoch = sg.group_epoch.max(v.epoch);
            }
            (RecordKey::ShareGroup { group }, _) => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.share = None;
                    if is_forgettable(g) {
                        self.groups.remove(group);
                    }
                }
            }
            (RecordKey::Consumer { kind, group, member }, value) => {
                let value = match value {
                    Some(RecordValue::Consumer(v)) => Some(v),
                    _ => None,
                };
                if *kind == consumer_records::GROUP_METADATA && value.is_none() {
                    if let Some(g) = self.groups.get_mut(group) {
                        g.consumer = None;
                        if is_forgettable(g) {
                            self.groups.remove(group);
                        }
                    }
                    return;
                }
                let session = now + self.config.consumer_session_timeout_ms as i64;
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, now));
                let cg = g.consumer.get_or_insert_with(|| Box::new(ConsumerGroup::new()));
                consumer_records::replay(cg, *kind, member.as_deref(), value, session);
            }
            (RecordKey::Streams { kind, group, member }, value) => {
                let value = match value {
                    Some(RecordValue::Streams(v)) => Some(v),
                    _ => None,
                };
                if *kind == streams_records::GROUP_METADATA && value.is_none() {
                    if let Some(g) = self.groups.get_mut(group) {
                        g.streams = None;
                        if is_forgettable(g) {
                            self.groups.remove(group);
                        }
                    }
                    return;
                }
                // A loaded member gets one session of the default length; its
                // next heartbeat brings the group's own.
                let session = now + StreamsSettings::default().session_timeout_ms as i64;
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, now));
                let sg = g.streams.get_or_insert_with(|| Box::new(StreamsGroup::new()));
                streams_changes::replay(sg, *kind, member.as_deref(), value, session);
            }
            (RecordKey::Group { group }, _) => {
                // The group's membership is gone; its offsets (if any) stay.
                if let Some(g) = self.groups.remove(group) {
                    if !g.offsets.is_empty() {
                        let mut simple = Group::new(group, now);
                        simple.offsets = g.offsets;
                        self.groups.insert(group.clone(), simple);
                    }
                }
            }
        }
    }

    fn replay_marker(&mut self, producer_id: i64, commit: bool, now: i64) {
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

    fn encode(record: &GroupRecord) -> (Bytes, Option<Bytes>) {
        let value = record.value.as_ref().map(|v| match v {
            RecordValue::Offset(o) => o.encode(),
            RecordValue::Group(g) => g.encode(),
            RecordValue::ShareGroup(g) => g.encode(),
            RecordValue::Consumer(c) => c.encode(),
            RecordValue::Streams(v) => v.encode(),
        });
        (record.key.encode(), value)
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, String> {
        let key = RecordKey::decode(key).map_err(|e| e.to_string())?;
        let value = RecordValue::decode(&key, value).map_err(|e| e.to_string())?;
        Ok(GroupRecord { key, value })
    }
}

pub(super) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub(super) fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(s(member_id))
        .with_protocol_name(None)
}

pub(super) fn sync_error(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}
