//! A classic consumer group: its state, generation, chosen protocol, members
//! and committed offsets, with the bookkeeping Kafka's GroupMetadata keeps.

use super::records::{GroupValue, MemberValue, OffsetValue};
use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports (DescribeGroups, ListGroups).
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// Supported protocols in the member's order of preference: (name, metadata).
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinGroupResponse>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncGroupResponse>>,
    /// The member is removed when this passes without a heartbeat.
    pub heartbeat_deadline: i64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A committed offset as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

impl CommittedOffset {
    pub fn to_value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp,
            expire_timestamp: None,
        }
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered its current state (offsets of an empty group
    /// expire counting from here).
    pub state_since: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member becomes leader.
    pub members: IndexMap<String, Member>,
    /// group.instance.id → member id, for static members.
    pub static_members: HashMap<String, String>,
    /// Members told MEMBER_ID_REQUIRED and expected back before this deadline.
    pub pending_members: HashMap<String, i64>,
    /// Members that have not sent SyncGroup for the current generation yet.
    pub pending_sync: HashSet<String>,
    /// The join phase ends here at the latest (PreparingRebalance).
    pub join_deadline: Option<i64>,
    /// group.initial.rebalance.delay.ms: (deadline, time left to extend by).
    pub initial_delay: Option<(i64, i64)>,
    pub new_member_added: bool,
    /// Members must have synced by then (CompletingRebalance).
    pub sync_deadline: Option<i64>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Set when the group speaks the new consumer protocol (KIP-848); the
    /// classic fields then stay empty and only the offsets are shared.
    pub consumer: Option<Box<super::consumer_group::ConsumerGroup>>,
    /// Set for a share group (KIP-932); the classic fields then stay empty.
    pub share: Option<Box<super::share_group::ShareGroup>>,
    /// Set for a streams group (KIP-1071); the classic fields then stay empty.
    pub streams: Option<Box<super::streams_group::StreamsGroup>>,
}

impl Group {
    /// Whether members of the newer protocols (consumer, share, streams) are in it.
    pub fn has_protocol_members(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| !c.members.is_empty())
            || self.share.as_ref().is_some_and(|s| !s.members.is_empty())
            || self.streams.as_ref().is_some_and(|s| !s.members.is_empty())
    }

    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since: now,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            consumer: None,
            share: None,
            streams: None,
        }
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_since = now;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Whether a member with these protocols may join: an empty group takes
    /// any non-empty list; otherwise the type must match and one of the
    /// protocols must be supported by every current member.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Kafka's vote: among protocols every member supports, each member
    /// votes for its most preferred; the most votes wins.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: IndexMap<&str, usize> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n.as_str())) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    pub fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    pub fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// Removes a member, choosing a new leader if it led.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.shift_remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// The record that persists this group's membership and assignment.
    pub fn to_value(&self) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_since,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: self.protocol.as_deref().map(|p| m.metadata_for(p)).unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its persisted record; members must heartbeat
    /// within their session timeout from `now` to stay.
    pub fn from_value(id: &str, value: &GroupValue, now: i64) -> Group {
        let mut group = Group::new(id, now);
        group.generation = value.generation;
        group.protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        group.protocol = value.protocol.clone();
        group.leader = value.leader.clone();
        group.state_since = if value.current_state_timestamp > 0 {
            value.current_state_timestamp
        } else {
            now
        };
        for m in &value.members {
            let protocol = value.protocol.clone().unwrap_or_default();
            group.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout,
                    rebalance_timeout_ms: m.rebalance_timeout,
                    protocols: vec![(protocol, m.subscription.clone())],
                    assignment: m.assignment.clone(),
                    awaiting_join: None,
                    awaiting_sync: None,
                    heartbeat_deadline: now + m.session_timeout as i64,
                },
            );
            if let Some(instance) = &m.group_instance_id {
                group.static_members.insert(instance.clone(), m.member_id.clone());
            }
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// Topics the members subscribe to, when every member's subscription can
    /// be read (the "consumer" protocol); None when unknown.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut metadata = m.metadata_for(protocol);
            if metadata.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([metadata[0], metadata[1]]);
            let _ = bytes::Buf::get_i16(&mut metadata);
            let version = version.clamp(0, 3);
            let sub = ConsumerProtocolSubscription::decode(&mut metadata, version).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}
