//! The rebalance itself: the join phase starts, members join or are
//! dropped, a new generation begins and every waiting member is answered;
//! and the deadlines that move it along (initial delay, join and sync
//! timeouts, expired sessions).

use super::classic_group::{Group, GroupState, Member};
use super::membership::JoinRequest;
use super::shard::{join_error, s, sync_error, GroupRecord, GroupShard, Reply};
use crate::coordinator::CoordinatorResult;
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::ResponseError as E;
use tokio::sync::oneshot;

impl GroupShard {
    // ----- Timers ----------------------------------------------------------------------------

    /// Applies every deadline that has passed: initial delays, join and
    /// sync timeouts, expired sessions and pending members. Answers the
    /// share group members whose session ran out: (group, member).
    pub fn tick(&mut self, now: i64) -> CoordinatorResult<Vec<(String, String)>, GroupRecord> {
        let mut out = Vec::new();
        self.apply_deadlines(&mut out, now);
        out.extend(self.expire_consumer_members(now));
        out.extend(self.expire_streams_members(now));
        let gone = self.expire_share_members(now, None);
        let mut groups: Vec<&str> = gone.iter().map(|(g, _)| g.as_str()).collect();
        groups.dedup();
        for group in groups {
            if let Some(epoch) = self.share_epoch(group) {
                out.push(GroupRecord::share_group(group, Some(epoch)));
            }
        }
        CoordinatorResult::persisted(out, gone)
    }

    fn apply_deadlines(&mut self, out: &mut Vec<GroupRecord>, now: i64) {
        let delay = self.config.initial_rebalance_delay_ms;
        for group in self.groups.values_mut() {
            let expired_pending: Vec<String> = group
                .pending_members
                .iter()
                .filter(|(_, deadline)| **deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired_pending {
                group.pending_members.remove(&id);
                try_complete_join(group, out, now);
            }
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none() && m.heartbeat_deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %group.id, member = %id, "session timed out; removing member");
                remove_member_and_rebalance(group, out, &id, now);
            }
            if let Some((deadline, remaining)) = group.initial_delay {
                if deadline <= now {
                    if group.new_member_added && remaining > 0 {
                        group.new_member_added = false;
                        let step = delay.min(remaining);
                        group.initial_delay = Some((now + step, remaining - step));
                    } else {
                        group.initial_delay = None;
                        complete_join(group, out, now);
                    }
                }
            }
            if group.state == GroupState::PreparingRebalance
                && group.initial_delay.is_none()
                && group.join_deadline.is_some_and(|d| d <= now)
            {
                complete_join(group, out, now);
            }
            if group.state == GroupState::CompletingRebalance && group.sync_deadline.is_some_and(|d| d <= now) {
                let laggards: Vec<String> = group.pending_sync.iter().cloned().collect();
                group.sync_deadline = None;
                for id in laggards {
                    tracing::info!(group = %group.id, member = %id, "no SyncGroup within the rebalance timeout; removing member");
                    group.remove_member(&id);
                }
                prepare_rebalance(group, 0, now);
                try_complete_join(group, out, now);
            }
        }
    }

    /// The earliest deadline any group waits for, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |d: i64| next = Some(next.map_or(d, |n: i64| n.min(d)));
        for g in self.groups.values() {
            for d in g.pending_members.values() {
                consider(*d);
            }
            for m in g.members.values() {
                if m.awaiting_join.is_none() && m.awaiting_sync.is_none() {
                    consider(m.heartbeat_deadline);
                }
            }
            if let Some((d, _)) = g.initial_delay {
                consider(d);
            }
            if g.state == GroupState::PreparingRebalance {
                if let Some(d) = g.join_deadline {
                    consider(d);
                }
            }
            if g.state == GroupState::CompletingRebalance {
                if let Some(d) = g.sync_deadline {
                    consider(d);
                }
            }
        }
        if let Some(d) = self.next_consumer_deadline() {
            consider(d);
        }
        if let Some(d) = self.next_streams_deadline() {
            consider(d);
        }
        if let Some(d) = self.next_share_deadline() {
            consider(d);
        }
        next
    }
}

pub(super) fn add_member_and_rebalance(
    group: &mut Group,
    out: &mut Vec<GroupRecord>,
    req: JoinRequest,
    member_id: String,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    if group.members.is_empty() {
        group.protocol_type = Some(req.protocol_type.clone());
    }
    if let Some(instance) = &req.instance_id {
        group.static_members.insert(instance.clone(), member_id.clone());
    }
    group.members.insert(
        member_id.clone(),
        Member {
            id: member_id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            heartbeat_deadline: now + req.session_timeout_ms as i64,
        },
    );
    if group.leader.is_none() {
        group.leader = Some(member_id);
    }
    if group.state == GroupState::PreparingRebalance {
        // Joining during the initial delay extends it (up to the rebalance timeout).
        group.new_member_added = true;
    } else {
        prepare_rebalance(group, delay, now);
    }
    try_complete_join(group, out, now);
    Reply::Later(rx)
}

pub(super) fn update_member_and_rebalance(
    group: &mut Group,
    out: &mut Vec<GroupRecord>,
    req: JoinRequest,
    delay: i64,
    now: i64,
) -> Reply<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    let member = group.members.get_mut(&req.member_id).expect("validated");
    member.protocols = req.protocols;
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    if let Some(old) = member.awaiting_join.replace(tx) {
        // A newer join from the same member supersedes the old request.
        let _ = old.send(join_error(E::RebalanceInProgress.code(), &req.member_id));
    }
    if group.state != GroupState::PreparingRebalance {
        prepare_rebalance(group, delay, now);
    }
    try_complete_join(group, out, now);
    Reply::Later(rx)
}

/// Starts (or restarts) the join phase. Members waiting for their sync
/// answer are told a rebalance is in progress.
pub(super) fn prepare_rebalance(group: &mut Group, delay: i64, now: i64) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(sync_error(E::RebalanceInProgress.code()));
            }
        }
    }
    let rebalance_timeout = group.max_rebalance_timeout();
    if group.state == GroupState::Empty && delay > 0 {
        group.new_member_added = false;
        group.initial_delay = Some((now + delay, (rebalance_timeout - delay).max(0)));
    }
    group.join_deadline = Some(now + rebalance_timeout);
    group.sync_deadline = None;
    group.pending_sync.clear();
    group.transition(GroupState::PreparingRebalance, now);
}

pub(super) fn try_complete_join(group: &mut Group, out: &mut Vec<GroupRecord>, now: i64) {
    if group.state == GroupState::PreparingRebalance && group.initial_delay.is_none() && group.all_joined() {
        complete_join(group, out, now);
    }
}

/// Ends the join phase: members that did not rejoin (dynamic ones) are
/// dropped, a new generation starts, and every waiting member is answered.
fn complete_join(group: &mut Group, out: &mut Vec<GroupRecord>, now: i64) {
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let absent: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in absent {
        group.remove_member(&id);
    }
    group.pending_members.clear();
    group.join_deadline = None;
    group.initial_delay = None;
    group.generation += 1;
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.transition(GroupState::Empty, now);
        out.push(GroupRecord::group(group));
        return;
    }
    group.protocol = group.select_protocol();
    if group.leader.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
        group.leader = group.members.keys().next().cloned();
    }
    group.transition(GroupState::CompletingRebalance, now);
    group.pending_sync = group.members.keys().cloned().collect();
    group.sync_deadline = Some(now + group.max_rebalance_timeout());
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let response = join_response(group, &id);
        let member = group.members.get_mut(&id).expect("listed");
        member.heartbeat_deadline = now + member.session_timeout_ms as i64;
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(response);
        }
    }
}

/// The JoinGroup answer for the current generation; the leader also gets
/// every member's metadata, to compute the assignment.
pub(super) fn join_response(group: &Group, member_id: &str) -> JoinGroupResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if group.is_leader(member_id) {
        group
            .members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(&m.id))
                    .with_group_instance_id(m.instance_id.as_deref().map(s))
                    .with_metadata(m.metadata_for(&protocol))
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse::default()
        .with_generation_id(group.generation)
        .with_protocol_type(group.protocol_type.as_deref().map(s))
        .with_protocol_name(group.protocol.as_deref().map(s))
        .with_leader(s(group.leader.as_deref().unwrap_or_default()))
        .with_member_id(s(member_id))
        .with_members(members)
}

pub(super) fn remove_member_and_rebalance(group: &mut Group, out: &mut Vec<GroupRecord>, member_id: &str, now: i64) {
    if let Some(mut member) = group.remove_member(member_id) {
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(join_error(E::UnknownMemberId.code(), member_id));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            let _ = tx.send(sync_error(E::UnknownMemberId.code()));
        }
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, 0, now);
            try_complete_join(group, out, now);
        }
        GroupState::PreparingRebalance => try_complete_join(group, out, now),
        GroupState::Empty | GroupState::Dead => {}
    }
}
