//! CreateTopics, DeleteTopics and CreatePartitions.

use super::configs::topic_config_entries;
use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::cluster::{NewTopic, TopicError};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_response::{CreatePartitionsResponse, CreatePartitionsTopicResult};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}

pub async fn handle_create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    // Configs, partition count and replication factor are echoed from v5.
    let echo_configs = ctx.api_version >= 5;
    let mut seen: HashMap<TopicName, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.clone()).or_default() += 1;
    }
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.clone();
            let failed = |code: i16, msg: String| {
                CreatableTopicResult::default()
                    .with_name(name.clone())
                    .with_error_code(code)
                    .with_error_message(message(msg))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            };
            let may_create = broker.authorize_cluster(ctx, operation::CREATE)
                || broker.authorize(ctx, operation::CREATE, resource::TOPIC, &t.name);
            if !may_create {
                return failed(
                    ResponseError::TopicAuthorizationFailed.code(),
                    "Authorization failed.".to_string(),
                );
            }
            if crate::cluster::topic_name::is_internal(&t.name) {
                return failed(
                    ResponseError::InvalidRequest.code(),
                    format!("Creation of internal topic {} is prohibited.", &*t.name),
                );
            }
            if seen[&t.name] > 1 {
                return failed(
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "Create topics request from client contains multiple entries for topic {}",
                        &*t.name
                    ),
                );
            }
            let new = match new_topic(broker, t) {
                Ok(n) => n,
                Err(e) => return failed(e.code(), e.to_string()),
            };
            match broker.cluster.create_topic(new, req.validate_only) {
                Ok(topic) => {
                    let configs = topic_config_entries(broker, &topic.configs)
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_string(e.name.to_string()))
                                .with_value(e.value.map(StrBytes::from_string))
                                .with_read_only(false)
                                .with_config_source(e.source as i8)
                                .with_is_sensitive(false)
                        })
                        .collect();
                    CreatableTopicResult::default()
                        .with_name(name.clone())
                        .with_topic_id(if req.validate_only { Uuid::nil() } else { topic.id })
                        .with_num_partitions(if req.validate_only {
                            -1
                        } else {
                            topic.partitions.len() as i32
                        })
                        .with_replication_factor(1)
                        .with_configs(echo_configs.then_some(configs))
                }
                Err(e) => failed(e.code(), e.to_string()),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Applies defaults (-1) and checks manual assignments.
fn new_topic(broker: &Broker, t: CreatableTopic) -> Result<NewTopic, TopicError> {
    let node = broker.cluster.node_id();
    let mut configs = BTreeMap::new();
    for c in t.configs {
        let Some(value) = c.value else {
            return Err(TopicError::InvalidConfig(format!(
                "Null value not supported for topic config: {}",
                &*c.name
            )));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    let (partitions, replication_factor) = if t.assignments.is_empty() {
        let p = if t.num_partitions == -1 {
            broker.cluster.default_partitions()
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor == -1 {
            broker.cluster.default_replication_factor()
        } else {
            t.replication_factor
        };
        (p, rf)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(TopicError::InvalidReplicaAssignment(
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
            return Err(TopicError::InvalidReplicaAssignment(
                "Partitions should be consecutive starting from 0.".into(),
            ));
        }
        for a in &t.assignments {
            if a.broker_ids.is_empty() {
                return Err(TopicError::InvalidReplicaAssignment(
                    "Replica assignment is empty.".into(),
                ));
            }
            if let Some(b) = a.broker_ids.iter().find(|b| ***b != node) {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "Replica assignment for partition {} names broker {}, which is not registered.",
                    a.partition_index, **b
                )));
            }
        }
        let rf = t.assignments[0].broker_ids.len() as i16;
        (t.assignments.len() as i32, rf)
    };
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions,
        replication_factor,
        configs,
    })
}

pub async fn handle_delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions by name only.
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.api_version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => broker.cluster.topic(n),
                None => broker.cluster.topic_by_id(id),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            if let Some(t) = &topic {
                if !broker.authorize(ctx, operation::DELETE, resource::TOPIC, &t.name) {
                    return result
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_error_message(message("Authorization failed."));
                }
            }
            let Some(topic) = topic else {
                let code = if name.is_none() {
                    ResponseError::UnknownTopicId.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                return result
                    .with_error_code(code)
                    .with_error_message(message("This server does not host this topic."));
            };
            match broker.cluster.delete_topic(&topic.name) {
                Ok(t) => result
                    .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                    .with_topic_id(t.id),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(message(e.to_string())),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn handle_create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let node = broker.cluster.node_id();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if !broker.authorize(ctx, operation::ALTER, resource::TOPIC, &t.name) {
                return result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(message("Authorization failed."));
            }
            if let Some(assignments) = &t.assignments {
                let bad = assignments
                    .iter()
                    .flat_map(|a| a.broker_ids.iter())
                    .find(|b| ***b != node);
                if let Some(b) = bad {
                    return result
                        .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                        .with_error_message(message(format!("Unknown broker id {}", **b)));
                }
            }
            match broker.cluster.create_partitions(&t.name, t.count, req.validate_only) {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(message(e.to_string())),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
