//! Group administration: DescribeGroups, ListGroups and DeleteGroups.

use super::classic_group::GroupState;
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
    pub state: GroupState,
}

impl GroupShard {
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

    /// DeleteGroups for one group: it must exist and be empty. Its offsets
    /// and its membership are tombstoned.
    pub fn delete_group(&mut self, group_id: &str) -> CoordinatorResult<i16, GroupRecord> {
        if group_id.is_empty() {
            return CoordinatorResult::answer(E::InvalidGroupId.code());
        }
        let Some(group) = self.groups.get(group_id) else {
            return CoordinatorResult::answer(E::GroupIdNotFound.code());
        };
        if group.state != GroupState::Empty || !group.members.is_empty() {
            return CoordinatorResult::answer(E::NonEmptyGroup.code());
        }
        let mut records: Vec<GroupRecord> = group
            .offsets
            .keys()
            .map(|(topic, partition)| GroupRecord::offset(group_id, topic, *partition, None))
            .collect();
        records.push(GroupRecord::group_tombstone(group_id));
        CoordinatorResult::replayed(records, 0)
    }
}
