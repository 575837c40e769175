//! ConsumerGroupHeartbeat (KIP-848): joining, heartbeating and leaving a
//! consumer group, the target assignment and each member's way to it.
//! Kafka's GroupMetadataManager.consumerGroupHeartbeat and
//! CurrentAssignmentBuilder: a member gives up revoked partitions before it
//! moves to the new epoch, and takes a partition only once its previous
//! owner has let it go.

use super::classic_group::{Group, GroupState};
use super::consumer_group::{
    same_assignment, Assignment, ConsumerGroup, ConsumerMember, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use super::consumer_reconcile::reconcile;
use super::consumer_records::{changes, metadata_hash, Before};
use super::consumer_target::{compute_target, subscribed_topics};
use super::migration;
use super::shard::{GroupRecord, GroupShard};
use crate::coordinator::CoordinatorResult;
use kafka_protocol::ResponseError as E;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The topics a group may subscribe to: name → (id, partition count), and
/// which of them are internal (regexes never match those).
#[derive(Debug, Clone, Default)]
pub struct TopicView {
    pub topics: BTreeMap<String, (Uuid, i32)>,
    pub internal: BTreeSet<String>,
}

impl TopicView {
    pub fn name_of(&self, id: Uuid) -> Option<&str> {
        self.topics.iter().find(|(_, (i, _))| *i == id).map(|(n, _)| n.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns (None: unchanged since the last heartbeat).
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    pub version: i16,
    /// The group's own configs (kafka-configs --entity-type groups), over the broker's.
    pub overrides: GroupOverrides,
}

/// A group's `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupOverrides {
    pub session_timeout_ms: Option<i32>,
    pub heartbeat_interval_ms: Option<i32>,
}

impl GroupOverrides {
    /// The overrides of a group's configs as stored.
    pub fn from_configs(configs: &std::collections::BTreeMap<String, String>) -> GroupOverrides {
        let int = |key: &str| configs.get(key).and_then(|v| v.trim().parse().ok());
        GroupOverrides {
            session_timeout_ms: int("consumer.session.timeout.ms"),
            heartbeat_interval_ms: int("consumer.heartbeat.interval.ms"),
        }
    }

    fn apply(&self, config: &super::shard::GroupConfig) -> super::shard::GroupConfig {
        let mut c = config.clone();
        if let Some(v) = self.session_timeout_ms {
            c.consumer_session_timeout_ms = v;
        }
        if let Some(v) = self.heartbeat_interval_ms {
            c.consumer_heartbeat_interval_ms = v;
        }
        c
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatAnswer {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the member's assignment changed or it has to be told again.
    pub assignment: Option<Assignment>,
}

impl HeartbeatAnswer {
    fn error(code: i16, message: impl Into<String>) -> HeartbeatAnswer {
        HeartbeatAnswer {
            error_code: code,
            error_message: Some(message.into()),
            // As Kafka: an error names no member and no epoch.
            member_id: String::new(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

type Answer = CoordinatorResult<HeartbeatAnswer, GroupRecord>;

/// Kafka's checks of a heartbeat that do not need the group.
fn validate(req: &ConsumerHeartbeat, assignors: &[String]) -> Result<(), (i16, String)> {
    let invalid = |m: &str| Err((E::InvalidRequest.code(), m.to_string()));
    if req.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.member_id.is_empty() && (req.version >= 1 || req.member_epoch > 0) {
        return invalid("MemberId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if req.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if req.owned.as_ref().is_none_or(|o| o.values().any(|p| !p.is_empty())) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
                );
            }
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if req.instance_id.is_none() => {
            return invalid("InstanceId can't be null.");
        }
        e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if let Some(a) = &req.server_assignor {
        if !assignors.iter().any(|k| k == a) {
            return Err((
                E::UnsupportedAssignor.code(),
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    assignors.join(", ")
                ),
            ));
        }
    }
    if let Some(regex) = &req.subscribed_topic_regex {
        if let Err(e) = compile_regex(regex) {
            return Err((
                E::InvalidRegularExpression.code(),
                format!("SubscribedTopicRegex `{regex}` is not a valid regular expression: {e}."),
            ));
        }
    }
    Ok(())
}

/// A subscription regex matches whole topic names, as Java's `matches`.
pub(super) fn compile_regex(regex: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{regex})$"))
}

impl GroupShard {
    pub fn consumer_heartbeat(&mut self, req: ConsumerHeartbeat, topics: &TopicView, now: i64) -> Answer {
        if let Err((code, message)) = validate(&req, &self.config.consumer_assignors) {
            return CoordinatorResult::answer(HeartbeatAnswer::error(code, message));
        }
        // What the group was, to write what this heartbeat changes.
        let before = self
            .groups
            .get(&req.group_id)
            .and_then(|g| g.consumer.as_deref())
            .map_or_else(Before::none, |cg| Before::of(cg, Some(&req.member_id)));
        let group_id = req.group_id.clone();
        // A group changing protocol writes its old form's end first.
        let mut records = Vec::new();
        let answer = self.consumer_heartbeat_unrecorded(req, topics, now, &mut records);
        if let Some(cg) = self.groups.get(&group_id).and_then(|g| g.consumer.as_deref()) {
            records.extend(changes(&group_id, &before, cg));
        }
        CoordinatorResult::persisted(records, answer)
    }

    fn consumer_heartbeat_unrecorded(
        &mut self,
        req: ConsumerHeartbeat,
        topics: &TopicView,
        now: i64,
        out: &mut Vec<GroupRecord>,
    ) -> HeartbeatAnswer {
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return self.consumer_leave(&req, topics, now, out);
        }
        let config = req.overrides.apply(&self.config);
        let group = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            None if req.member_epoch != 0 => {
                let message = format!("Group {} not found.", req.group_id);
                return HeartbeatAnswer::error(E::GroupIdNotFound.code(), message);
            }
            None => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now)),
        };
        if group.consumer.is_none() {
            if !group.members.is_empty() || group.state != GroupState::Empty {
                // A classic group with members moves to this protocol, if it may.
                if let Err(message) = migration::upgrade(group, topics, &self.config, now, out) {
                    return HeartbeatAnswer::error(E::GroupIdNotFound.code(), message);
                }
            } else if group.share.is_some() || group.streams.is_some() {
                let message = format!("Group {} is not a consumer group.", req.group_id);
                return HeartbeatAnswer::error(E::GroupIdNotFound.code(), message);
            } else {
                // An empty classic group (or offsets alone) becomes a consumer group.
                group.protocol_type = None;
                group.consumer = Some(Box::new(ConsumerGroup::new()));
            }
        }
        let Some(cg) = group.consumer.as_deref_mut() else {
            return HeartbeatAnswer::error(E::UnknownServerError.code(), "");
        };
        match heartbeat(cg, &req, topics, &config, now) {
            Ok(a) => a,
            Err((code, message)) => HeartbeatAnswer::error(code, message),
        }
    }

    /// A member leaving (epoch -1), or a static member leaving for now (-2).
    fn consumer_leave(
        &mut self,
        req: &ConsumerHeartbeat,
        topics: &TopicView,
        now: i64,
        out: &mut Vec<GroupRecord>,
    ) -> HeartbeatAnswer {
        let session = req.overrides.apply(&self.config).consumer_session_timeout_ms as i64;
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            let message = format!("Group {} not found.", req.group_id);
            return HeartbeatAnswer::error(E::GroupIdNotFound.code(), message);
        };
        let Some(cg) = group.consumer.as_deref_mut() else {
            let message = format!("Group {} not found.", req.group_id);
            return HeartbeatAnswer::error(E::GroupIdNotFound.code(), message);
        };
        let member_id = match &req.instance_id {
            Some(instance) => match cg.static_members.get(instance) {
                Some(id) if *id == req.member_id => id.clone(),
                Some(_) => {
                    let message = format!("Static member {} with instance id {instance} is fenced.", req.member_id);
                    return HeartbeatAnswer::error(E::FencedInstanceId.code(), message);
                }
                None => {
                    let message = format!("Instance id {instance} is unknown.");
                    return HeartbeatAnswer::error(E::UnknownMemberId.code(), message);
                }
            },
            None => req.member_id.clone(),
        };
        if !cg.members.contains_key(&member_id) {
            let message = format!("Member {member_id} is not a member of group {}.", req.group_id);
            return HeartbeatAnswer::error(E::UnknownMemberId.code(), message);
        }
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // The static member keeps its partitions until it returns or its session ends.
            if let Some(m) = cg.members.get_mut(&member_id) {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                m.session_deadline = now + session;
            }
        } else if !migration::maybe_downgrade(group, &member_id, topics, &self.config, now, out) {
            if let Some(cg) = group.consumer.as_deref_mut() {
                cg.remove_member(&member_id);
            }
        }
        HeartbeatAnswer {
            error_code: 0,
            error_message: None,
            member_id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// Sessions and revocation deadlines of consumer group members: the
    /// records of the members removed.
    pub(super) fn expire_consumer_members(&mut self, now: i64) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        for group in self.groups.values_mut() {
            let Some(cg) = group.consumer.as_deref_mut() else {
                continue;
            };
            let before = Before::of(cg, None);
            let expired: Vec<String> = cg
                .members
                .values()
                .filter(|m| m.deadline() <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %group.id, member = %id, "consumer group member timed out; removing it");
                // The topics the group knows name the partitions of its classic members.
                let Some(topics) = group.consumer.as_deref().map(|cg| TopicView {
                    topics: cg.subscribed_topics.clone(),
                    internal: BTreeSet::new(),
                }) else {
                    break;
                };
                if migration::maybe_downgrade(group, &id, &topics, &self.config, now, &mut records) {
                    break;
                }
                if let Some(cg) = group.consumer.as_deref_mut() {
                    cg.remove_member(&id);
                }
            }
            let Some(cg) = group.consumer.as_deref() else {
                continue;
            };
            if cg.members.is_empty() && group.state_since < now {
                group.state_since = now;
            }
            records.extend(changes(&group.id, &before, cg));
        }
        records
    }

    pub(super) fn next_consumer_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(|g| g.consumer.as_deref())
            .flat_map(|cg| cg.members.values())
            .map(ConsumerMember::deadline)
            .min()
    }
}

type HeartbeatResult = Result<HeartbeatAnswer, (i16, String)>;

fn heartbeat(
    cg: &mut ConsumerGroup,
    req: &ConsumerHeartbeat,
    topics: &TopicView,
    config: &super::shard::GroupConfig,
    now: i64,
) -> HeartbeatResult {
    let joining = req.member_epoch == 0;
    let member_id = if req.member_id.is_empty() {
        Uuid::new_v4().to_string()
    } else {
        req.member_id.clone()
    };
    let (mut member, is_new) = if joining {
        join_member(cg, req, &member_id, config, now)?
    } else {
        let Some(m) = cg.members.get(&member_id) else {
            return Err((
                E::UnknownMemberId.code(),
                format!("Member {member_id} is not a member of group {}.", req.group_id),
            ));
        };
        if let Some(instance) = &req.instance_id {
            if cg.static_members.get(instance) != Some(&member_id) {
                return Err((
                    E::FencedInstanceId.code(),
                    format!("Static member {member_id} with instance id {instance} is fenced."),
                ));
            }
        }
        check_epoch(m, req)?;
        (m.clone(), false)
    };
    let before = member.clone();
    member.session_deadline = now + config.consumer_session_timeout_ms as i64;
    if req.rebalance_timeout_ms > 0 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    if req.rack_id.is_some() {
        member.rack_id = req.rack_id.clone();
    }
    if req.instance_id.is_some() {
        member.instance_id = req.instance_id.clone();
    }
    if req.server_assignor.is_some() {
        member.server_assignor = req.server_assignor.clone();
    }
    let mut subscription_changed = false;
    if let Some(names) = &req.subscribed_topic_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        subscription_changed |= names != member.subscribed_topic_names;
        member.subscribed_topic_names = names;
    }
    if let Some(regex) = &req.subscribed_topic_regex {
        let regex = Some(regex.clone()).filter(|r| !r.is_empty());
        subscription_changed |= regex != member.subscribed_topic_regex;
        member.subscribed_topic_regex = regex;
    }
    let bump = is_new || subscription_changed || member.server_assignor != before.server_assignor;
    if let Some(instance) = &member.instance_id {
        cg.static_members.insert(instance.clone(), member_id.clone());
    }
    cg.members.insert(member_id.clone(), member);
    advance(cg, &member_id, bump, req.owned.as_ref(), topics, config, now);

    let member = &cg.members[&member_id];
    let changed = member.member_epoch != before.member_epoch || !same_assignment(&member.assigned, &before.assigned);
    let stale_owned = req
        .owned
        .as_ref()
        .is_some_and(|o| !same_assignment(o, &member.assigned));
    Ok(HeartbeatAnswer {
        error_code: 0,
        error_message: None,
        member_id: member_id.clone(),
        member_epoch: member.member_epoch,
        heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
        assignment: (joining || changed || stale_owned).then(|| member.assigned.clone()),
    })
}

/// A member joining with epoch 0: new, back after being fenced, or a static
/// member taking its place back (it keeps its assignment and epoch).
fn join_member(
    cg: &mut ConsumerGroup,
    req: &ConsumerHeartbeat,
    member_id: &str,
    config: &super::shard::GroupConfig,
    now: i64,
) -> Result<(ConsumerMember, bool), (i16, String)> {
    if let Some(instance) = &req.instance_id {
        if let Some(previous_id) = cg.static_members.get(instance).cloned() {
            let previous = cg.members.get(&previous_id).cloned();
            match previous {
                Some(p) if p.has_left_statically() || previous_id == member_id => {
                    cg.members.remove(&previous_id);
                    if let Some(target) = cg.target.remove(&previous_id) {
                        cg.target.insert(member_id.to_string(), target);
                    }
                    let mut m = p;
                    m.id = member_id.to_string();
                    if m.has_left_statically() {
                        m.member_epoch = m.previous_member_epoch.max(0);
                    }
                    return Ok((m, false));
                }
                Some(_) => {
                    return Err((
                        E::UnreleasedInstanceId.code(),
                        format!("Static member {previous_id} with instance id {instance} is not released yet."),
                    ))
                }
                None => {}
            }
        }
    }
    if cg.members.contains_key(member_id) {
        // The member comes back after being fenced: it starts over.
        cg.remove_member(member_id);
    }
    if cg.members.len() >= config.consumer_max_size.max(0) as usize {
        return Err((
            E::GroupMaxSizeReached.code(),
            format!(
                "The consumer group has reached its maximum capacity of {} members.",
                config.consumer_max_size
            ),
        ));
    }
    Ok((ConsumerMember::new(member_id.to_string(), now), true))
}

/// After a member's heartbeat (or a classic member's JoinGroup) is taken
/// in: one new group epoch for whatever changed (`changed`: the member
/// itself; or the topics its group subscribes to, a new topic matching,
/// more partitions), a new target if the epoch moved, and the member's step
/// towards it.
pub(super) fn advance(
    cg: &mut ConsumerGroup,
    member_id: &str,
    changed: bool,
    owned: Option<&Assignment>,
    topics: &TopicView,
    config: &super::shard::GroupConfig,
    now: i64,
) {
    let mut bump = changed;
    let subscribed = subscribed_topics(cg, topics);
    if cg.loaded_metadata_hash.take() == Some(metadata_hash(&subscribed)) {
        cg.subscribed_topics = subscribed.clone();
    }
    if subscribed != cg.subscribed_topics {
        cg.subscribed_topics = subscribed;
        bump = true;
    }
    if bump {
        cg.group_epoch += 1;
    }
    if cg.group_epoch > cg.assignment_epoch {
        compute_target(cg, config);
    }
    reconcile(cg, member_id, owned, now);
}

/// Kafka's epoch check: a member ahead of the group is fenced; one behind
/// may only be repeating its previous epoch with what it was given then
/// (its last response was lost).
fn check_epoch(m: &ConsumerMember, req: &ConsumerHeartbeat) -> Result<(), (i16, String)> {
    let fenced = || {
        Err((
            E::FencedMemberEpoch.code(),
            format!(
                "The consumer group member has a member epoch ({}) different from the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                req.member_epoch, m.member_epoch
            ),
        ))
    };
    if req.member_epoch > m.member_epoch {
        return fenced();
    }
    if req.member_epoch < m.member_epoch {
        let repeats = req.member_epoch == m.previous_member_epoch
            && req.owned.as_ref().is_some_and(|o| same_assignment(o, &m.assigned));
        if !repeats {
            return fenced();
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/consumer_heartbeat.rs"]
mod tests;
