//! How a streams group's members reach their tasks: the target computed
//! for the group, each member's way to it (active tasks revoked before the
//! member moves to the new epoch, taken once their owner let go), and the
//! source partitions each user endpoint serves.

use super::consumer_reconcile::{step, Step};
use super::streams_assignor::{assign_active, assign_standby};
use super::streams_group::{MemberState, StreamsGroup, Tasks};
use super::streams_heartbeat::{EndpointPartitions, StreamsSettings};
use std::collections::BTreeMap;

/// A new target for the group's members and tasks (none before the
/// topology is ready, or while the first assignment is `delayed`).
pub(super) fn compute_target(sg: &mut StreamsGroup, settings: StreamsSettings, delayed: bool) {
    let tasks = sg
        .configured
        .tasks
        .clone()
        .filter(|_| sg.configured.is_ready() && !delayed)
        .unwrap_or_default();
    let members: Vec<(&str, &str)> = sg
        .members
        .values()
        .map(|m| (m.id.as_str(), m.process_id.as_str()))
        .collect();
    let active = assign_active(&members, &tasks, &sg.target);
    let standby = assign_standby(&members, &tasks, &active, settings.num_standby_replicas.max(0) as usize);
    sg.target = active;
    sg.target_standby = standby;
    sg.assignment_epoch = sg.group_epoch;
}

/// Moves one member towards its target: active tasks are revoked before
/// the member moves to the new epoch, and taken once their owner let go.
pub(super) fn reconcile(sg: &mut StreamsGroup, member_id: &str, owned: Option<&Tasks>, now: i64) {
    let target_epoch = sg.assignment_epoch;
    let target = sg.target.get(member_id).cloned().unwrap_or_default();
    let standby = sg.target_standby.get(member_id).cloned().unwrap_or_default();
    let owners: BTreeMap<(String, i32), String> = sg
        .active_owners()
        .into_iter()
        .filter(|(_, owner)| owner != member_id)
        .collect();
    let Some(m) = sg.members.get_mut(member_id) else { return };
    let go_on = match m.state {
        MemberState::Stable => m.member_epoch != target_epoch,
        MemberState::UnrevokedTasks => {
            let still_owned = owned.is_none_or(|o| {
                m.pending_revocation
                    .iter()
                    .any(|(s, ps)| o.get(s).is_some_and(|op| ps.iter().any(|p| op.contains(p))))
            });
            if !still_owned {
                m.pending_revocation.clear();
                m.revocation_deadline = None;
            }
            !still_owned
        }
        MemberState::UnreleasedTasks => true,
    };
    if !go_on {
        return;
    }
    let Step {
        mut keep,
        revoke,
        add,
        unreleased,
    } = step(&m.active, &target, owned, |s, p| owners.contains_key(&(s.clone(), p)));
    if !revoke.is_empty() {
        m.active = keep;
        m.pending_revocation = revoke;
        m.state = MemberState::UnrevokedTasks;
        m.revocation_deadline = Some(now + m.rebalance_timeout_ms as i64);
        return;
    }
    for (s, ps) in add {
        keep.entry(s).or_default().extend(ps);
    }
    m.active = keep;
    m.standby = standby;
    if m.member_epoch != target_epoch {
        m.previous_member_epoch = m.member_epoch;
        m.member_epoch = target_epoch;
    }
    m.state = if unreleased {
        MemberState::UnreleasedTasks
    } else {
        MemberState::Stable
    };
}

/// The source partitions each member's tasks read, by user endpoint.
pub(super) fn endpoint_partitions(sg: &StreamsGroup) -> Vec<EndpointPartitions> {
    let Some(topology) = &sg.topology else {
        return Vec::new();
    };
    let partitions_of = |tasks: &Tasks| {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (sub, ps) in tasks {
            let Some(s) = topology.subtopologies.iter().find(|s| s.id == *sub) else {
                continue;
            };
            let sources = s
                .source_topics
                .iter()
                .chain(s.repartition_source_topics.iter().map(|r| &r.name));
            for topic in sources {
                let count = sg.topic_counts.get(topic).copied().unwrap_or(0);
                out.entry(topic.clone())
                    .or_default()
                    .extend(ps.iter().copied().filter(|p| *p < count));
            }
        }
        out
    };
    sg.members
        .values()
        .filter_map(|m| {
            Some(EndpointPartitions {
                endpoint: m.user_endpoint.clone()?,
                active: partitions_of(&m.active),
                standby: partitions_of(&m.standby),
            })
        })
        .collect()
}
