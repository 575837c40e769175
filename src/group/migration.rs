//! A group moving between the classic protocol and the consumer protocol
//! (KIP-848) while it has members, as `group.consumer.migration.policy`
//! allows: a consumer-protocol member joining a classic group of the
//! "consumer" protocol type turns it into a consumer group whose classic
//! members keep their partitions; when the last consumer-protocol member
//! leaves, the classic members are a classic group again and rebalance.
//! Kafka's GroupMetadataManager.convertToConsumerGroup/convertToClassicGroup.

use super::classic_group::{Group, GroupState, Member};
use super::consumer_group::{ClassicMember, ConsumerGroup, ConsumerMember, MemberState};
use super::consumer_heartbeat::TopicView;
use super::consumer_protocol::{by_id, decode_assignment, decode_subscription, encode_assignment, version_of};
use super::consumer_records::group_tombstones;
use super::rebalance::prepare_rebalance;
use super::shard::{join_error, sync_error, GroupConfig, GroupRecord};
use kafka_protocol::ResponseError as E;

/// Why a classic group stays classic: the message of GROUP_ID_NOT_FOUND.
pub(super) fn upgrade(
    group: &mut Group,
    topics: &TopicView,
    config: &GroupConfig,
    now: i64,
    out: &mut Vec<GroupRecord>,
) -> Result<(), String> {
    let not_consumer = || format!("Group {} is not a consumer group.", group.id);
    if group.share.is_some() || group.streams.is_some() {
        return Err(not_consumer());
    }
    if !config.migration_policy.upgrade {
        tracing::info!(group = %group.id, "cannot upgrade the classic group to a consumer group: the online upgrade is disabled");
        return Err(not_consumer());
    }
    if group.protocol_type.as_deref() != Some("consumer") {
        tracing::info!(group = %group.id, "cannot upgrade the classic group: it does not use the consumer embedded protocol");
        return Err(not_consumer());
    }
    if group.members.len() > config.consumer_max_size.max(0) as usize {
        tracing::info!(group = %group.id, "cannot upgrade the classic group: it has more members than a consumer group may");
        return Err(not_consumer());
    }
    let cg = consumer_group_of(group, topics, now).map_err(|_| {
        format!(
            "Cannot upgrade the classic group {} to consumer group because the embedded consumer protocol is malformed.",
            group.id
        )
    })?;
    // Members waiting in a rebalance are told of the next one, so they rejoin.
    for m in group.members.values_mut() {
        if let Some(tx) = m.awaiting_join.take() {
            let _ = tx.send(join_error(E::RebalanceInProgress.code(), &m.id));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(sync_error(E::RebalanceInProgress.code()));
        }
    }
    tracing::info!(group = %group.id, members = group.members.len(), "classic group upgraded to a consumer group");
    out.push(GroupRecord::group_tombstone(&group.id));
    let offsets = std::mem::take(&mut group.offsets);
    *group = Group::new(&group.id, now);
    group.offsets = offsets;
    group.consumer = Some(Box::new(cg));
    Ok(())
}

/// Kafka's ConsumerGroup.fromClassicGroup: every member at the classic
/// generation, Stable, its last classic assignment as current and target.
fn consumer_group_of(
    group: &Group,
    topics: &TopicView,
    now: i64,
) -> Result<ConsumerGroup, super::consumer_protocol::Malformed> {
    let mut cg = ConsumerGroup::new();
    cg.group_epoch = group.generation;
    cg.assignment_epoch = group.generation;
    let protocol = group.protocol.clone().unwrap_or_default();
    for m in group.members.values() {
        let subscription = decode_subscription(&m.metadata_for(&protocol))?;
        let assigned = by_id(&decode_assignment(&m.assignment)?, topics);
        let mut member = ConsumerMember::new(m.id.clone(), now);
        member.instance_id = m.instance_id.clone();
        member.rack_id = subscription.rack_id;
        member.client_id = m.client_id.clone();
        member.client_host = m.client_host.clone();
        let mut names = subscription.topics;
        names.sort();
        names.dedup();
        member.subscribed_topic_names = names;
        member.rebalance_timeout_ms = m.rebalance_timeout_ms;
        member.member_epoch = group.generation;
        member.previous_member_epoch = group.generation;
        member.state = MemberState::Stable;
        member.assigned = assigned.clone();
        member.session_deadline = now + m.session_timeout_ms as i64;
        member.classic = Some(ClassicMember {
            session_timeout_ms: m.session_timeout_ms,
            protocols: m.protocols.clone(),
        });
        if let Some(instance) = &m.instance_id {
            cg.static_members.insert(instance.clone(), m.id.clone());
        }
        cg.target.insert(m.id.clone(), assigned);
        cg.members.insert(m.id.clone(), member);
    }
    Ok(cg)
}

/// After `leaving` goes: if only classic members would be left (some), and
/// the policy allows it, the group becomes classic and rebalances. Returns
/// whether it did (then `leaving` is gone with the consumer group).
pub(super) fn maybe_downgrade(
    group: &mut Group,
    leaving: &str,
    topics: &TopicView,
    config: &GroupConfig,
    now: i64,
    out: &mut Vec<GroupRecord>,
) -> bool {
    let Some(cg) = group.consumer.as_deref() else {
        return false;
    };
    if !cg.members.keys().any(|id| id != leaving) || !cg.all_classic_except(leaving) {
        return false;
    }
    if !config.migration_policy.downgrade {
        tracing::info!(group = %group.id, "cannot downgrade the consumer group to a classic group: the online downgrade is disabled");
        return false;
    }
    let Some(cg) = group.consumer.take() else {
        return false;
    };
    out.extend(group_tombstones(&group.id, &cg));
    group.generation = cg.group_epoch;
    group.protocol_type = Some("consumer".to_string());
    group.members.clear();
    group.static_members.clear();
    for m in cg.members.values().filter(|m| m.id != leaving) {
        let Some(classic) = &m.classic else { continue };
        group.members.insert(
            m.id.clone(),
            Member {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: classic.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: classic.protocols.clone(),
                assignment: bytes::Bytes::new(),
                awaiting_join: None,
                awaiting_sync: None,
                heartbeat_deadline: now + classic.session_timeout_ms as i64,
            },
        );
        if let Some(instance) = &m.instance_id {
            group.static_members.insert(instance.clone(), m.id.clone());
        }
    }
    group.protocol = group.select_protocol();
    group.leader = group.members.keys().next().cloned();
    let protocol = group.protocol.clone().unwrap_or_default();
    let empty = Default::default();
    for m in group.members.values_mut() {
        let target = cg.target.get(&m.id).unwrap_or(&empty);
        m.assignment = encode_assignment(target, topics, version_of(&m.metadata_for(&protocol)));
    }
    group.transition(GroupState::Stable, now);
    out.push(GroupRecord::group(group));
    tracing::info!(group = %group.id, members = group.members.len(), "consumer group downgraded to a classic group");
    prepare_rebalance(group, 0, now);
    true
}

#[cfg(test)]
#[path = "tests/migration.rs"]
mod tests;
