//! CreateTopics, DeleteTopics and CreatePartitions.

use super::configs::topic_config_entries;
use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::metadata::controller::{NewTopic, PartitionCount};
use crate::metadata::ControllerError;
use crate::metadata::ControllerError as TopicError;
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
    let validate_only = req.validate_only;
    let mut seen: HashMap<TopicName, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.clone()).or_default() += 1;
    }
    let failed = |name: &TopicName, code: i16, msg: String| {
        CreatableTopicResult::default()
            .with_name(name.clone())
            .with_error_code(code)
            .with_error_message(message(msg))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    };
    let names: Vec<TopicName> = req.topics.iter().map(|t| t.name.clone()).collect();
    // Checks made here; what passes goes to the controller in one request.
    let mut decided: Vec<Option<CreatableTopicResult>> = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for t in req.topics {
        let name = t.name.clone();
        let may_create = broker.authorize_cluster(ctx, operation::CREATE)
            || broker.authorize(ctx, operation::CREATE, resource::TOPIC, &t.name);
        let refusal = if !may_create {
            Some((
                ResponseError::TopicAuthorizationFailed.code(),
                "Authorization failed.".to_string(),
            ))
        } else if crate::metadata::topic_name::is_internal(&t.name) {
            Some((
                ResponseError::InvalidRequest.code(),
                format!("Creation of internal topic {} is prohibited.", &*t.name),
            ))
        } else if seen[&t.name] > 1 {
            Some((
                ResponseError::InvalidRequest.code(),
                format!(
                    "Create topics request from client contains multiple entries for topic {}",
                    &*t.name
                ),
            ))
        } else {
            None
        };
        let refusal = refusal.or_else(|| match new_topic(broker, t) {
            Ok(new) => {
                wanted.push(new);
                None
            }
            Err(e) => Some((e.code(), e.to_string())),
        });
        decided.push(refusal.map(|(code, msg)| failed(&name, code, msg)));
    }
    let outcomes = if wanted.is_empty() {
        Ok(Vec::new())
    } else {
        broker.controller.create_topics(wanted, validate_only).await
    };
    let mut outcomes = match outcomes {
        Ok(o) => o.into_iter(),
        // Kafka's controller fails the whole request: every topic says why.
        Err(e) => {
            let topics = names.iter().map(|n| failed(n, e.code(), e.to_string())).collect();
            return CreateTopicsResponse::default().with_topics(topics);
        }
    };
    let topics = decided
        .into_iter()
        .zip(names)
        .map(|(decided, name)| {
            if let Some(result) = decided {
                return result;
            }
            match outcomes.next() {
                Some(Ok(created)) => {
                    if !validate_only {
                        tracing::info!(topic = %&*name, partitions = created.partitions, replication_factor = created.replication_factor, "created topic");
                    }
                    let configs = topic_config_entries(broker, &created.configs)
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
                    // Kafka answers a created topic with no message (null, not "").
                    CreatableTopicResult::default()
                        .with_name(name)
                        .with_error_message(None)
                        .with_topic_id(created.id)
                        .with_num_partitions(created.partitions)
                        .with_replication_factor(created.replication_factor)
                        .with_configs(echo_configs.then_some(configs))
                }
                Some(Err(e)) => failed(&name, e.code(), e.to_string()),
                None => failed(&name, ResponseError::UnknownServerError.code(), String::new()),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Applies defaults (-1) and checks a manual assignment's shape (the
/// controller checks its brokers).
fn new_topic(broker: &Broker, t: CreatableTopic) -> Result<NewTopic, TopicError> {
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
    let or_default = |value: i32, default: i32| if value == -1 { default } else { value };
    if t.assignments.is_empty() {
        return Ok(NewTopic {
            name: t.name.to_string(),
            partitions: or_default(t.num_partitions, broker.config.num_partitions),
            replication_factor: or_default(
                t.replication_factor as i32,
                broker.config.default_replication_factor as i32,
            ) as i16,
            configs,
            assignments: None,
        });
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(TopicError::InvalidReplicaAssignment(
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
        ));
    }
    let mut assignments = t.assignments;
    assignments.sort_by_key(|a| a.partition_index);
    if assignments
        .iter()
        .enumerate()
        .any(|(i, a)| a.partition_index != i as i32)
    {
        return Err(TopicError::InvalidReplicaAssignment(
            "Partitions should be consecutive starting from 0.".into(),
        ));
    }
    let assignments: Vec<Vec<i32>> = assignments
        .into_iter()
        .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
        .collect();
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions: assignments.len() as i32,
        replication_factor: assignments.first().map_or(0, |a| a.len() as i16),
        configs,
        assignments: Some(assignments),
    })
}

/// Why a topic is refused before the controller sees it: (code, message).
type Refusal = Option<(i16, String)>;

fn not_authorized() -> Refusal {
    Some((
        ResponseError::TopicAuthorizationFailed.code(),
        "Authorization failed.".into(),
    ))
}

/// A topic's outcome: refused here, or the controller's answer. Kafka
/// gives an unknown topic no message.
fn outcome<T>(refusal: Refusal, answers: &mut impl Iterator<Item = Result<T, ControllerError>>) -> Refusal {
    refusal.or_else(|| match answers.next() {
        Some(Err(ControllerError::UnknownTopicOrPartition)) => {
            Some((ControllerError::UnknownTopicOrPartition.code(), String::new()))
        }
        Some(Err(e)) => Some((e.code(), e.to_string())),
        _ => None,
    })
}

fn message_of(text: String) -> Option<StrBytes> {
    (!text.is_empty()).then(|| StrBytes::from_string(text))
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
    let image = broker.image();
    let mut checked = Vec::with_capacity(targets.len());
    let mut doomed = Vec::new();
    for (name, id) in targets {
        let topic = match &name {
            Some(n) => image.topics.get(n),
            None => image.topics.by_id(id),
        };
        let unknown = "This server does not host this topic.".to_string();
        let refusal = match topic {
            None if name.is_none() => Some((ResponseError::UnknownTopicId.code(), unknown)),
            None => Some((ResponseError::UnknownTopicOrPartition.code(), unknown)),
            Some(t) if !broker.authorize(ctx, operation::DELETE, resource::TOPIC, &t.name) => not_authorized(),
            Some(t) => {
                doomed.push(t.name.clone());
                None
            }
        };
        let known = topic.map(|t| (TopicName(StrBytes::from_string(t.name.clone())), t.id));
        checked.push((name, id, known, refusal));
    }
    let mut answers = match broker.controller.delete_topics(doomed).await {
        Ok(a) => a.into_iter(),
        Err(e) => vec![Err(e); checked.len()].into_iter(),
    };
    let responses = checked
        .into_iter()
        .map(|(name, id, known, refusal)| {
            let result = DeletableTopicResult::default().with_name(name).with_topic_id(id);
            let result = match (&refusal, known) {
                (None, Some((name, id))) => result.with_name(Some(name)).with_topic_id(id),
                _ => result,
            };
            match outcome(refusal, &mut answers) {
                None => result,
                Some((code, text)) => result.with_error_code(code).with_error_message(message(text)),
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
    let mut checked = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for t in req.topics {
        if !broker.authorize(ctx, operation::ALTER, resource::TOPIC, &t.name) {
            checked.push((t.name, not_authorized()));
            continue;
        }
        wanted.push(PartitionCount {
            name: t.name.to_string(),
            count: t.count,
            assignments: t.assignments.map(|a| {
                a.into_iter()
                    .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                    .collect()
            }),
        });
        checked.push((t.name, None));
    }
    let answers = if wanted.is_empty() {
        Ok(Vec::new())
    } else {
        broker.controller.create_partitions(wanted, req.validate_only).await
    };
    let mut answers = match answers {
        Ok(a) => a.into_iter(),
        // Kafka's controller fails the whole request: every topic says why.
        Err(e) => {
            for (_, refusal) in checked.iter_mut() {
                *refusal = Some((e.code(), e.to_string()));
            }
            Vec::new().into_iter()
        }
    };
    let results = checked
        .into_iter()
        .map(|(name, refusal)| {
            let result = CreatePartitionsTopicResult::default().with_name(name);
            match outcome(refusal, &mut answers) {
                None => result,
                Some((code, text)) => result.with_error_code(code).with_error_message(message_of(text)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
