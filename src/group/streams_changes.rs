//! The records of what changed in a streams group, written after each
//! operation, and their replay when a coordinator loads the group: so a
//! group's topology, members, epochs and tasks survive a coordinator restart
//! or move. The layouts are in `streams_records`.

use super::member_snapshots::MemberSnapshots;
use super::records::{RecordKey, RecordValue};
use super::shard::GroupRecord;
use super::streams_group::{MemberState, StreamsGroup, StreamsMember};
use super::streams_records::*;

fn record(kind: i16, group: &str, member: Option<&str>, value: Option<StreamsValue>) -> GroupRecord {
    GroupRecord {
        key: RecordKey::Streams {
            kind,
            group: group.to_string(),
            member: member.map(str::to_string),
        },
        value: value.map(RecordValue::Streams),
    }
}

/// What a group looked like before an operation, to write what it changed.
pub struct Before {
    group_epoch: i32,
    assignment_epoch: i32,
    topology_epoch: Option<i32>,
    members: MemberSnapshots<MemberMetadata, CurrentAssignment>,
}

impl Before {
    /// Copies the `watched` member's state (see MemberSnapshots).
    pub fn of(sg: &StreamsGroup, watched: Option<&str>) -> Before {
        Before {
            group_epoch: sg.group_epoch,
            assignment_epoch: sg.assignment_epoch,
            topology_epoch: sg.topology.as_ref().map(|t| t.epoch),
            members: MemberSnapshots::of(sg.members.iter(), watched, |m| {
                (MemberMetadata::of(m), CurrentAssignment::of(m))
            }),
        }
    }

    /// A group that did not exist yet.
    pub fn none() -> Before {
        Before {
            group_epoch: 0,
            assignment_epoch: 0,
            topology_epoch: None,
            members: MemberSnapshots::none(),
        }
    }
}

/// The records of what changed in `sg` since `before`, in Kafka's order:
/// members gone (tombstones), member metadata, the topology, the group
/// epoch, a new target, and the members' current assignments.
pub fn changes(group: &str, before: &Before, sg: &StreamsGroup) -> Vec<GroupRecord> {
    let mut out = Vec::new();
    let members = before
        .members
        .changes(&sg.members, |m| (MemberMetadata::of(m), CurrentAssignment::of(m)));
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
            Some(StreamsValue::Member(metadata)),
        ));
    }
    if let Some(t) = &sg.topology {
        if before.topology_epoch != Some(t.epoch) {
            out.push(record(TOPOLOGY, group, None, Some(StreamsValue::Topology(t.clone()))));
        }
    }
    if sg.group_epoch != before.group_epoch {
        let value = StreamsValue::Group {
            epoch: sg.group_epoch,
            metadata_hash: topics_hash(&sg.topic_counts),
        };
        out.push(record(GROUP_METADATA, group, None, Some(value)));
    }
    if sg.assignment_epoch != before.assignment_epoch {
        for (id, active) in &sg.target {
            let standby = sg.target_standby.get(id).cloned().unwrap_or_default();
            let value = StreamsValue::Target {
                active: active.clone(),
                standby,
            };
            out.push(record(TARGET_MEMBER, group, Some(id), Some(value)));
        }
        out.push(record(
            TARGET_METADATA,
            group,
            None,
            Some(StreamsValue::AssignmentEpoch(sg.assignment_epoch)),
        ));
    }
    for (id, current) in members.current {
        out.push(record(
            CURRENT_ASSIGNMENT,
            group,
            Some(id),
            Some(StreamsValue::Current(current)),
        ));
    }
    out
}

/// The tombstones of a streams group that is deleted.
pub fn group_tombstones(group: &str, sg: &StreamsGroup) -> Vec<GroupRecord> {
    let mut out = changes(group, &Before::of(sg, None), &StreamsGroup::new());
    out.retain(|r| r.value.is_none());
    out.push(record(TARGET_METADATA, group, None, None));
    out.push(record(TOPOLOGY, group, None, None));
    out.push(record(GROUP_METADATA, group, None, None));
    out
}

/// Replays one record into the group's state. Members come back with a
/// new session (`session_deadline`); a tombstone of the group record is
/// handled by the caller, which drops the group.
pub fn replay(
    sg: &mut StreamsGroup,
    kind: i16,
    member: Option<&str>,
    value: Option<&StreamsValue>,
    session_deadline: i64,
) {
    match (value, member) {
        (Some(StreamsValue::Group { epoch, metadata_hash }), _) => {
            sg.group_epoch = *epoch;
            sg.loaded_topics_hash = Some(*metadata_hash);
        }
        (Some(StreamsValue::AssignmentEpoch(e)), _) => sg.assignment_epoch = *e,
        (Some(StreamsValue::Topology(t)), _) => sg.topology = Some(t.clone()),
        (None, None) if kind == TOPOLOGY => sg.topology = None,
        (Some(StreamsValue::Member(v)), Some(id)) => {
            let m = member_entry(sg, id, session_deadline);
            m.instance_id = v.instance_id.clone();
            m.rack_id = v.rack_id.clone();
            m.client_id = v.client_id.clone();
            m.client_host = v.client_host.clone();
            m.rebalance_timeout_ms = v.rebalance_timeout_ms;
            m.topology_epoch = v.topology_epoch;
            m.process_id = v.process_id.clone();
            m.user_endpoint = v.user_endpoint.clone();
            m.client_tags = v.client_tags.clone();
        }
        (Some(StreamsValue::Target { active, standby }), Some(id)) => {
            sg.target.insert(id.to_string(), active.clone());
            sg.target_standby.insert(id.to_string(), standby.clone());
        }
        (Some(StreamsValue::Current(c)), Some(id)) => {
            let m = member_entry(sg, id, session_deadline);
            m.member_epoch = c.member_epoch;
            m.previous_member_epoch = c.previous_member_epoch;
            m.state = c.state;
            m.active = c.active.clone();
            m.standby = c.standby.clone();
            m.pending_revocation = c.active_pending_revocation.clone();
            m.revocation_deadline = (m.state == MemberState::UnrevokedTasks).then_some(session_deadline);
        }
        (None, Some(id)) if kind == MEMBER_METADATA => {
            sg.members.remove(id);
        }
        (None, Some(id)) if kind == TARGET_MEMBER => {
            sg.target.remove(id);
            sg.target_standby.remove(id);
        }
        _ => {}
    }
}

fn member_entry<'a>(sg: &'a mut StreamsGroup, id: &str, session_deadline: i64) -> &'a mut StreamsMember {
    sg.members
        .entry(id.to_string())
        .or_insert_with(|| StreamsMember::new(id.to_string(), session_deadline))
}
