//! StreamsGroupHeartbeat (KIP-1071): Kafka Streams clients joining,
//! heartbeating and leaving a streams group. Kafka's
//! GroupMetadataManager.streamsGroupHeartbeat: the member is created or
//! updated, the first member's topology becomes the group's, the topology
//! is configured against the topics there are (internal topics to create),
//! a new target assignment is computed when the group epoch moved, and the
//! member reconciles towards it: it revokes active tasks before it moves to
//! the new epoch and takes a task only once its previous owner let it go.

use super::classic_group::{Group, GroupState};
use super::consumer_heartbeat::TopicView;
use super::shard::{GroupRecord, GroupShard};
use super::streams_changes::{changes, Before};
use super::streams_group::{status, StreamsGroup, StreamsMember, Tasks, TopicInfo, Topology};
use super::streams_reconcile::{compute_target, endpoint_partitions, reconcile};
use super::streams_records::topics_hash;
use super::streams_topology::{configure, topics_of};
use crate::coordinator::CoordinatorResult;
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;

pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// A group's streams settings: its group configs over the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamsSettings {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub num_standby_replicas: i32,
    pub initial_rebalance_delay_ms: i64,
    pub task_offset_interval_ms: i32,
}

impl Default for StreamsSettings {
    fn default() -> Self {
        StreamsSettings {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5000,
            num_standby_replicas: 0,
            initial_rebalance_delay_ms: 3000,
            task_offset_interval_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StreamsHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub endpoint_information_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topology: Option<Topology>,
    /// What the member holds (None: unchanged since its last heartbeat).
    pub active: Option<Tasks>,
    pub standby: Option<Tasks>,
    pub warmup: Option<Tasks>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: Option<BTreeMap<String, String>>,
    pub shutdown_application: bool,
    pub client_id: String,
    pub client_host: String,
    pub settings: StreamsSettings,
}

/// The tasks of a member as the response carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignedTasks {
    pub active: Tasks,
    pub standby: Tasks,
    pub warmup: Tasks,
}

/// Which source partitions a user endpoint serves (interactive queries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPartitions {
    pub endpoint: (String, u16),
    pub active: BTreeMap<String, Vec<i32>>,
    pub standby: BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsAnswer {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub task_offset_interval_ms: i32,
    pub status: Vec<(i8, String)>,
    /// Sent when they changed, or when the member joins.
    pub tasks: Option<AssignedTasks>,
    pub endpoint_information_epoch: i32,
    pub partitions_by_endpoint: Option<Vec<EndpointPartitions>>,
    /// Internal topics the coordinator asks to be created.
    pub topics_to_create: Vec<TopicInfo>,
}

impl StreamsAnswer {
    pub fn error(code: i16, message: impl Into<String>) -> StreamsAnswer {
        StreamsAnswer {
            error_code: code,
            error_message: Some(message.into()),
            ..StreamsAnswer::default()
        }
    }
}

type Failure = (i16, String);

/// Kafka's checks of a heartbeat that do not need the group
/// (GroupCoordinatorService.throwIfStreamsGroupHeartbeatRequestIsInvalid).
pub fn validate(req: &StreamsHeartbeat) -> Result<(), Failure> {
    let invalid = |m: &str| Err((E::InvalidRequest.code(), m.to_string()));
    if req.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if req.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    let held = |t: &Option<Tasks>| t.as_ref().is_some_and(|t| t.values().any(|p| !p.is_empty()));
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if held(&req.active) {
                return invalid("ActiveTasks must be empty when (re-)joining.");
            }
            if held(&req.standby) {
                return invalid("StandbyTasks must be empty when (re-)joining.");
            }
            if held(&req.warmup) {
                return invalid("WarmupTasks must be empty when (re-)joining.");
            }
            let Some(topology) = &req.topology else {
                return invalid("Topology must be non-null when (re-)joining.");
            };
            for s in &topology.subtopologies {
                if let Some(c) = s.changelog_topics.iter().find(|c| c.partitions != 0) {
                    return Err((
                        E::StreamsInvalidTopology.code(),
                        format!(
                            "Changelog topic {} must have an undefined partition count, but it is set to {}.",
                            c.name, c.partitions
                        ),
                    ));
                }
            }
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if req.instance_id.is_none() => return invalid("InstanceId can't be null."),
        e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            return invalid(&format!("MemberEpoch is {e}, but must be greater than or equal to -2."))
        }
        _ => {}
    }
    let given = [&req.active, &req.standby, &req.warmup]
        .iter()
        .filter(|t| t.is_some())
        .count();
    if given != 0 && given != 3 {
        return invalid("If one task-type is non-null, all must be non-null.");
    }
    if req.member_epoch != 0 && req.topology.is_some() {
        return invalid("Topology can only be provided when (re-)joining.");
    }
    Ok(())
}

impl GroupShard {
    pub fn streams_heartbeat(
        &mut self,
        req: StreamsHeartbeat,
        topics: &TopicView,
        now: i64,
    ) -> CoordinatorResult<StreamsAnswer, GroupRecord> {
        if let Err((code, message)) = validate(&req) {
            return CoordinatorResult::answer(StreamsAnswer::error(code, message));
        }
        // What the group was, to write what this heartbeat changes.
        let group_id = req.group_id.clone();
        let before = self
            .groups
            .get(&group_id)
            .and_then(|g| g.streams.as_deref())
            .map_or_else(Before::none, |sg| Before::of(sg, Some(&req.member_id)));
        let answer = self.streams_heartbeat_unrecorded(req, topics, now);
        let records = match self.groups.get(&group_id).and_then(|g| g.streams.as_deref()) {
            Some(sg) => changes(&group_id, &before, sg),
            None => Vec::new(),
        };
        CoordinatorResult::persisted(records, answer)
    }

    fn streams_heartbeat_unrecorded(&mut self, req: StreamsHeartbeat, topics: &TopicView, now: i64) -> StreamsAnswer {
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return self.streams_leave(&req);
        }
        let group = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            None if req.member_epoch != 0 => {
                let message = format!("Streams group {} not found.", req.group_id);
                return StreamsAnswer::error(E::GroupIdNotFound.code(), message);
            }
            None => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now)),
        };
        if group.streams.is_none() {
            if !is_empty_classic(group) {
                let message = format!("Group {} is not a streams group.", req.group_id);
                return StreamsAnswer::error(E::GroupIdNotFound.code(), message);
            }
            // An empty classic group (or offsets alone) becomes a streams group.
            group.protocol_type = None;
            let mut sg = StreamsGroup::new();
            if req.settings.initial_rebalance_delay_ms > 0 {
                sg.assignment_not_before = Some(now + req.settings.initial_rebalance_delay_ms);
            }
            group.streams = Some(Box::new(sg));
        }
        let Some(sg) = group.streams.as_deref_mut() else {
            return StreamsAnswer::error(E::UnknownServerError.code(), "");
        };
        heartbeat(sg, &req, topics, now).unwrap_or_else(|(code, message)| StreamsAnswer::error(code, message))
    }

    fn streams_leave(&mut self, req: &StreamsHeartbeat) -> StreamsAnswer {
        let Some(sg) = self
            .groups
            .get_mut(&req.group_id)
            .and_then(|g| g.streams.as_deref_mut())
        else {
            return StreamsAnswer::error(
                E::GroupIdNotFound.code(),
                format!("Streams group {} not found.", req.group_id),
            );
        };
        if sg.remove_member(&req.member_id).is_none() {
            return StreamsAnswer::error(
                E::UnknownMemberId.code(),
                format!("Member {} is not a member of group {}.", req.member_id, req.group_id),
            );
        }
        StreamsAnswer {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            ..StreamsAnswer::default()
        }
    }

    /// Sessions and revocation deadlines of streams group members: the
    /// records of the members removed.
    pub(super) fn expire_streams_members(&mut self, now: i64) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        for group in self.groups.values_mut() {
            let Some(sg) = group.streams.as_deref_mut() else {
                continue;
            };
            let before = Before::of(sg, None);
            let expired: Vec<String> = sg
                .members
                .values()
                .filter(|m| m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now))
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %group.id, member = %id, "streams group member timed out; removing it");
                sg.remove_member(&id);
            }
            records.extend(changes(&group.id, &before, sg));
        }
        records
    }

    pub(super) fn next_streams_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(|g| g.streams.as_deref())
            .flat_map(|sg| sg.members.values())
            .map(|m| {
                m.revocation_deadline
                    .map_or(m.session_deadline, |d| d.min(m.session_deadline))
            })
            .min()
    }
}

fn is_empty_classic(group: &Group) -> bool {
    group.members.is_empty()
        && group.state == GroupState::Empty
        && group.share.is_none()
        && group.consumer.as_ref().is_none_or(|c| c.members.is_empty())
}

fn heartbeat(
    sg: &mut StreamsGroup,
    req: &StreamsHeartbeat,
    topics: &TopicView,
    now: i64,
) -> Result<StreamsAnswer, Failure> {
    let joining = req.member_epoch == 0;
    let settings = req.settings;
    let before = match sg.members.get(&req.member_id) {
        Some(m) if !joining => {
            check_epoch(m, req)?;
            Some(m.clone())
        }
        Some(_) => {
            // Back after being fenced, or restarted: it starts over.
            sg.remove_member(&req.member_id);
            None
        }
        None if joining => None,
        None => {
            return Err((
                E::UnknownMemberId.code(),
                format!("Member {} is not a member of group {}.", req.member_id, req.group_id),
            ))
        }
    };
    let mut member = before
        .clone()
        .unwrap_or_else(|| StreamsMember::new(req.member_id.clone(), now));
    let mut bump = before.is_none();
    member.session_deadline = now + settings.session_timeout_ms as i64;
    if req.rebalance_timeout_ms > 0 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    if let Some(t) = &req.topology {
        member.topology_epoch = t.epoch;
    }
    let mut changed = |field_changed: bool| bump |= field_changed;
    if let Some(rack) = &req.rack_id {
        changed(member.rack_id.as_ref() != Some(rack));
        member.rack_id = Some(rack.clone());
    }
    if let Some(process) = &req.process_id {
        changed(member.process_id != *process);
        member.process_id = process.clone();
    }
    if let Some(tags) = &req.client_tags {
        changed(member.client_tags != *tags);
        member.client_tags = tags.clone();
    }
    if req.user_endpoint.is_some() {
        changed(member.user_endpoint != req.user_endpoint);
        member.user_endpoint = req.user_endpoint.clone();
    }
    sg.members.insert(member.id.clone(), member);

    // The first topology sent becomes the group's; a newer one replaces it.
    if let Some(t) = &req.topology {
        if sg.topology.as_ref().is_none_or(|g| t.epoch > g.epoch) {
            sg.topology = Some(t.clone());
            sg.topic_counts.clear();
            bump = true;
        }
    }
    let mut status = Vec::new();
    let mut topics_to_create = Vec::new();
    if let Some(topology) = &sg.topology {
        let counts: BTreeMap<String, i32> = topics_of(topology)
            .into_iter()
            .filter_map(|name| topics.topics.get(&name).map(|(_, n)| (name, *n)))
            .collect();
        if counts != sg.topic_counts || sg.configured == Default::default() {
            // A group just loaded, its topics as they were: nothing to reassign.
            let reloaded = sg.topic_counts.is_empty() && sg.loaded_topics_hash.take() == Some(topics_hash(&counts));
            let was_ready = sg.configured.is_ready();
            sg.configured = configure(topology, &counts);
            bump |= !reloaded && (counts != sg.topic_counts || was_ready != sg.configured.is_ready());
            sg.topic_counts = counts;
        }
        topics_to_create = sg.configured.missing_internal.clone();
        if let Some(s) = &sg.configured.status {
            status.push(s.clone());
        }
        let member_epoch = sg.members[&req.member_id].topology_epoch;
        if member_epoch < topology.epoch {
            status.insert(
                0,
                (
                    status::STALE_TOPOLOGY,
                    format!(
                        "The member's topology epoch {member_epoch} is behind the group's topology epoch {}.",
                        topology.epoch
                    ),
                ),
            );
        }
    }
    // A new group's first assignment waits a while for more members to come
    // (streams.initial.rebalance.delay.ms): until then, members get no tasks.
    let delayed = match sg.assignment_not_before {
        Some(until) if now < until => true,
        Some(_) => {
            sg.assignment_not_before = None;
            bump = true;
            false
        }
        None => false,
    };
    if bump {
        sg.group_epoch += 1;
    }
    if delayed {
        status.insert(
            0,
            (
                status::ASSIGNMENT_DELAYED,
                "Assignment delayed due to the configured initial rebalance delay.".to_string(),
            ),
        );
    }
    if sg.group_epoch > sg.assignment_epoch {
        compute_target(sg, settings, delayed);
    }
    reconcile(sg, &req.member_id, req.active.as_ref(), now);
    if req.shutdown_application {
        sg.shutdown_requested_by = Some(req.member_id.clone());
    }
    if let Some(by) = &sg.shutdown_requested_by {
        status.push((
            status::SHUTDOWN_APPLICATION,
            format!("Streams group member {by} encountered a fatal error and requested a shutdown for the entire application."),
        ));
    }

    let member = &sg.members[&req.member_id];
    let tasks_changed = before
        .as_ref()
        .is_none_or(|b| b.active != member.active || b.standby != member.standby);
    let tasks = (joining || tasks_changed).then(|| AssignedTasks {
        active: member.active.clone(),
        standby: member.standby.clone(),
        warmup: Tasks::new(),
    });
    if tasks.is_some() && member.user_endpoint.is_some() {
        sg.endpoint_information_epoch += 1;
    }
    let partitions_by_endpoint =
        (sg.endpoint_information_epoch != req.endpoint_information_epoch).then(|| endpoint_partitions(sg));
    let member = &sg.members[&req.member_id];
    Ok(StreamsAnswer {
        error_code: 0,
        error_message: None,
        member_id: member.id.clone(),
        member_epoch: member.member_epoch,
        heartbeat_interval_ms: settings.heartbeat_interval_ms,
        task_offset_interval_ms: settings.task_offset_interval_ms,
        status,
        tasks,
        endpoint_information_epoch: sg.endpoint_information_epoch,
        partitions_by_endpoint,
        topics_to_create,
    })
}

/// Kafka's epoch check: a member ahead of the group is fenced; one behind
/// may only be repeating its previous epoch with tasks it was given.
fn check_epoch(m: &StreamsMember, req: &StreamsHeartbeat) -> Result<(), Failure> {
    let fenced = || {
        Err((
            E::FencedMemberEpoch.code(),
            format!(
                "The streams group member has a greater member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                req.member_epoch, m.member_epoch
            ),
        ))
    };
    if req.member_epoch > m.member_epoch {
        return fenced();
    }
    if req.member_epoch < m.member_epoch {
        let subset = |owned: &Option<Tasks>| {
            owned.as_ref().is_some_and(|o| {
                o.iter()
                    .all(|(sub, ps)| ps.is_empty() || m.active.get(sub).is_some_and(|a| ps.is_subset(a)))
            })
        };
        if req.member_epoch != m.previous_member_epoch || !subset(&req.active) {
            return Err((
                E::FencedMemberEpoch.code(),
                format!(
                    "The streams group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    req.member_epoch, m.member_epoch
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/streams_heartbeat.rs"]
mod tests;
