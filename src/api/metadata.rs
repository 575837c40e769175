//! Metadata: the live brokers and the topics asked for (all when the list is
//! null, or empty in v0), from the metadata image, auto-creating unknown
//! topics when the broker and the request allow it.

use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::{self, operation, resource};
use crate::broker::Broker;
use crate::metadata::controller::NewTopic;
use crate::metadata::{topic_name, ControllerError, MetadataImage, TopicImage};
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

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let version = ctx.api_version;
    // Before v1 an empty list meant every topic; from v1 on that is null.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut view = View {
        broker,
        ctx,
        image: broker.image(),
        include_ops: req.include_topic_authorized_operations,
        // Auto-creation is implied before v4.
        may_create: broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation),
    };

    let topics = if all {
        // Topics the principal may not describe are left out.
        view.image
            .topics
            .iter()
            .filter(|t| broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, &t.name))
            .map(|t| view.topic(t))
            .collect()
    } else {
        let mut topics = Vec::new();
        for requested in req.topics.unwrap_or_default() {
            let answer = match requested.name {
                Some(name) => view.named(name).await,
                None => match view.image.topics.by_id(requested.topic_id).cloned() {
                    Some(t) if broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, &t.name) => view.topic(&t),
                    Some(_) => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_topic_id(requested.topic_id)
                        .with_name(None)
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                    None => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(requested.topic_id)
                        .with_name(None)
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                },
            };
            topics.push(answer);
        }
        topics
    };
    // Cluster operations exist in v8-v10 responses only.
    let cluster_ops = if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
        authorized_operations(broker, ctx, resource::CLUSTER, acl::CLUSTER_NAME, CLUSTER_OPERATIONS)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };

    MetadataResponse::default()
        .with_brokers(live_brokers(broker, &view.image, &ctx.listener))
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(super::cluster::controller_id(broker, &view.image)))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// The registered, unfenced brokers, each at its endpoint for `listener`;
/// this broker from its own config until its registration is published.
pub fn live_brokers(broker: &Broker, image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    let mut out: Vec<MetadataResponseBroker> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.listener == listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(e.host.clone()))
                    .with_port(e.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    if !image.brokers.contains_key(&broker.node_id()) {
        let endpoint = broker.endpoint_for(listener);
        out.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(broker.node_id()))
                .with_host(StrBytes::from_string(endpoint.host.clone()))
                .with_port(endpoint.port as i32)
                .with_rack(broker.config.broker_rack.clone().map(StrBytes::from_string)),
        );
    }
    out
}

/// What one Metadata request may see and do.
struct View<'a> {
    broker: &'a Broker,
    ctx: &'a RequestContext,
    image: Arc<MetadataImage>,
    include_ops: bool,
    may_create: bool,
}

impl View<'_> {
    async fn named(&mut self, name: TopicName) -> MetadataResponseTopic {
        let failed = |code: i16| {
            MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(Some(name.clone()))
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        };
        let describable = self
            .broker
            .authorize(self.ctx, operation::DESCRIBE, resource::TOPIC, &name);
        if let Some(t) = self.image.topics.get(&name).cloned() {
            return if describable {
                self.topic(&t)
            } else {
                failed(ResponseError::TopicAuthorizationFailed.code())
            };
        }
        if topic_name::validate(&name).is_err() {
            return failed(ResponseError::InvalidTopicException.code());
        }
        // Internal topics are created by their coordinators, never on a metadata request.
        if !self.may_create || topic_name::is_internal(&name) {
            return failed(if describable {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::TopicAuthorizationFailed.code()
            });
        }
        let may_create = self.broker.authorize_cluster(self.ctx, operation::CREATE)
            || self
                .broker
                .authorize(self.ctx, operation::CREATE, resource::TOPIC, &name);
        if !may_create {
            return failed(ResponseError::TopicAuthorizationFailed.code());
        }
        let new = NewTopic {
            name: name.to_string(),
            partitions: self.broker.config.num_partitions,
            replication_factor: self.broker.config.default_replication_factor,
            configs: BTreeMap::new(),
            assignments: None,
        };
        let created = self.broker.controller.create_topics(vec![new], false).await;
        // The new image (or another connection's creation) is published now.
        self.image = self.broker.image();
        match created.map(|mut r| r.pop()) {
            Ok(Some(Ok(_))) => info!(topic = %&*name, "auto-created topic on metadata request"),
            Ok(Some(Err(ControllerError::TopicAlreadyExists(_)))) => {}
            Ok(Some(Err(e))) | Err(e) => return failed(e.code()),
            Ok(None) => {}
        }
        match self.image.topics.get(&name).cloned() {
            Some(t) => self.topic(&t),
            None => failed(ResponseError::LeaderNotAvailable.code()),
        }
    }

    fn topic(&self, topic: &TopicImage) -> MetadataResponseTopic {
        let ops = if self.include_ops {
            authorized_operations(self.broker, self.ctx, resource::TOPIC, &topic.name, TOPIC_OPERATIONS)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
        topic_metadata(topic, ops)
    }
}

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|b| BrokerId(*b)).collect()
}

fn topic_metadata(topic: &TopicImage, authorized_ops: i32) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(broker_ids(&p.replicas))
                .with_isr_nodes(broker_ids(&p.isr))
                .with_offline_replicas(vec![])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_ops)
}

/// The bit set of `candidates` the principal may perform on a resource
/// (bit n set for operation code n), as Kafka reports authorized operations.
pub fn authorized_operations(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    candidates: &[i8],
) -> i32 {
    candidates
        .iter()
        .filter(|op| broker.authorize(ctx, **op, resource_type, name))
        .fold(0, |bits, op| bits | (1 << *op))
}

/// Operations that apply to topics, and to the cluster.
const TOPIC_OPERATIONS: &[i8] = &[
    operation::READ,
    operation::WRITE,
    operation::CREATE,
    operation::DELETE,
    operation::ALTER,
    operation::DESCRIBE,
    operation::DESCRIBE_CONFIGS,
    operation::ALTER_CONFIGS,
];
const CLUSTER_OPERATIONS: &[i8] = &[
    operation::CREATE,
    operation::ALTER,
    operation::DESCRIBE,
    operation::CLUSTER_ACTION,
    operation::DESCRIBE_CONFIGS,
    operation::ALTER_CONFIGS,
    operation::IDEMPOTENT_WRITE,
];

/// DescribeTopicPartitions: topics by name (all when none are named), in
/// name order, at most `response_partition_limit` partitions per answer,
/// with a cursor to continue from.
pub async fn handle_describe_topic_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: kafka_protocol::messages::DescribeTopicPartitionsRequest,
) -> kafka_protocol::messages::DescribeTopicPartitionsResponse {
    use kafka_protocol::messages::describe_topic_partitions_response::{
        Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
    };
    let image = broker.image();
    let describable = |name: &str| broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, name);
    let mut names: Vec<String> = if req.topics.is_empty() {
        image
            .topics
            .iter()
            .filter(|t| describable(&t.name))
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
        let found = image.topics.get(&name).filter(|_| describable(&name));
        let Some(topic) = found else {
            let code = if describable(&name) {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::TopicAuthorizationFailed.code()
            };
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(code)
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
        for (index, p) in topic.partitions.iter().enumerate().skip(first) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(StrBytes::from_string(name.clone())))
                        .with_partition_index(index as i32),
                );
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(index as i32)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(broker_ids(&p.replicas))
                    .with_isr_nodes(broker_ids(&p.isr))
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
