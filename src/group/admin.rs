//! Group administration: DescribeGroups, ListGroups and DeleteGroups.

use super::classic_group::GroupState;
use super::consumer_group::ConsumerGroup;
use super::shard::{GroupRecord, GroupShard};
use crate::coordinator::CoordinatorResult;
use bytes::Bytes;
use kafka_protocol::ResponseError as E;

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
    /// Kafka's name of the state ("Stable", "Reconciling", ...).
    pub state: &'static str,
    /// "classic", "consumer", "share" or "streams".
    pub group_type: &'static str,
    pub members: usize,
}

impl GroupShard {
    /// A consumer group (KIP-848) as it is now; a classic group is not one.
    pub fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroup, (i16, String)> {
        match self.groups.get(group_id) {
            Some(g) => match &g.consumer {
                Some(cg) => Ok((**cg).clone()),
                // Offsets alone make a classic group too, in Kafka.
                None => Err((
                    E::GroupIdNotFound.code(),
                    format!("Group {group_id} is not a consumer group."),
                )),
            },
            None => Err((E::GroupIdNotFound.code(), format!("Group {group_id} not found."))),
        }
    }

    /// A classic group as DescribeGroups shows it; else Kafka's message why not.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, String> {
        let Some(g) = self.groups.get(group_id) else {
            return Err(format!("Group {group_id} not found."));
        };
        // A consumer (KIP-848), share or streams group is described by its own API.
        if g.consumer.is_some() || g.share.is_some() || g.streams.is_some() {
            return Err(format!("Group {group_id} is not a classic group."));
        }
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        Ok(GroupDescription {
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
            .map(|g| match (&g.consumer, &g.share) {
                _ if g.streams.is_some() => {
                    let sg = g.streams.as_deref();
                    ListedGroup {
                        group_id: g.id.clone(),
                        protocol_type: "streams".to_string(),
                        state: sg.map_or("Empty", |s| s.state_name()),
                        group_type: "streams",
                        members: sg.map_or(0, |s| s.members.len()),
                    }
                }
                (_, Some(sg)) => ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: "share".to_string(),
                    state: sg.state_name(),
                    group_type: "share",
                    members: sg.members.len(),
                },
                (Some(cg), None) => ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: cg.state_name(),
                    group_type: "consumer",
                    members: cg.members.len(),
                },
                (None, None) => ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.name(),
                    group_type: "classic",
                    members: g.members.len(),
                },
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups for one group: it must exist and be empty. Its offsets
    /// and its membership are tombstoned.
    pub fn delete_group(&mut self, group_id: &str) -> CoordinatorResult<i16, GroupRecord> {
        if group_id.is_empty() {
            return CoordinatorResult::answer(E::InvalidGroupId.code());
        }
        let Some(group) = self.groups.get(group_id) else {
            return CoordinatorResult::answer(E::GroupIdNotFound.code());
        };
        if group.state != GroupState::Empty || !group.members.is_empty() || group.has_protocol_members() {
            return CoordinatorResult::answer(E::NonEmptyGroup.code());
        }
        let mut records: Vec<GroupRecord> = group
            .offsets
            .keys()
            .map(|(topic, partition)| GroupRecord::offset(group_id, topic, *partition, None))
            .collect();
        if group.share.is_some() {
            records.push(GroupRecord::share_group(group_id, None));
        }
        if let Some(cg) = &group.consumer {
            records.extend(super::consumer_records::group_tombstones(group_id, cg));
        }
        if let Some(sg) = &group.streams {
            records.extend(super::streams_changes::group_tombstones(group_id, sg));
        }
        records.push(GroupRecord::group_tombstone(group_id));
        CoordinatorResult::replayed(records, 0)
    }
}
