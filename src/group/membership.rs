//! The classic group protocol's requests: JoinGroup, SyncGroup, Heartbeat
//! and LeaveGroup. Membership changes happen here, on the shard's state; the
//! group record that persists them is written after (not replayed).

use super::classic_group::{Group, GroupState};
use super::classic_in_consumer;
use super::consumer_records::{changes, Before};
use super::rebalance::{
    add_member_and_rebalance, join_response, prepare_rebalance, remove_member_and_rebalance, try_complete_join,
    update_member_and_rebalance,
};
use super::shard::{join_error, s, sync_error, GroupRecord, GroupShard, Reply};
use crate::coordinator::CoordinatorResult;
use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::ResponseError as E;
use std::collections::HashMap;
use tokio::sync::oneshot;

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: new members first get MEMBER_ID_REQUIRED and an id.
    pub require_known_member_id: bool,
    /// The topics that exist, for a classic member joining a consumer group.
    pub topics: super::consumer_heartbeat::TopicView,
}

pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A member leaving: by member id, or by instance id for static members.
pub struct LeavingMember {
    pub member_id: String,
    pub instance_id: Option<String>,
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl GroupShard {
    // ----- JoinGroup -------------------------------------------------------------------------

    pub fn join(&mut self, req: JoinRequest, now: i64) -> CoordinatorResult<Reply<JoinGroupResponse>, GroupRecord> {
        let mut out = Vec::new();
        let reply = self.join_group(&mut out, req, now);
        CoordinatorResult::persisted(out, reply)
    }

    fn join_group(&mut self, out: &mut Vec<GroupRecord>, mut req: JoinRequest, now: i64) -> Reply<JoinGroupResponse> {
        if req.group_id.is_empty() {
            return Reply::Now(join_error(E::InvalidGroupId.code(), &req.member_id));
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Reply::Now(join_error(E::InvalidSessionTimeout.code(), &req.member_id));
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Reply::Now(join_error(E::UnknownMemberId.code(), &req.member_id));
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let delay = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(&req.group_id).expect("inserted above");
        // A consumer group with members takes classic members in (KIP-848's
        // migration); an empty one becomes a classic group again.
        if let Some(cg) = group.consumer.as_deref().filter(|cg| !cg.members.is_empty()) {
            let before = Before::of(cg, Some(&req.member_id));
            let topics = std::mem::take(&mut req.topics);
            let answer = classic_in_consumer::join(group, req, &topics, &self.config, now);
            if let Some(cg) = group.consumer.as_deref() {
                out.extend(changes(&group.id, &before, cg));
            }
            return Reply::Now(answer);
        }
        if group.has_protocol_members() || group.share.is_some() {
            return Reply::Now(join_error(E::InconsistentGroupProtocol.code(), &req.member_id));
        }
        if let Some(cg) = group.consumer.take() {
            // An empty consumer group becomes a classic one: its records go.
            out.extend(super::consumer_records::group_tombstones(&req.group_id, &cg));
        }
        group.streams = None;
        if !group.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(join_error(E::InconsistentGroupProtocol.code(), &req.member_id));
        }
        if req.member_id.is_empty() {
            join_unknown_member(group, out, req, delay, now)
        } else {
            join_known_member(group, out, req, delay, now)
        }
    }

    // ----- SyncGroup -------------------------------------------------------------------------

    pub fn sync(&mut self, req: SyncRequest, now: i64) -> CoordinatorResult<Reply<SyncGroupResponse>, GroupRecord> {
        let mut out = Vec::new();
        let reply = self.sync_group(&mut out, req, now);
        CoordinatorResult::persisted(out, reply)
    }

    fn sync_group(&mut self, out: &mut Vec<GroupRecord>, req: SyncRequest, now: i64) -> Reply<SyncGroupResponse> {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Reply::Now(sync_error(E::UnknownMemberId.code()));
        };
        if let Some(cg) = group.consumer.as_deref_mut() {
            return Reply::Now(classic_in_consumer::sync(cg, &req, now));
        }
        if let Err(code) = validate_member(group, &req.member_id, req.instance_id.as_deref()) {
            return Reply::Now(sync_error(code));
        }
        if req.generation != group.generation {
            return Reply::Now(sync_error(E::IllegalGeneration.code()));
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != group.protocol.as_ref())
        {
            return Reply::Now(sync_error(E::InconsistentGroupProtocol.code()));
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Reply::Now(sync_error(E::UnknownMemberId.code())),
            GroupState::PreparingRebalance => Reply::Now(sync_error(E::RebalanceInProgress.code())),
            GroupState::Stable => {
                let member = &mut group.members[&req.member_id];
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                let assignment = member.assignment.clone();
                Reply::Now(sync_ok(group, &assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let member = group.members.get_mut(&req.member_id).expect("validated");
                member.awaiting_sync = Some(tx);
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                group.pending_sync.remove(&req.member_id);
                if group.is_leader(&req.member_id) {
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in group.members.values_mut() {
                        m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
                    }
                    out.push(GroupRecord::group(group));
                    group.transition(GroupState::Stable, now);
                    group.sync_deadline = None;
                    group.pending_sync.clear();
                    let (protocol_type, protocol) = (group.protocol_type.clone(), group.protocol.clone());
                    for m in group.members.values_mut() {
                        if let Some(tx) = m.awaiting_sync.take() {
                            let _ = tx.send(
                                SyncGroupResponse::default()
                                    .with_protocol_type(protocol_type.as_deref().map(s))
                                    .with_protocol_name(protocol.as_deref().map(s))
                                    .with_assignment(m.assignment.clone()),
                            );
                        }
                    }
                }
                Reply::Later(rx)
            }
        }
    }

    // ----- Heartbeat -------------------------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return E::UnknownMemberId.code();
        };
        if let Some(cg) = group.consumer.as_deref_mut() {
            return classic_in_consumer::heartbeat(cg, generation, member_id, instance_id, now);
        }
        if matches!(group.state, GroupState::Empty | GroupState::Dead) {
            return E::UnknownMemberId.code();
        }
        if let Err(code) = validate_member(group, member_id, instance_id) {
            return code;
        }
        if generation != group.generation {
            return E::IllegalGeneration.code();
        }
        let member = group.members.get_mut(member_id).expect("validated");
        member.heartbeat_deadline = now + member.session_timeout_ms as i64;
        match group.state {
            GroupState::PreparingRebalance => E::RebalanceInProgress.code(),
            _ => 0,
        }
    }

    // ----- LeaveGroup ------------------------------------------------------------------------

    /// Returns the top-level error and one error per leaving member.
    pub fn leave(
        &mut self,
        group_id: &str,
        leaving: &[LeavingMember],
        now: i64,
    ) -> CoordinatorResult<(i16, Vec<i16>), GroupRecord> {
        let mut out = Vec::new();
        let answer = self.leave_group(&mut out, group_id, leaving, now);
        CoordinatorResult::persisted(out, answer)
    }

    fn leave_group(
        &mut self,
        out: &mut Vec<GroupRecord>,
        group_id: &str,
        leaving: &[LeavingMember],
        now: i64,
    ) -> (i16, Vec<i16>) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return (
                E::UnknownMemberId.code(),
                vec![E::UnknownMemberId.code(); leaving.len()],
            );
        };
        if let Some(cg) = group.consumer.as_deref_mut() {
            let before = Before::of(cg, None);
            let errors = classic_in_consumer::leave(cg, leaving);
            out.extend(changes(group_id, &before, cg));
            return (0, errors);
        }
        let mut errors = Vec::with_capacity(leaving.len());
        for l in leaving {
            let member_id = if l.member_id.is_empty() {
                match l.instance_id.as_ref().and_then(|i| group.static_members.get(i)) {
                    Some(id) => id.clone(),
                    None => {
                        errors.push(E::UnknownMemberId.code());
                        continue;
                    }
                }
            } else {
                l.member_id.clone()
            };
            if group.pending_members.remove(&member_id).is_some() {
                errors.push(0);
                try_complete_join(group, out, now);
                continue;
            }
            match validate_member(group, &member_id, l.instance_id.as_deref()) {
                Ok(()) => {
                    remove_member_and_rebalance(group, out, &member_id, now);
                    errors.push(0);
                }
                Err(code) => errors.push(code),
            }
        }
        (0, errors)
    }
}

fn sync_ok(group: &Group, assignment: &Bytes) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_protocol_type(group.protocol_type.as_deref().map(s))
        .with_protocol_name(group.protocol.as_deref().map(s))
        .with_assignment(assignment.clone())
}

/// The member exists and, if static, is the registered one for its instance id.
pub(super) fn validate_member(group: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
    if let Some(instance) = instance_id {
        match group.static_members.get(instance) {
            Some(registered) if registered != member_id => return Err(E::FencedInstanceId.code()),
            None if !group.members.contains_key(member_id) => return Err(E::UnknownMemberId.code()),
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(E::UnknownMemberId.code());
    }
    Ok(())
}

fn join_unknown_member(
    group: &mut Group,
    out: &mut Vec<GroupRecord>,
    req: JoinRequest,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    if let Some(instance) = req.instance_id.clone() {
        let new_id = new_member_id(&instance);
        if let Some(old_id) = group.static_members.get(&instance).cloned() {
            return rejoin_static_member(group, out, req, &old_id, new_id, delay, now);
        }
        return add_member_and_rebalance(group, out, req, new_id, delay, now);
    }
    let new_id = new_member_id(&req.client_id);
    if req.require_known_member_id {
        // The client must come back with this id; until then it holds the join open.
        group
            .pending_members
            .insert(new_id.clone(), now + req.session_timeout_ms as i64);
        return Reply::Now(join_error(E::MemberIdRequired.code(), &new_id));
    }
    add_member_and_rebalance(group, out, req, new_id, delay, now)
}

fn join_known_member(
    group: &mut Group,
    out: &mut Vec<GroupRecord>,
    req: JoinRequest,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let member_id = req.member_id.clone();
    if group.pending_members.remove(&member_id).is_some() {
        return add_member_and_rebalance(group, out, req, member_id, delay, now);
    }
    if let Err(code) = validate_member(group, &member_id, req.instance_id.as_deref()) {
        return Reply::Now(join_error(code, &member_id));
    }
    match group.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(group, out, req, delay, now),
        GroupState::CompletingRebalance => {
            let member = &group.members[&member_id];
            if member.same_protocols(&req.protocols) {
                // A retry of a join whose answer was lost: the same answer again.
                Reply::Now(join_response(group, &member_id))
            } else {
                update_member_and_rebalance(group, out, req, delay, now)
            }
        }
        GroupState::Stable => {
            let member = &group.members[&member_id];
            if group.is_leader(&member_id) || !member.same_protocols(&req.protocols) {
                // The leader rejoining forces a rebalance (e.g. topic metadata changed).
                update_member_and_rebalance(group, out, req, delay, now)
            } else {
                Reply::Now(join_response(group, &member_id))
            }
        }
        GroupState::Empty | GroupState::Dead => Reply::Now(join_error(E::UnknownMemberId.code(), &member_id)),
    }
}

/// A static member restarted (new member id, same instance id). In a stable
/// group whose protocol does not change, it takes its predecessor's place and
/// assignment without a rebalance.
fn rejoin_static_member(
    group: &mut Group,
    out: &mut Vec<GroupRecord>,
    req: JoinRequest,
    old_id: &str,
    new_id: String,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let Some(mut member) = group.members.shift_remove(old_id) else {
        group
            .static_members
            .remove(req.instance_id.as_deref().unwrap_or_default());
        return add_member_and_rebalance(group, out, req, new_id, delay, now);
    };
    let was_leader = group.is_leader(old_id);
    // Whatever the old incarnation waited for, it is fenced now.
    if let Some(tx) = member.awaiting_join.take() {
        let _ = tx.send(join_error(E::FencedInstanceId.code(), old_id));
    }
    if let Some(tx) = member.awaiting_sync.take() {
        let _ = tx.send(sync_error(E::FencedInstanceId.code()));
    }
    group.pending_sync.remove(old_id);
    member.protocols = req.protocols.clone();
    member.id = new_id.clone();
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.heartbeat_deadline = now + req.session_timeout_ms as i64;
    group.members.insert(new_id.clone(), member);
    if let Some(instance) = &req.instance_id {
        group.static_members.insert(instance.clone(), new_id.clone());
    }
    if was_leader {
        group.leader = Some(new_id.clone());
    }
    match group.state {
        GroupState::Stable if group.select_protocol() == group.protocol => {
            out.push(GroupRecord::group(group));
            // The old leader id is returned so the current leader does not
            // redo an assignment a stable group would not broadcast.
            let leader = if was_leader {
                old_id.to_string()
            } else {
                group.leader.clone().unwrap_or_default()
            };
            Reply::Now(
                JoinGroupResponse::default()
                    .with_generation_id(group.generation)
                    .with_protocol_type(group.protocol_type.as_deref().map(s))
                    .with_protocol_name(group.protocol.as_deref().map(s))
                    .with_leader(s(&leader))
                    .with_member_id(s(&new_id)),
            )
        }
        GroupState::PreparingRebalance => {
            let (tx, rx) = oneshot::channel();
            group.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(tx);
            try_complete_join(group, out, now);
            Reply::Later(rx)
        }
        _ => {
            let (tx, rx) = oneshot::channel();
            group.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(tx);
            prepare_rebalance(group, delay, now);
            try_complete_join(group, out, now);
            Reply::Later(rx)
        }
    }
}
