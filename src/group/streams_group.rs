//! A streams group (KIP-1071): Kafka Streams clients whose tasks the
//! coordinator assigns. The group holds the application's topology (sent by
//! the first member), each member's tasks and its way to its target, with
//! member epochs as in KIP-848. Kafka's StreamsGroup and StreamsGroupMember.

use std::collections::{BTreeMap, BTreeSet};

/// Tasks by subtopology id: the partitions each processes.
pub type Tasks = BTreeMap<String, BTreeSet<i32>>;

/// An internal or source topic as the topology describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicInfo {
    pub name: String,
    /// 0: decided by the coordinator.
    pub partitions: i32,
    /// 0: the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub repartition_sink_topics: Vec<String>,
    pub changelog_topics: Vec<TopicInfo>,
    pub repartition_source_topics: Vec<TopicInfo>,
    /// Sets of source topics (names) that must have as many partitions.
    pub copartition_groups: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
}

/// Kafka's StreamsGroupHeartbeatResponse.Status codes.
pub mod status {
    pub const STALE_TOPOLOGY: i8 = 0;
    pub const MISSING_SOURCE_TOPICS: i8 = 1;
    pub const INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
    pub const MISSING_INTERNAL_TOPICS: i8 = 3;
    pub const SHUTDOWN_APPLICATION: i8 = 4;
    pub const ASSIGNMENT_DELAYED: i8 = 5;
}

/// Where a member is in reaching its target (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedTasks,
    UnreleasedTasks,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedTasks => "UNREVOKED_TASKS",
            MemberState::UnreleasedTasks => "UNRELEASED_TASKS",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StreamsMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: BTreeMap<String, String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub active: Tasks,
    pub standby: Tasks,
    pub pending_revocation: Tasks,
    pub session_deadline: i64,
    pub revocation_deadline: Option<i64>,
}

impl StreamsMember {
    pub fn new(id: String, now: i64) -> StreamsMember {
        StreamsMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 300_000,
            topology_epoch: 0,
            process_id: String::new(),
            user_endpoint: None,
            client_tags: BTreeMap::new(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            active: Tasks::new(),
            standby: Tasks::new(),
            pending_revocation: Tasks::new(),
            session_deadline: now,
            revocation_deadline: None,
        }
    }
}

/// What the coordinator made of the topology against the topics there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfiguredTopology {
    /// Tasks per subtopology, once every topic is there as it must be.
    pub tasks: Option<BTreeMap<String, i32>>,
    /// Internal topics to create, with their partition counts.
    pub missing_internal: Vec<TopicInfo>,
    /// A status for the members (missing topics, wrong partition counts).
    pub status: Option<(i8, String)>,
}

impl ConfiguredTopology {
    pub fn is_ready(&self) -> bool {
        self.tasks.is_some() && self.status.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct StreamsGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, StreamsMember>,
    /// The active tasks each member converges on.
    pub target: BTreeMap<String, Tasks>,
    pub target_standby: BTreeMap<String, Tasks>,
    pub topology: Option<Topology>,
    pub configured: ConfiguredTopology,
    /// The partition counts of the topics the topology reads and writes, as
    /// they were when it was last configured: a change calls for a new target.
    pub topic_counts: BTreeMap<String, i32>,
    pub endpoint_information_epoch: i32,
    pub shutdown_requested_by: Option<String>,
    /// No tasks assigned before this (streams.initial.rebalance.delay.ms).
    pub assignment_not_before: Option<i64>,
    /// The topics' hash in the group record a load read: the topics, if
    /// unchanged, call for no new assignment.
    pub loaded_topics_hash: Option<i64>,
}

impl StreamsGroup {
    pub fn new() -> StreamsGroup {
        StreamsGroup::default()
    }

    /// Kafka's StreamsGroupState names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.topology.is_none() || !self.configured.is_ready() {
            "NotReady"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.member_epoch != self.assignment_epoch)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Which member holds each active task now (assigned or being revoked).
    pub fn active_owners(&self) -> BTreeMap<(String, i32), String> {
        let mut owners = BTreeMap::new();
        for m in self.members.values() {
            for (sub, parts) in m.active.iter().chain(m.pending_revocation.iter()) {
                for p in parts {
                    owners.insert((sub.clone(), *p), m.id.clone());
                }
            }
        }
        owners
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<StreamsMember> {
        let member = self.members.remove(member_id)?;
        self.target.remove(member_id);
        self.target_standby.remove(member_id);
        if self.shutdown_requested_by.as_deref() == Some(member_id) && self.members.is_empty() {
            self.shutdown_requested_by = None;
        }
        self.group_epoch += 1;
        Some(member)
    }
}
