//! Metadata: this node as the only broker and controller, and the topics asked
//! for (all when the list is null, or empty in v0), auto-creating unknown
//! topics when the broker and the request allow it.

use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::Broker;
use crate::cluster::{topic_name, NewTopic, Topic, TopicError};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::info;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.api_version;
    let endpoint = broker.endpoint_for(&ctx.listener);
    let node = BrokerId(broker.cluster.node_id());
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(endpoint.host.clone()))
        .with_port(endpoint.port as i32)
        .with_rack(None)];

    // Before v1 an empty list meant every topic; from v1 on that is null.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    // Auto-creation is implied before v4.
    let may_create =
        broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let include_ops = req.include_topic_authorized_operations;

    let topics = if all {
        broker
            .cluster
            .topics()
            .iter()
            .map(|t| topic_metadata(t, node, include_ops))
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|requested| match requested.name {
                Some(name) => named_topic(broker, name, may_create, node, include_ops),
                None => match broker.cluster.topic_by_id(requested.topic_id) {
                    Some(t) => topic_metadata(&t, node, include_ops),
                    None => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(requested.topic_id)
                        .with_name(None)
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                },
            })
            .collect()
    };

    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(
            broker.cluster.cluster_id().to_string(),
        )))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn named_topic(
    broker: &Broker,
    name: TopicName,
    may_create: bool,
    node: BrokerId,
    include_ops: bool,
) -> MetadataResponseTopic {
    if let Some(t) = broker.cluster.topic(&name) {
        return topic_metadata(&t, node, include_ops);
    }
    let failed = |code: i16| {
        MetadataResponseTopic::default()
            .with_error_code(code)
            .with_name(Some(name.clone()))
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    if topic_name::validate(&name).is_err() {
        return failed(ResponseError::InvalidTopicException.code());
    }
    // Internal topics are created by their coordinators, never on a metadata request.
    if !may_create || topic_name::is_internal(&name) {
        return failed(ResponseError::UnknownTopicOrPartition.code());
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: broker.cluster.default_partitions(),
        replication_factor: broker.cluster.default_replication_factor(),
        configs: BTreeMap::new(),
    };
    match broker.cluster.create_topic(new, false) {
        Ok(t) => {
            info!(topic = %t.name, "auto-created topic on metadata request");
            topic_metadata(&t, node, include_ops)
        }
        // Another connection created it in the meantime.
        Err(TopicError::AlreadyExists(_)) => match broker.cluster.topic(&name) {
            Some(t) => topic_metadata(&t, node, include_ops),
            None => failed(ResponseError::LeaderNotAvailable.code()),
        },
        Err(e) => failed(e.code()),
    }
}

fn topic_metadata(topic: &Arc<Topic>, node: BrokerId, include_ops: bool) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_leader_id(node)
                .with_leader_epoch(p.offsets().leader_epoch)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_offline_replicas(vec![])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_ops {
            // Without an authorizer every operation is allowed: Read..DescribeConfigs, AlterConfigs.
            TOPIC_OPERATIONS_ALL
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

/// Bit set of the ACL operations that apply to topics (READ=3, WRITE=4,
/// CREATE=5, DELETE=6, ALTER=7, DESCRIBE=8, DESCRIBE_CONFIGS=10, ALTER_CONFIGS=11).
const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// DescribeTopicPartitions: topics by name (all when none are named), in
/// name order, at most `response_partition_limit` partitions per answer,
/// with a cursor to continue from.
pub async fn handle_describe_topic_partitions(
    broker: &Broker,
    _ctx: &RequestContext,
    req: kafka_protocol::messages::DescribeTopicPartitionsRequest,
) -> kafka_protocol::messages::DescribeTopicPartitionsResponse {
    use kafka_protocol::messages::describe_topic_partitions_response::{
        Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
    };
    let node = BrokerId(broker.cluster.node_id());
    let mut names: Vec<String> = if req.topics.is_empty() {
        broker
            .cluster
            .topics()
            .iter()
            .map(|t| t.name.clone())
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (c.topic_name.to_string(), c.partition_index),
        None => (String::new(), 0),
    };
    let mut budget = req.response_partition_limit.max(1) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let Some(topic) = broker.cluster.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
            );
            continue;
        };
        let first = if name == start_topic {
            start_partition.max(0) as usize
        } else {
            0
        };
        let mut partitions = Vec::new();
        for p in topic.partitions.iter().skip(first) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(StrBytes::from_string(name.clone())))
                        .with_partition_index(p.index()),
                );
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p.index())
                    .with_leader_id(node)
                    .with_leader_epoch(p.offsets().leader_epoch)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
                    .with_offline_replicas(vec![]),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                .with_topic_id(topic.id)
                .with_is_internal(topic.is_internal())
                .with_partitions(partitions)
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    kafka_protocol::messages::DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
