//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. The group coordinator does the work; this maps
//! the wire messages to it.

use super::groups::group_allowed;
use super::metadata::authorized_operations;
use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::group::consumer_group::Assignment;
use crate::group::{ConsumerHeartbeat, GroupOverrides, TopicView};
use crate::metadata::features::GROUP_VERSION;
use kafka_protocol::messages::consumer_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response as heartbeat;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

const GROUP_OPERATIONS: &[i8] = &[operation::READ, operation::DESCRIBE, operation::DELETE];

pub async fn handle_heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if !broker.feature_at_least(GROUP_VERSION, 1) {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(ResponseError::UnsupportedVersion.code());
    }
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // Subscribing to a topic one may not describe is refused, as in Kafka.
    if let Some(names) = &req.subscribed_topic_names {
        let denied: Vec<&str> = names
            .iter()
            .map(|n| n.as_str())
            .filter(|n| !broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, n))
            .collect();
        if !denied.is_empty() {
            return ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(Some(s(&format!("Unauthorized topics: {}", denied.join(", ")))));
        }
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions.iter().copied());
        }
        a
    });
    let request = ConsumerHeartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|i| i.to_string()),
        rack_id: req.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: req.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        version: ctx.api_version,
        overrides: GroupOverrides::default(),
    };
    let answer = broker.groups.consumer_heartbeat(request).await;
    let assignment = answer.assignment.map(|a| {
        heartbeat::Assignment::default().with_topic_partitions(
            a.into_iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(topic_id, parts)| {
                    heartbeat::TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_partitions(parts.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(answer.error_code)
        .with_error_message(answer.error_message.as_deref().map(s))
        .with_member_id((!answer.member_id.is_empty()).then(|| s(&answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment)
}

fn described_assignment(a: &Assignment, topics: &TopicView) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        a.iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(id, parts)| {
                describe::TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(s(topics.name_of(*id).unwrap_or_default())))
                    .with_partitions(parts.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn handle_describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let topics = broker.groups.topic_view();
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let answer = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        if !group_allowed(broker, ctx, operation::DESCRIBE, &id) {
            groups.push(answer.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
            continue;
        }
        let cg = match broker.groups.describe_consumer_group(&id).await {
            Ok(cg) => cg,
            Err((code, message)) => {
                groups.push(
                    answer
                        .with_error_code(code)
                        .with_error_message((!message.is_empty()).then(|| s(&message))),
                );
                continue;
            }
        };
        let ops = if req.include_authorized_operations {
            authorized_operations(broker, ctx, resource::GROUP, &id, GROUP_OPERATIONS)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
        let members = cg
            .members
            .values()
            .map(|m| {
                let target = cg.target.get(&m.id).cloned().unwrap_or_default();
                describe::Member::default()
                    .with_member_id(s(&m.id))
                    .with_instance_id(m.instance_id.as_deref().map(s))
                    .with_rack_id(m.rack_id.as_deref().map(s))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host))
                    .with_subscribed_topic_names(m.subscribed_topic_names.iter().map(|n| TopicName(s(n))).collect())
                    .with_subscribed_topic_regex(m.subscribed_topic_regex.as_deref().map(s))
                    .with_assignment(described_assignment(&m.assigned, &topics))
                    .with_target_assignment(described_assignment(&target, &topics))
                    // 0: a classic member (KIP-848's migration), 1: the consumer protocol.
                    .with_member_type(if m.classic.is_some() { 0 } else { 1 })
            })
            .collect();
        groups.push(
            answer
                .with_group_state(s(cg.state_name()))
                .with_group_epoch(cg.group_epoch)
                .with_assignment_epoch(cg.assignment_epoch)
                .with_assignor_name(s(if cg.assignor.is_empty() {
                    "uniform"
                } else {
                    &cg.assignor
                }))
                .with_members(members)
                .with_authorized_operations(ops),
        );
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
