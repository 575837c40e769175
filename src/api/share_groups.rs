//! Share groups (KIP-932): ShareGroupHeartbeat and ShareGroupDescribe. A
//! member's new partitions get their share-partition started here (at share.auto.offset.reset), as Kafka
//! initializes them when it first assigns them.

use super::groups::group_allowed;
use super::metadata::authorized_operations;
use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::config::group::parse_iso_duration_ms;
use crate::group::consumer_group::Assignment;
use crate::group::share_group::ShareHeartbeat;
use crate::metadata::features::SHARE_VERSION;
use crate::metadata::records::ConfigResource;
use crate::share::{ShareKey, ShareSettings};
use crate::storage::now_ms;
use kafka_protocol::messages::share_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::share_group_heartbeat_response as heartbeat;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

const GROUP_OPERATIONS: &[i8] = &[operation::READ, operation::DESCRIBE, operation::DELETE];

/// A broker setting, overridden by the group's own config.
fn group_setting(broker: &Broker, group: &str, group_key: &str, broker_key: &str, default: i64) -> i64 {
    let image = broker.image();
    image
        .configs_of(&ConfigResource::Group(group.to_string()))
        .get(group_key)
        .or_else(|| broker.config.properties.get(broker_key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The share settings of a group: its configs over the broker's.
pub fn share_settings(broker: &Broker, group: &str) -> ShareSettings {
    let image = broker.image();
    let props: BTreeMap<String, String> = broker
        .config
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ShareSettings::resolve(&props, image.configs_of(&ConfigResource::Group(group.to_string())))
}

/// Where a group starts reading a partition it has never read:
/// share.auto.offset.reset (latest, earliest, or by_duration).
pub fn initial_offset(partition: &crate::storage::Partition, reset: &str) -> i64 {
    let mut log = partition.log();
    match reset {
        "earliest" => log.log_start_offset(),
        other => match other.strip_prefix("by_duration:").and_then(parse_iso_duration_ms) {
            Some(ms) => log
                .offset_for_timestamp(now_ms() - ms)
                .ok()
                .flatten()
                .map(|(_, offset)| offset)
                .unwrap_or_else(|| log.high_watermark()),
            None => log.high_watermark(),
        },
    }
}

/// Starts the share-partitions of an assignment that this broker leads
/// (from their written state, if they have one).
async fn initialize(broker: &Broker, group: &str, assignment: &Assignment) {
    let settings = share_settings(broker, group);
    let image = broker.image();
    for (topic_id, partitions) in assignment {
        for p in partitions {
            let key = ShareKey {
                group: group.to_string(),
                topic_id: *topic_id,
                partition: *p,
            };
            // The group's coordinator knows what it gave out (to describe
            // the group's offsets); the leader loads it.
            broker.shares.note_assigned(key.clone());
            if super::leadership::led_elsewhere(broker, &image, *topic_id, *p) {
                continue;
            }
            let Some(partition) = broker
                .replicas
                .topic_by_id(*topic_id)
                .and_then(|t| t.partition(*p).cloned())
            else {
                continue;
            };
            let leader_epoch = partition.log().leader_epoch();
            // Not loaded now: the member's first fetch loads it.
            let _ =
                crate::share::durable::ensure_loaded(&broker.shares, &broker.persister(), &key, leader_epoch, || {
                    initial_offset(&partition, &settings.auto_offset_reset)
                })
                .await;
        }
    }
}

pub async fn handle_heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    if !broker.feature_at_least(SHARE_VERSION, 1) {
        return ShareGroupHeartbeatResponse::default().with_error_code(ResponseError::UnsupportedVersion.code());
    }
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return ShareGroupHeartbeatResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Some(names) = &req.subscribed_topic_names {
        let denied: Vec<&str> = names
            .iter()
            .map(|n| n.as_str())
            .filter(|n| !broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, n))
            .collect();
        if !denied.is_empty() {
            return ShareGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(Some(s(&format!("Unauthorized topics: {}", denied.join(", ")))));
        }
    }
    let group = req.group_id.to_string();
    let request = ShareHeartbeat {
        group_id: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|r| r.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.to_string()).collect()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: group_setting(
            broker,
            &group,
            "share.session.timeout.ms",
            "group.share.session.timeout.ms",
            45_000,
        ) as i32,
        heartbeat_interval_ms: group_setting(
            broker,
            &group,
            "share.heartbeat.interval.ms",
            "group.share.heartbeat.interval.ms",
            5000,
        ) as i32,
        max_size: group_setting(broker, &group, "", "group.share.max.size", 200) as i32,
    };
    let member = request.member_id.clone();
    let leaving = request.member_epoch == crate::group::share_group::LEAVE_GROUP_MEMBER_EPOCH;
    let answer = broker.groups.share_heartbeat(request).await;
    if answer.error_code == 0 && leaving {
        // What the member held goes back to the others at once.
        let touched = broker
            .shares
            .release_member_everywhere(&group, &member, &share_settings(broker, &group).limits);
        broker.shares.lock_sessions().drop_member(&group, &member);
        crate::share::durable::persist_all(&broker.shares, &broker.persister(), &touched).await;
    }
    if let Some(a) = &answer.assignment {
        initialize(broker, &group, a).await;
    }
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
    ShareGroupHeartbeatResponse::default()
        .with_error_code(answer.error_code)
        .with_error_message(answer.error_message.as_deref().map(s))
        .with_member_id((!answer.member_id.is_empty()).then(|| s(&answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment)
}

pub async fn handle_describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
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
        let sg = match broker.groups.describe_share_group(&id).await {
            Ok(sg) => sg,
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
        let members = sg
            .members
            .values()
            .map(|m| {
                let assignment = describe::Assignment::default().with_topic_partitions(
                    m.assigned
                        .iter()
                        .filter(|(_, p)| !p.is_empty())
                        .map(|(id, parts)| {
                            describe::TopicPartitions::default()
                                .with_topic_id(*id)
                                .with_topic_name(TopicName(s(topics.name_of(*id).unwrap_or_default())))
                                .with_partitions(parts.iter().copied().collect())
                        })
                        .collect(),
                );
                describe::Member::default()
                    .with_member_id(s(&m.id))
                    .with_rack_id(m.rack_id.as_deref().map(s))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host))
                    .with_subscribed_topic_names(m.subscribed.iter().map(|n| TopicName(s(n))).collect())
                    .with_assignment(assignment)
            })
            .collect();
        groups.push(
            answer
                .with_group_state(s(sg.state_name()))
                .with_group_epoch(sg.group_epoch)
                .with_assignment_epoch(sg.assignment_epoch)
                .with_assignor_name(s("simple"))
                .with_members(members)
                .with_authorized_operations(ops),
        );
    }
    ShareGroupDescribeResponse::default().with_groups(groups)
}
