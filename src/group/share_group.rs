//! Share groups (KIP-932): members, their subscriptions and the partitions
//! the coordinator gives them (ShareGroupHeartbeat). Unlike a consumer
//! group, members do not own partitions: several may read one partition, and
//! an assignment takes effect at once (the records themselves are handed out
//! by the share-partitions, `crate::share`). Kept in memory: members come
//! back by heartbeating.

use super::classic_group::{Group, GroupState};
use super::consumer_group::Assignment;
use super::consumer_heartbeat::TopicView;
use super::shard::{GroupRecord, GroupShard};
use crate::coordinator::CoordinatorResult;
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;
use uuid::Uuid;

pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;

#[derive(Debug, Clone, Default)]
pub struct ShareMember {
    pub id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub assigned: Assignment,
    pub session_deadline: i64,
}

#[derive(Debug, Clone)]
pub struct ShareGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// The subscribed topics when the assignment was computed: a change of
    /// partitions calls for a new one.
    pub subscribed_topics: BTreeMap<String, (Uuid, i32)>,
}

impl Default for ShareGroup {
    fn default() -> ShareGroup {
        ShareGroup::new()
    }
}

impl ShareGroup {
    /// Starts at epoch 1, as Kafka 4.4's groups do.
    pub fn new() -> ShareGroup {
        ShareGroup {
            group_epoch: 1,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            subscribed_topics: BTreeMap::new(),
        }
    }

    /// Kafka's ShareGroupState names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    fn subscribed_view(&self, topics: &TopicView) -> BTreeMap<String, (Uuid, i32)> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .filter_map(|t| topics.topics.get(t).map(|v| (t.clone(), *v)))
            .collect()
    }

    /// Kafka's simple assignor for one subscription shared by all: each
    /// partition to one member while there are more partitions than members,
    /// every member at least one partition when there are fewer.
    fn assign(&mut self, topics: &TopicView) {
        self.subscribed_topics = self.subscribed_view(topics);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let mut targets: BTreeMap<String, Assignment> = ids.iter().map(|m| (m.clone(), Assignment::new())).collect();
        // Topic by topic, the members subscribed to it share its partitions.
        for (name, (topic_id, count)) in &self.subscribed_topics {
            let readers: Vec<&String> = ids
                .iter()
                .filter(|m| self.members[*m].subscribed.iter().any(|t| t == name))
                .collect();
            if readers.is_empty() || *count <= 0 {
                continue;
            }
            let n = readers.len().max(*count as usize);
            for i in 0..n {
                let member = readers[i % readers.len()];
                let partition = (i % *count as usize) as i32;
                if let Some(a) = targets.get_mut(member) {
                    a.entry(*topic_id).or_default().insert(partition);
                }
            }
        }
        for (id, target) in targets {
            if let Some(m) = self.members.get_mut(&id) {
                m.assigned = target;
                m.member_epoch = self.group_epoch;
            }
        }
        self.assignment_epoch = self.group_epoch;
    }
}

/// A ShareGroupHeartbeat as the coordinator needs it.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub max_size: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShareHeartbeatAnswer {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Assignment>,
}

impl ShareHeartbeatAnswer {
    pub fn error(code: i16, message: impl Into<String>) -> ShareHeartbeatAnswer {
        ShareHeartbeatAnswer {
            error_code: code,
            error_message: Some(message.into()),
            member_id: String::new(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// Kafka's checks of a share heartbeat that do not need the group.
fn validate(req: &ShareHeartbeat) -> Result<(), String> {
    if req.group_id.is_empty() {
        return Err("GroupId can't be empty.".into());
    }
    if req.member_id.is_empty() {
        return Err("MemberId can't be empty.".into());
    }
    if req.rack_id.as_deref() == Some("") {
        return Err("RackId can't be empty.".into());
    }
    match req.member_epoch {
        0 if req.subscribed_topic_names.as_ref().is_none_or(|t| t.is_empty()) => {
            Err("SubscribedTopicNames must be set in first request.".into())
        }
        e if e < LEAVE_GROUP_MEMBER_EPOCH => Err(format!("MemberEpoch is invalid: {e}.")),
        _ => Ok(()),
    }
}

/// Whether a group without share state is a classic or consumer group
/// (anything but an empty shell, which may become a share group).
fn is_another_kind(group: &Group) -> bool {
    group.consumer.is_some()
        || group.streams.is_some()
        || !group.members.is_empty()
        || group.state != GroupState::Empty
        || group.protocol_type.is_some()
        || !group.offsets.is_empty()
}

impl GroupShard {
    pub fn share_heartbeat(
        &mut self,
        req: ShareHeartbeat,
        topics: &TopicView,
        now: i64,
    ) -> CoordinatorResult<ShareHeartbeatAnswer, GroupRecord> {
        let before = self.share_epoch(&req.group_id);
        let answer = match self.share_heartbeat_inner(&req, topics, now) {
            Ok(a) => a,
            Err((code, message)) => ShareHeartbeatAnswer::error(code, message),
        };
        CoordinatorResult::persisted(self.share_epoch_record(&req.group_id, before), answer)
    }

    /// A share group's epoch, if it is one.
    pub(super) fn share_epoch(&self, group_id: &str) -> Option<i32> {
        self.groups
            .get(group_id)
            .and_then(|g| g.share.as_deref())
            .map(|sg| sg.group_epoch)
    }

    /// The record of a share group whose epoch is no longer `before` (a new
    /// group, or a new epoch), so that it is there after a restart.
    pub(super) fn share_epoch_record(&self, group_id: &str, before: Option<i32>) -> Vec<GroupRecord> {
        match self.share_epoch(group_id) {
            Some(epoch) if Some(epoch) != before => vec![GroupRecord::share_group(group_id, Some(epoch))],
            _ => Vec::new(),
        }
    }

    fn share_heartbeat_inner(
        &mut self,
        req: &ShareHeartbeat,
        topics: &TopicView,
        now: i64,
    ) -> Result<ShareHeartbeatAnswer, (i16, String)> {
        validate(req).map_err(|m| (E::InvalidRequest.code(), m))?;
        let not_found = || (E::GroupIdNotFound.code(), format!("Group {} not found.", req.group_id));
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
            let sg = self
                .groups
                .get_mut(&req.group_id)
                .and_then(|g| g.share.as_deref_mut())
                .ok_or_else(not_found)?;
            if sg.members.remove(&req.member_id).is_none() {
                return Err((
                    E::UnknownMemberId.code(),
                    format!("Member {} is not a member of group {}.", req.member_id, req.group_id),
                ));
            }
            sg.group_epoch += 1;
            sg.assign(topics);
            return Ok(ShareHeartbeatAnswer {
                error_code: 0,
                error_message: None,
                member_id: req.member_id.clone(),
                member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }
        let group = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            None if req.member_epoch != 0 => return Err(not_found()),
            None => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now)),
        };
        if group.share.is_none() {
            if is_another_kind(group) {
                return Err((
                    E::GroupIdNotFound.code(),
                    format!("Group {} is not a share group.", req.group_id),
                ));
            }
            group.share = Some(Box::new(ShareGroup::new()));
        }
        let Some(sg) = group.share.as_deref_mut() else {
            return Err(not_found());
        };
        let joining = req.member_epoch == 0;
        if joining && !sg.members.contains_key(&req.member_id) && sg.members.len() >= req.max_size.max(0) as usize {
            return Err((
                E::GroupMaxSizeReached.code(),
                format!(
                    "The group has reached its maximum capacity of {} members.",
                    req.max_size
                ),
            ));
        }
        if !joining {
            let member = sg.members.get(&req.member_id).ok_or_else(|| {
                (
                    E::UnknownMemberId.code(),
                    format!("Member {} is not a member of group {}.", req.member_id, req.group_id),
                )
            })?;
            if member.member_epoch != req.member_epoch {
                return Err((
                    E::FencedMemberEpoch.code(),
                    format!(
                        "The share group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        req.member_epoch, member.member_epoch
                    ),
                ));
            }
        }
        let member = sg.members.entry(req.member_id.clone()).or_insert_with(|| ShareMember {
            id: req.member_id.clone(),
            ..ShareMember::default()
        });
        let before_epoch = member.member_epoch;
        let before = member.assigned.clone();
        let mut bump = joining && before_epoch == 0;
        if let Some(names) = &req.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != member.subscribed {
                member.subscribed = names;
                bump = true;
            }
        }
        if req.rack_id.is_some() {
            member.rack_id = req.rack_id.clone();
        }
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_deadline = now + req.session_timeout_ms as i64;
        // New partitions of subscribed topics call for a new assignment too.
        if bump || sg.subscribed_view(topics) != sg.subscribed_topics {
            sg.group_epoch += 1;
        }
        if sg.group_epoch > sg.assignment_epoch {
            sg.assign(topics);
        }
        let member = &sg.members[&req.member_id];
        let changed = member.assigned != before || member.member_epoch != before_epoch;
        Ok(ShareHeartbeatAnswer {
            error_code: 0,
            error_message: None,
            member_id: req.member_id.clone(),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: req.heartbeat_interval_ms,
            assignment: (joining || changed).then(|| member.assigned.clone()),
        })
    }

    /// Members whose session ran out leave; the others share their partitions.
    /// Returns (group, member) of each one gone, so its records go back.
    pub(super) fn expire_share_members(&mut self, now: i64, topics: Option<&TopicView>) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for group in self.groups.values_mut() {
            let Some(sg) = group.share.as_deref_mut() else {
                continue;
            };
            let expired: Vec<String> = sg
                .members
                .values()
                .filter(|m| m.session_deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in expired {
                sg.members.remove(&id);
                gone.push((group.id.clone(), id));
            }
            sg.group_epoch += 1;
            if let Some(topics) = topics {
                sg.assign(topics);
            }
        }
        gone
    }

    pub(super) fn next_share_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(|g| g.share.as_deref())
            .flat_map(|sg| sg.members.values())
            .map(|m| m.session_deadline)
            .min()
    }

    /// A share group as it is now.
    /// Whether a share group's offsets may be altered or deleted: it is a
    /// share group without members. `create`: a group that does not exist
    /// is made (an empty share group), as Kafka does for an alter.
    pub fn share_group_at_rest(
        &mut self,
        group_id: &str,
        create: bool,
        now: i64,
    ) -> CoordinatorResult<Result<(), (i16, String)>, GroupRecord> {
        let before = self.share_epoch(group_id);
        let answer = self.share_group_at_rest_inner(group_id, create, now);
        CoordinatorResult::persisted(self.share_epoch_record(group_id, before), answer)
    }

    fn share_group_at_rest_inner(&mut self, group_id: &str, create: bool, now: i64) -> Result<(), (i16, String)> {
        let group = match self.groups.get_mut(group_id) {
            Some(g) => g,
            None if create => self
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, now)),
            None => return Err((E::GroupIdNotFound.code(), format!("Group {group_id} not found."))),
        };
        if group.share.is_none() {
            if is_another_kind(group) || !create {
                return Err((
                    E::GroupIdNotFound.code(),
                    format!("Group {group_id} is not a share group."),
                ));
            }
            group.share = Some(Box::new(ShareGroup::new()));
        }
        match group.share.as_deref() {
            Some(sg) if sg.members.is_empty() => Ok(()),
            // No message of its own: the tools print the error's ("The group is not empty.").
            Some(_) => Err((E::NonEmptyGroup.code(), String::new())),
            None => Err((E::GroupIdNotFound.code(), format!("Group {group_id} not found."))),
        }
    }

    pub fn describe_share(&self, group_id: &str) -> Result<ShareGroup, (i16, String)> {
        match self.groups.get(group_id) {
            Some(g) => match &g.share {
                Some(sg) => Ok((**sg).clone()),
                None => Err((
                    E::GroupIdNotFound.code(),
                    format!("Group {group_id} is not a share group."),
                )),
            },
            None => Err((E::GroupIdNotFound.code(), format!("Group {group_id} not found."))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> TopicView {
        let mut v = TopicView::default();
        v.topics.insert("t".into(), (Uuid::from_u128(7), 3));
        v
    }

    fn member(id: &str) -> ShareMember {
        ShareMember {
            id: id.into(),
            subscribed: vec!["t".into()],
            ..ShareMember::default()
        }
    }

    #[test]
    fn partitions_are_shared_when_members_outnumber_them() {
        let mut g = ShareGroup::new();
        for id in ["a", "b"] {
            g.members.insert(id.into(), member(id));
        }
        g.assign(&view());
        let count = |g: &ShareGroup, id: &str| g.members[id].assigned.values().map(|p| p.len()).sum::<usize>();
        assert_eq!(count(&g, "a") + count(&g, "b"), 3);
        for id in ["c", "d", "e"] {
            g.members.insert(id.into(), member(id));
        }
        g.assign(&view());
        for id in ["a", "b", "c", "d", "e"] {
            assert_eq!(count(&g, id), 1, "{id}");
        }
    }

    #[test]
    fn offsets_change_only_in_a_share_group_without_members() {
        use crate::group::shard::GroupConfig;
        let mut shard = GroupShard::new(GroupConfig::default());
        let at_rest = |shard: &mut GroupShard, group: &str, create: bool| {
            shard
                .share_group_at_rest(group, create, 0)
                .response
                .map_err(|(code, _)| code)
        };
        // Deleting offsets needs the group; altering them makes it.
        assert_eq!(at_rest(&mut shard, "g", false), Err(E::GroupIdNotFound.code()));
        assert_eq!(at_rest(&mut shard, "g", true), Ok(()));
        assert_eq!(at_rest(&mut shard, "g", false), Ok(()));
        let join = ShareHeartbeat {
            group_id: "g".into(),
            member_id: "m".into(),
            member_epoch: 0,
            rack_id: None,
            subscribed_topic_names: Some(vec!["t".into()]),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5000,
            max_size: 200,
        };
        assert_eq!(shard.share_heartbeat(join, &view(), 0).response.error_code, 0);
        assert_eq!(at_rest(&mut shard, "g", true), Err(E::NonEmptyGroup.code()));
        assert_eq!(at_rest(&mut shard, "g", false), Err(E::NonEmptyGroup.code()));
        // Its session runs out: the timers name it (its records go back), and
        // the group is at rest again.
        assert_eq!(shard.tick(44_999).response, vec![]);
        assert_eq!(shard.tick(45_000).response, vec![("g".to_string(), "m".to_string())]);
        assert_eq!(at_rest(&mut shard, "g", false), Ok(()));
    }
}
