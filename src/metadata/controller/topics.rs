//! Topic operations of the controller: CreateTopics, DeleteTopics and
//! CreatePartitions, checked as Kafka's ReplicationControlManager checks
//! them, with its wording. Every count a client sends is checked against
//! the records it would make before anything is allocated for it.

use super::{
    Controller, ControllerConfig, ControllerError, ControllerResult, MAX_PARTITIONS_PER_BATCH, MAX_RECORDS_PER_USER_OP,
};
use crate::config::topic::{topic_config_def, validate_value};
use crate::config::ConfigError;
use crate::metadata::image::MetadataImage;
use crate::metadata::placement::{self, StripedReplicaPlacer};
use crate::metadata::records::{ConfigResource, MetadataRecord, PartitionRecord};
use crate::metadata::{new_uuid, topic_name};
use std::collections::{BTreeMap, HashSet};
use tracing::debug;
use uuid::Uuid;

/// A topic to create, with the request's defaults (-1) already applied.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Replicas of each partition, when the request gives them.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// What CreateTopics reports of a created (or validated) topic.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CreatedTopic {
    /// Nil when only validated.
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// A CreatePartitions entry: grow `name` to `count` partitions.
#[derive(Debug, Clone)]
pub struct PartitionCount {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

type PerTopic<T> = Vec<Result<T, ControllerError>>;

/// Checks topic config overrides: known keys, valid values.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    for (k, v) in configs {
        let def = topic_config_def(k)
            .ok_or_else(|| ControllerError::InvalidConfig(format!("Unknown topic config name: {k}")))?;
        validate_value(def, v).map_err(|e| match e {
            ConfigError::InvalidValue { key, value, reason } => {
                ControllerError::InvalidConfig(format!("Invalid value {value} for configuration {key}: {reason}"))
            }
            other => ControllerError::InvalidConfig(other.to_string()),
        })?;
    }
    Ok(())
}

use crate::quorum::rpc::{ControllerOp, ControllerOpReply};

impl Controller {
    /// CreateTopics. The whole request fails (every topic with
    /// POLICY_VIOLATION) when it would make more than 10,000 records.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<PerTopic<CreatedTopic>, ControllerError> {
        match self.run(ControllerOp::CreateTopics { topics, validate_only }).await? {
            ControllerOpReply::CreateTopics(results) => Ok(results),
            other => Err(ControllerError::QuorumUnavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    pub(super) async fn create_topics_here(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<PerTopic<CreatedTopic>, ControllerError> {
        let results = self
            .write(move |image, config| {
                let mut placer = self.placer();
                create_topics(image, config, &mut placer, topics, validate_only)
            })
            .await??;
        Ok(results)
    }

    /// DeleteTopics of topics that exist (the handler resolved names and ids).
    pub async fn delete_topics(&self, names: Vec<String>) -> Result<PerTopic<Uuid>, ControllerError> {
        self.write(move |image, config| delete_topics(image, config, names))
            .await
    }

    pub async fn create_partitions(
        &self,
        topics: Vec<PartitionCount>,
        validate_only: bool,
    ) -> Result<PerTopic<()>, ControllerError> {
        let results = self
            .write(move |image, config| {
                let mut placer = self.placer();
                create_partitions(image, config, &mut placer, topics, validate_only)
            })
            .await??;
        Ok(results)
    }
}

fn create_topics(
    image: &MetadataImage,
    config: &ControllerConfig,
    placer: &mut StripedReplicaPlacer,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> ControllerResult<Result<PerTopic<CreatedTopic>, ControllerError>> {
    // Kafka counts what each topic asks for before checking anything else.
    let asked: i64 = topics
        .iter()
        .map(|t| match &t.assignments {
            Some(a) => a.len() as i64,
            None => t.partitions.max(0) as i64,
        })
        .sum();
    if asked > MAX_PARTITIONS_PER_BATCH {
        return ControllerResult::none(Err(ControllerError::TooManyPartitions));
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    let mut created_here: Vec<String> = Vec::new();
    let mut budget = MAX_RECORDS_PER_USER_OP;
    for new in topics {
        let result = check_new_topic(image, config, placer, &new, &created_here).and_then(|replicas| {
            // One TopicRecord, a PartitionRecord per partition, a ConfigRecord per config.
            let needed = 1 + replicas.len() + new.configs.len();
            budget = budget
                .checked_sub(needed)
                .ok_or(ControllerError::ExcessivelyLargeBatch)?;
            Ok(replicas)
        });
        let replicas = match result {
            Ok(r) => r,
            Err(ControllerError::ExcessivelyLargeBatch) => {
                return ControllerResult::none(Err(ControllerError::ExcessivelyLargeBatch))
            }
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        let replication_factor = replicas.first().map_or(0, |r| r.len() as i16);
        let created = CreatedTopic {
            // Kafka answers a validation with an id too (one never used).
            id: new_uuid(),
            partitions: replicas.len() as i32,
            replication_factor,
            configs: new.configs.clone(),
        };
        if !validate_only {
            records.push(MetadataRecord::Topic {
                name: new.name.clone(),
                topic_id: created.id,
            });
            for (p, replicas) in replicas.into_iter().enumerate() {
                records.push(new_partition(image, config, created.id, p as i32, replicas));
            }
            for (name, value) in &new.configs {
                records.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(new.name.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
            debug!(topic = %new.name, partitions = created.partitions, "creating topic");
        }
        created_here.push(new.name);
        results.push(Ok(created));
    }
    ControllerResult::of(records, Ok(results))
}

/// A new partition's record: its ISR is its active replicas (Kafka leaves
/// fenced ones out), the first of them leads. Placement and the checks on a
/// manual assignment made sure there is one.
fn new_partition(
    image: &MetadataImage,
    config: &ControllerConfig,
    topic_id: Uuid,
    partition: i32,
    replicas: Vec<i32>,
) -> MetadataRecord {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| placement::is_active(image, config.node_id, *b))
        .collect();
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        leader: isr.first().copied().unwrap_or(-1),
        isr,
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        ..Default::default()
    })
}

/// The replicas of each partition of a valid new topic.
fn check_new_topic(
    image: &MetadataImage,
    config: &ControllerConfig,
    placer: &mut StripedReplicaPlacer,
    new: &NewTopic,
    created_here: &[String],
) -> Result<Vec<Vec<i32>>, ControllerError> {
    topic_name::validate(&new.name).map_err(ControllerError::InvalidTopic)?;
    if image.topics.get(&new.name).is_some() || created_here.contains(&new.name) {
        return Err(ControllerError::TopicAlreadyExists(new.name.clone()));
    }
    let key = topic_name::collision_key(&new.name);
    let collides = image
        .topics
        .names()
        .chain(created_here.iter())
        .find(|t| topic_name::collision_key(t) == key);
    if let Some(other) = collides {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {other}",
            new.name
        )));
    }
    let replicas = match &new.assignments {
        Some(assignments) => {
            placement::check_assignments(image, config.node_id, 0, None, assignments)?;
            assignments.clone()
        }
        None => {
            // Kafka's createTopic checks (the defaults are applied already).
            if new.replication_factor <= 0 {
                return Err(ControllerError::InvalidReplicationFactor(
                    "Replication factor must be larger than 0, or -1 to use the default value.".into(),
                ));
            }
            if new.partitions <= 0 {
                return Err(ControllerError::InvalidPartitions(
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ));
            }
            // Bounded before anything is allocated for the partitions.
            if new.partitions as usize + 1 + new.configs.len() > MAX_RECORDS_PER_USER_OP {
                return Err(ControllerError::ExcessivelyLargeBatch);
            }
            placement::place(placer, image, config.node_id, 0, new.partitions, new.replication_factor)
                .map_err(|e| placement::unable_to_replicate(new.replication_factor, e))?
        }
    };
    validate_topic_configs(&new.configs)?;
    Ok(replicas)
}

fn delete_topics(
    image: &MetadataImage,
    config: &ControllerConfig,
    names: Vec<String>,
) -> ControllerResult<PerTopic<Uuid>> {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(names.len());
    let mut deleted = HashSet::new();
    for name in names {
        let result = match image.topics.get(&name) {
            _ if !config.delete_topic_enable => Err(ControllerError::TopicDeletionDisabled),
            Some(t) if deleted.insert(t.id) => {
                records.push(MetadataRecord::RemoveTopic { topic_id: t.id });
                debug!(topic = %name, "deleting topic");
                Ok(t.id)
            }
            _ => Err(ControllerError::UnknownTopicOrPartition),
        };
        results.push(result);
    }
    ControllerResult::of(records, results)
}

fn create_partitions(
    image: &MetadataImage,
    config: &ControllerConfig,
    placer: &mut StripedReplicaPlacer,
    topics: Vec<PartitionCount>,
    validate_only: bool,
) -> ControllerResult<Result<PerTopic<()>, ControllerError>> {
    // Partitions added to topics that exist, counted before anything else.
    let adding: i64 = topics
        .iter()
        .filter_map(|t| Some(t.count as i64 - image.topics.get(&t.name)?.partitions.len() as i64))
        .filter(|n| *n > 0)
        .sum();
    if adding > MAX_PARTITIONS_PER_BATCH {
        return ControllerResult::none(Err(ControllerError::TooManyAdditionalPartitions));
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    let mut budget = MAX_RECORDS_PER_USER_OP;
    for t in topics {
        let result = grow(image, config, placer, &t).and_then(|(topic_id, start, replicas)| {
            budget = budget
                .checked_sub(replicas.len())
                .ok_or(ControllerError::ExcessivelyLargeBatch)?;
            Ok((topic_id, start, replicas))
        });
        match result {
            Ok((topic_id, start, replicas)) => {
                if !validate_only {
                    for (i, replicas) in replicas.into_iter().enumerate() {
                        records.push(new_partition(image, config, topic_id, start + i as i32, replicas));
                    }
                    debug!(topic = %t.name, to = t.count, "adding partitions");
                }
                results.push(Ok(()));
            }
            Err(ControllerError::ExcessivelyLargeBatch) => {
                return ControllerResult::none(Err(ControllerError::ExcessivelyLargeBatch))
            }
            Err(e) => results.push(Err(e)),
        }
    }
    ControllerResult::of(records, Ok(results))
}

/// The topic's id, its first new partition and the new partitions' replicas.
fn grow(
    image: &MetadataImage,
    config: &ControllerConfig,
    placer: &mut StripedReplicaPlacer,
    t: &PartitionCount,
) -> Result<(Uuid, i32, Vec<Vec<i32>>), ControllerError> {
    let topic = image
        .topics
        .get(&t.name)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let current = topic.partitions.len() as i32;
    if t.count == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic already has {current} partition(s)."
        )));
    }
    if t.count < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "The topic {} currently has {current} partition(s); {} would not be an increase.",
            t.name, t.count
        )));
    }
    let additional = t.count - current;
    let replication_factor = topic.partitions.first().map_or(1, |p| p.replicas.len() as i16);
    let replicas = match &t.assignments {
        Some(a) => {
            if a.len() != additional as usize {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                    a.len()
                )));
            }
            placement::check_assignments(image, config.node_id, current, Some(replication_factor as usize), a)?;
            a.clone()
        }
        None => placement::place(placer, image, config.node_id, current, additional, replication_factor)?,
    };
    Ok((topic.id, current, replicas))
}
