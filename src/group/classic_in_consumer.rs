//! The classic protocol's requests to a consumer group (KIP-848's
//! migration): a classic member's JoinGroup stands in for a consumer-group
//! heartbeat (its subscription and owned partitions are read from the
//! embedded consumer protocol), SyncGroup hands it its partitions, and
//! Heartbeat tells it to rejoin when its assignment has moved on. Kafka's
//! classicGroupJoinToConsumerGroup and its Sync/Heartbeat/Leave siblings.

use super::classic_group::Group;
use super::consumer_group::{ClassicMember, ConsumerGroup, ConsumerMember, MemberState};
use super::consumer_heartbeat::{advance, TopicView};
use super::consumer_protocol::{by_id, decode_subscription, encode_assignment, version_of};
use super::membership::{JoinRequest, LeavingMember, SyncRequest};
use super::shard::{join_error, s, sync_error, GroupConfig};
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use uuid::Uuid;

/// Whether a classic member with these protocols fits the group's classic
/// members: the "consumer" type, and a protocol every one of them supports.
fn supports(cg: &ConsumerGroup, protocol_type: &str, protocols: &[(String, bytes::Bytes)]) -> bool {
    if protocol_type != "consumer" || protocols.is_empty() {
        return false;
    }
    let classic: Vec<&ClassicMember> = cg.members.values().filter_map(|m| m.classic.as_ref()).collect();
    classic.is_empty()
        || protocols
            .iter()
            .any(|(name, _)| classic.iter().all(|c| c.protocols.iter().any(|(n, _)| n == name)))
}

pub(super) fn join(
    group: &mut Group,
    req: JoinRequest,
    topics: &TopicView,
    config: &GroupConfig,
    now: i64,
) -> JoinGroupResponse {
    let Some(cg) = group.consumer.as_deref_mut() else {
        return join_error(E::UnknownServerError.code(), &req.member_id);
    };
    let unknown = req.member_id.is_empty();
    let member_id = if unknown {
        Uuid::new_v4().to_string()
    } else {
        req.member_id.clone()
    };
    let known = cg.members.contains_key(&member_id)
        || req
            .instance_id
            .as_ref()
            .is_some_and(|i| cg.static_members.contains_key(i));
    if !known && cg.members.len() >= config.consumer_max_size.max(0) as usize {
        return join_error(E::GroupMaxSizeReached.code(), &member_id);
    }
    if !supports(cg, &req.protocol_type, &req.protocols) {
        return join_error(E::InconsistentGroupProtocol.code(), &member_id);
    }
    if unknown && req.require_known_member_id && req.instance_id.is_none() {
        // A new dynamic member first learns its id, as in a classic group.
        return join_error(E::MemberIdRequired.code(), &member_id);
    }
    let Ok(subscription) = decode_subscription(&req.protocols[0].1) else {
        return join_error(E::UnknownServerError.code(), &member_id);
    };

    // The member: known, a static member taking its place back, or new.
    let (mut member, is_new) = match &req.instance_id {
        Some(instance) => match cg.static_members.get(instance).cloned() {
            Some(previous) if unknown || previous == member_id => {
                let Some(mut m) = cg.members.remove(&previous) else {
                    return join_error(E::UnknownMemberId.code(), &member_id);
                };
                if let Some(target) = cg.target.remove(&previous) {
                    cg.target.insert(member_id.clone(), target);
                }
                m.id = member_id.clone();
                if m.has_left_statically() {
                    m.member_epoch = m.previous_member_epoch.max(0);
                }
                (m, false)
            }
            Some(_) => return join_error(E::FencedInstanceId.code(), &member_id),
            None => (ConsumerMember::new(member_id.clone(), now), true),
        },
        None => match cg.members.get(&member_id) {
            Some(m) if m.classic.is_none() => return join_error(E::UnknownMemberId.code(), &member_id),
            Some(m) => (m.clone(), false),
            None => (ConsumerMember::new(member_id.clone(), now), true),
        },
    };
    let mut names = subscription.topics.clone();
    names.sort();
    names.dedup();
    let subscription_changed = names != member.subscribed_topic_names || member.subscribed_topic_regex.is_some();
    member.subscribed_topic_names = names;
    member.subscribed_topic_regex = None;
    member.server_assignor = None;
    member.instance_id = req.instance_id.clone();
    if subscription.rack_id.is_some() {
        member.rack_id = subscription.rack_id.clone();
    }
    if req.rebalance_timeout_ms > 0 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.classic = Some(ClassicMember {
        session_timeout_ms: req.session_timeout_ms,
        protocols: req.protocols.clone(),
    });
    member.session_deadline = now + req.session_timeout_ms as i64;
    // It must sync within its rebalance timeout.
    member.classic_deadline = Some(now + member.rebalance_timeout_ms as i64);
    if let Some(instance) = &member.instance_id {
        cg.static_members.insert(instance.clone(), member_id.clone());
    }
    cg.members.insert(member_id.clone(), member);

    let owned = by_id(&subscription.owned, topics);
    advance(
        cg,
        &member_id,
        is_new || subscription_changed,
        Some(&owned),
        topics,
        config,
        now,
    );

    let member = &cg.members[&member_id];
    let protocol = req.protocols[0].0.clone();
    JoinGroupResponse::default()
        .with_member_id(StrBytes::from_string(member_id))
        .with_generation_id(member.member_epoch)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(StrBytes::from_string(protocol)))
        .with_leader(StrBytes::default())
}

/// The member a classic request names, and that it speaks the classic protocol.
fn classic_member<'a>(
    cg: &'a mut ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<&'a mut ConsumerMember, i16> {
    let id = match instance_id {
        Some(instance) => match cg.static_members.get(instance) {
            Some(id) if id == member_id => id.clone(),
            Some(_) => return Err(E::FencedInstanceId.code()),
            None => return Err(E::UnknownMemberId.code()),
        },
        None => member_id.to_string(),
    };
    match cg.members.get_mut(&id) {
        Some(m) if m.classic.is_some() => Ok(m),
        _ => Err(E::UnknownMemberId.code()),
    }
}

pub(super) fn sync(cg: &mut ConsumerGroup, req: &SyncRequest, now: i64) -> SyncGroupResponse {
    let group_epoch = cg.group_epoch;
    let view = TopicView {
        topics: cg.subscribed_topics.clone(),
        internal: Default::default(),
    };
    let member = match classic_member(cg, &req.member_id, req.instance_id.as_deref()) {
        Ok(m) => m,
        Err(code) => return sync_error(code),
    };
    if req.generation != member.member_epoch {
        return sync_error(E::IllegalGeneration.code());
    }
    let Some(classic) = member.classic.clone() else {
        return sync_error(E::UnknownMemberId.code());
    };
    let (protocol, metadata) = classic.protocol();
    if req.protocol_type.as_deref().is_some_and(|t| t != "consumer")
        || req.protocol_name.as_deref().is_some_and(|p| p != protocol)
    {
        return sync_error(E::InconsistentGroupProtocol.code());
    }
    if group_epoch > member.member_epoch && member.state != MemberState::UnrevokedPartitions {
        // A newer rebalance: the member rejoins first.
        member.classic_deadline = Some(now + member.rebalance_timeout_ms as i64);
        return sync_error(E::RebalanceInProgress.code());
    }
    member.classic_deadline = None;
    member.session_deadline = now + classic.session_timeout_ms as i64;
    let assignment = encode_assignment(&member.assigned, &view, version_of(metadata));
    SyncGroupResponse::default()
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(StrBytes::from_string(protocol.to_string())))
        .with_assignment(assignment)
}

/// REBALANCE_IN_PROGRESS when the member must rejoin: the group moved on,
/// it has partitions to give up, or partitions it waited for are free.
pub(super) fn heartbeat(
    cg: &mut ConsumerGroup,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    now: i64,
) -> i16 {
    let group_epoch = cg.group_epoch;
    let waiting = waiting_on_others(cg, member_id);
    let member = match classic_member(cg, member_id, instance_id) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if generation != member.member_epoch {
        return E::IllegalGeneration.code();
    }
    let session = member.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
    member.session_deadline = now + session as i64;
    let rejoin = member.member_epoch < group_epoch
        || member.state == MemberState::UnrevokedPartitions
        || (member.state == MemberState::UnreleasedPartitions && !waiting);
    if rejoin {
        if member.classic_deadline.is_none() {
            member.classic_deadline = Some(now + member.rebalance_timeout_ms as i64);
        }
        return E::RebalanceInProgress.code();
    }
    0
}

/// Whether part of the member's target is still held by another member.
fn waiting_on_others(cg: &ConsumerGroup, member_id: &str) -> bool {
    let Some(target) = cg.target.get(member_id) else {
        return false;
    };
    let owners = cg.owners();
    target.iter().any(|(t, ps)| {
        ps.iter()
            .any(|p| owners.get(&(*t, *p)).is_some_and(|o| *o != member_id))
    })
}

/// One error per leaving member; the group moves to a new epoch if any left.
pub(super) fn leave(cg: &mut ConsumerGroup, leaving: &[LeavingMember]) -> Vec<i16> {
    let mut errors = Vec::with_capacity(leaving.len());
    for l in leaving {
        let id = match &l.instance_id {
            Some(instance) => match cg.static_members.get(instance) {
                None => {
                    errors.push(E::UnknownMemberId.code());
                    continue;
                }
                Some(id) if !l.member_id.is_empty() && *id != l.member_id => {
                    errors.push(E::FencedInstanceId.code());
                    continue;
                }
                Some(id) => id.clone(),
            },
            None => l.member_id.clone(),
        };
        if cg.members.get(&id).is_none_or(|m| m.classic.is_none()) {
            errors.push(E::UnknownMemberId.code());
            continue;
        }
        tracing::info!(member = %id, "classic member left the consumer group through LeaveGroup");
        cg.remove_member(&id);
        errors.push(0);
    }
    errors
}
