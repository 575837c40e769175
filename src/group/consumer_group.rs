//! A consumer group of the new protocol (KIP-848): the coordinator computes
//! the assignment itself and each member converges on its share heartbeat
//! by heartbeat, carrying an epoch. Kafka's ConsumerGroup and
//! ConsumerGroupMember.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Where a member is in reaching its target assignment (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// The member holds its target (or all of it that is free yet).
    Stable,
    /// The member must give up partitions before it gets new ones.
    UnrevokedPartitions,
    /// Part of the target is still held by members that must revoke it.
    UnreleasedPartitions,
}

/// Epoch of a static member that left and may come back (KIP-848).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;

/// A member that speaks the classic protocol inside a consumer group
/// (Kafka's ClassicMemberMetadata): JoinGroup, SyncGroup and Heartbeat
/// stand in for its consumer-group heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, bytes::Bytes)>,
}

impl ClassicMember {
    /// The protocol the member is answered in: its first choice.
    pub fn protocol(&self) -> (&str, &bytes::Bytes) {
        static EMPTY: bytes::Bytes = bytes::Bytes::new();
        self.protocols.first().map_or(("", &EMPTY), |(n, m)| (n.as_str(), m))
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// The member is removed when this passes without a heartbeat.
    pub session_deadline: i64,
    /// The member is fenced if it still holds revoked partitions by then.
    pub revocation_deadline: Option<i64>,
    /// Set for a member of the classic protocol.
    pub classic: Option<ClassicMember>,
    /// A classic member told to rejoin, or joined and not synced, is fenced
    /// if it has not done so by then (its rebalance timeout).
    pub classic_deadline: Option<i64>,
}

impl ConsumerMember {
    pub fn new(id: String, now: i64) -> ConsumerMember {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 300_000,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now,
            revocation_deadline: None,
            classic: None,
            classic_deadline: None,
        }
    }

    /// The earliest time the member may have to go.
    pub fn deadline(&self) -> i64 {
        [self.revocation_deadline, self.classic_deadline]
            .into_iter()
            .flatten()
            .fold(self.session_deadline, i64::min)
    }

    /// A static member that left with epoch -2 and keeps its place for a while.
    pub fn has_left_statically(&self) -> bool {
        self.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// Bumped by every change that calls for a new target assignment.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// The assignment each member converges on.
    pub target: BTreeMap<String, Assignment>,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    /// The topics the members subscribe to as they were when the target was
    /// computed: name → (id, partition count). A change calls for a new target.
    pub subscribed_topics: BTreeMap<String, (Uuid, i32)>,
    /// The assignor that computed the target.
    pub assignor: String,
    /// Loaded from the log: the hash of `subscribed_topics` when last
    /// written, so that a restart alone calls for no new target.
    pub loaded_metadata_hash: Option<i64>,
}

impl ConsumerGroup {
    /// A new group starts at epoch 1, so its first member joins at 2, as in
    /// Kafka 4.4 (KAFKA-20268).
    pub fn new() -> ConsumerGroup {
        ConsumerGroup {
            group_epoch: 1,
            ..ConsumerGroup::default()
        }
    }

    /// Kafka's ConsumerGroupState names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
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

    /// Who holds each partition now: assigned to a member, or still being revoked by it.
    pub fn owners(&self) -> HashMap<(Uuid, i32), &str> {
        let mut owners = HashMap::new();
        for m in self.members.values() {
            for (topic, parts) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in parts {
                    owners.insert((*topic, *p), m.id.as_str());
                }
            }
        }
        owners
    }

    /// Whether every member but `except` speaks the classic protocol.
    pub fn all_classic_except(&self, except: &str) -> bool {
        self.members.values().all(|m| m.id == except || m.classic.is_some())
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).is_some_and(|m| m == member_id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
        Some(member)
    }
}

/// Two assignments hold the same partitions (empty topics aside).
pub fn same_assignment(a: &Assignment, b: &Assignment) -> bool {
    let non_empty = |x: &Assignment| -> Vec<(Uuid, BTreeSet<i32>)> {
        x.iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(t, p)| (*t, p.clone()))
            .collect()
    };
    non_empty(a) == non_empty(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_epochs_and_members() {
        let mut g = ConsumerGroup::default();
        assert_eq!(g.state_name(), "Empty");
        g.members.insert("a".into(), ConsumerMember::new("a".into(), 0));
        g.group_epoch = 1;
        assert_eq!(g.state_name(), "Assigning");
        g.assignment_epoch = 1;
        assert_eq!(g.state_name(), "Reconciling");
        g.members.get_mut("a").unwrap().member_epoch = 1;
        assert_eq!(g.state_name(), "Stable");
    }
}
