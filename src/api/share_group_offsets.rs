//! Share groups' offsets (KIP-932): DescribeShareGroupOffsets, and the
//! admin's AlterShareGroupOffsets and DeleteShareGroupOffsets, which only a
//! share group without members takes (`kafka-share-groups --reset-offsets`,
//! `--delete-offsets`).

use super::groups::group_allowed;
use super::share_groups::s;
use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::share::{durable, ShareKey};
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as AlteredPartition, AlterShareGroupOffsetsResponseTopic as AlteredTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as DeletedTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as OffsetsGroup,
    DescribeShareGroupOffsetsResponsePartition as OffsetsPartition,
    DescribeShareGroupOffsetsResponseTopic as OffsetsTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

const UNKNOWN_PARTITION: &str = "This server does not host this topic-partition.";

/// DescribeShareGroupOffsets: each share-partition's start offset and lag;
/// -1 for a partition the group has not started reading.
pub async fn handle_describe_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let image = broker.image();
    let mut out = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let id = g.group_id.to_string();
        let answer = OffsetsGroup::default().with_group_id(g.group_id.clone());
        if !group_allowed(broker, ctx, operation::DESCRIBE, &id) {
            out.push(answer.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
            continue;
        }
        // Null topics: every partition the group has started reading.
        let wanted: Vec<(String, Vec<i32>)> = match g.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| (t.topic_name.to_string(), t.partitions))
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for key in durable::known_keys(&broker.shares, &broker.share_states, &id).await {
                    if let Some(t) = image.topics.by_id(key.topic_id) {
                        by_topic.entry(t.name.clone()).or_default().push(key.partition);
                    }
                }
                by_topic.into_iter().collect()
            }
        };
        let mut topics = Vec::new();
        for (name, partitions) in wanted {
            let allowed = broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, &name);
            let topic = image.topics.get(&name);
            let topic_id = topic.map(|t| t.id).unwrap_or_default();
            let mut parts = Vec::with_capacity(partitions.len());
            for p in partitions {
                let base = OffsetsPartition::default().with_partition_index(p);
                if !allowed {
                    parts.push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                    continue;
                }
                if topic.and_then(|t| t.partition(p)).is_none() {
                    parts.push(
                        base.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(s(UNKNOWN_PARTITION))),
                    );
                    continue;
                }
                let key = ShareKey {
                    group: id.clone(),
                    topic_id,
                    partition: p,
                };
                parts.push(match durable::written_offsets(&broker.persister(), &key).await {
                    Err(code) => base.with_error_code(code),
                    Ok(None) => base.with_start_offset(-1).with_leader_epoch(-1).with_lag(-1),
                    Ok(Some((start, done))) => {
                        let log = broker.replicas.partition(&name, p).map(|part| {
                            let log = part.log();
                            (log.high_watermark(), log.leader_epoch())
                        });
                        let lag = log.map_or(-1, |(hw, _)| (hw - start - done).max(0));
                        let epoch = log.map_or(-1, |(_, e)| e);
                        base.with_start_offset(start).with_leader_epoch(epoch).with_lag(lag)
                    }
                });
            }
            topics.push(
                OffsetsTopic::default()
                    .with_topic_name(TopicName(s(&name)))
                    .with_topic_id(topic_id)
                    .with_partitions(parts),
            );
        }
        out.push(answer.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(out)
}

/// Whether the client may change `group`'s offsets (`op` on the group) and
/// the group is a share group without members (`create`: made if missing);
/// else the error and message for the whole response.
async fn group_at_rest(
    broker: &Broker,
    ctx: &RequestContext,
    group: &str,
    op: i8,
    create: bool,
) -> Result<(), (i16, Option<String>)> {
    if group.is_empty() {
        return Err((ResponseError::InvalidGroupId.code(), None));
    }
    if !group_allowed(broker, ctx, op, group) {
        return Err((ResponseError::GroupAuthorizationFailed.code(), None));
    }
    broker
        .groups
        .share_group_at_rest(group, create)
        .await
        .map_err(|(code, message)| (code, (!message.is_empty()).then_some(message)))
}

/// AlterShareGroupOffsets: sets the start offset of each partition given;
/// records in flight there are forgotten.
pub async fn handle_alter(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let group = req.group_id.to_string();
    if let Err((code, message)) = group_at_rest(broker, ctx, &group, operation::READ, true).await {
        return AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(message.as_deref().map(s));
    }
    let image = broker.image();
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic_name.to_string();
        let allowed = broker.authorize(ctx, operation::READ, resource::TOPIC, &name);
        let topic = image.topics.get(&name).filter(|_| allowed);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = AlteredPartition::default().with_partition_index(p.partition_index);
            if !allowed {
                partitions.push(answer.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let Some(topic) = topic.filter(|t| t.partition(p.partition_index).is_some()) else {
                partitions.push(
                    answer
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(s(UNKNOWN_PARTITION))),
                );
                continue;
            };
            let key = ShareKey {
                group: group.clone(),
                topic_id: topic.id,
                partition: p.partition_index,
            };
            let code = durable::reset_state(&broker.shares, &broker.persister(), &key, p.start_offset.max(0)).await;
            partitions.push(answer.with_error_code(code));
        }
        responses.push(
            AlteredTopic::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(topic.map(|t| t.id).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}

/// DeleteShareGroupOffsets: forgets the group's state for every partition of
/// each topic given; it starts afresh (at share.auto.offset.reset) if read again.
pub async fn handle_delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let group = req.group_id.to_string();
    if let Err((code, message)) = group_at_rest(broker, ctx, &group, operation::DELETE, false).await {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(message.as_deref().map(s));
    }
    let image = broker.image();
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic_name.to_string();
        let answer = DeletedTopic::default().with_topic_name(t.topic_name);
        if !broker.authorize(ctx, operation::READ, resource::TOPIC, &name) {
            responses.push(answer.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(topic) = image.topics.get(&name) else {
            responses.push(
                answer
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(s(UNKNOWN_PARTITION))),
            );
            continue;
        };
        let id = topic.id;
        let keys: Vec<ShareKey> = durable::known_keys(&broker.shares, &broker.share_states, &group)
            .await
            .into_iter()
            .filter(|k| k.topic_id == id)
            .collect();
        let code = durable::delete_state(&broker.shares, &broker.persister(), &keys).await;
        if code != 0 {
            responses.push(answer.with_error_code(code));
            continue;
        }
        if keys.is_empty() {
            responses.push(
                answer
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(s("There is no offset information to delete."))),
            );
            continue;
        }
        responses.push(answer.with_topic_id(id));
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}
