//! The cluster's metadata: this node, its topics (ids, partitions, config
//! overrides) and their partition logs, kept durable by the `MetadataStore`.
//! A single node is a complete cluster of one: it leads every partition.

pub mod ids;
pub mod metadata_store;
pub mod topic_name;

pub use ids::{new_uuid, parse_topic_id, topic_id_string};

use crate::auth::acl::{AclBinding, AclFilter};
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::config::topic::{
    is_topic_default_key, topic_config_def, validate_value, ConfigSource, LogConfig, TopicDefaults,
};
use crate::config::{BrokerConfig, ConfigError};
use crate::storage::{LogManager, Partition};
pub use metadata_store::ClientQuota;
use metadata_store::{write_meta_properties, MetadataRecord, MetadataStore, TopicRecord};

/// A change to one entity's quotas: values to set (Some) or remove (None).
pub struct QuotaChange {
    pub entity: Vec<(String, Option<String>)>,
    pub ops: Vec<(String, Option<f64>)>,
}
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use thiserror::Error;
use tracing::{info, warn};
use uuid::Uuid;

/// Producer ids are reserved on disk in blocks, so that ids are never reused
/// across restarts without a write per id.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub log_config: LogConfig,
    pub partitions: Vec<Arc<Partition>>,
    /// Traffic counters; they live as long as the topic (kept when its
    /// configs or partitions change, gone when it is deleted).
    pub stats: Arc<TopicStats>,
}

/// A topic's traffic since the broker started, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct TopicStats {
    pub bytes_in: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_out: AtomicU64,
    pub produce_requests: AtomicU64,
    pub fetch_requests: AtomicU64,
}

impl TopicStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Topic {
    pub fn is_internal(&self) -> bool {
        topic_name::is_internal(&self.name)
    }

    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }
}

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("This server does not host this topic-partition.")]
    Unknown,
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("Topic deletion is disabled.")]
    DeletionDisabled,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// Not allowed: on a topic (true) or on the cluster (false).
    #[error("Authorization failed.")]
    NotAuthorized(bool),
}

impl TopicError {
    pub fn code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TopicError::AlreadyExists(_) => E::TopicAlreadyExists.code(),
            TopicError::InvalidName(_) => E::InvalidTopicException.code(),
            TopicError::Unknown => E::UnknownTopicOrPartition.code(),
            TopicError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            TopicError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor.code(),
            TopicError::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment.code(),
            TopicError::InvalidConfig(_) => E::InvalidConfig.code(),
            TopicError::DeletionDisabled => E::TopicDeletionDisabled.code(),
            TopicError::Storage(_) => E::KafkaStorageError.code(),
            TopicError::InvalidRequest(_) => E::InvalidRequest.code(),
            TopicError::NotAuthorized(true) => E::TopicAuthorizationFailed.code(),
            TopicError::NotAuthorized(false) => E::ClusterAuthorizationFailed.code(),
        }
    }
}

/// A request to create a topic, with defaults already applied.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Default)]
struct Image {
    topics: BTreeMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
    /// Broker configs set at run time: for this broker, and for all brokers.
    broker_configs: BTreeMap<String, String>,
    default_broker_configs: BTreeMap<String, String>,
    /// The topic defaults these (and the static configs) resolve to.
    defaults: TopicDefaults,
    scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    acls: Arc<Vec<AclBinding>>,
    client_quotas: Arc<Vec<ClientQuota>>,
}

impl Image {
    fn insert(&mut self, topic: Arc<Topic>) {
        self.by_id.insert(topic.id, topic.clone());
        self.topics.insert(topic.name.clone(), topic);
    }
}

pub struct Cluster {
    node_id: i32,
    cluster_id: String,
    logs: LogManager,
    store: MetadataStore,
    /// The broker's own configuration file and overrides.
    static_configs: BTreeMap<String, String>,
    default_partitions: i32,
    default_replication_factor: i16,
    delete_topic_enable: bool,
    image: RwLock<Image>,
    next_producer_id: Mutex<i64>,
    producer_id_block_end: AtomicI64,
}

/// What opening the cluster found, for the start-up log line.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub topics: usize,
    pub partitions: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
    pub clean_shutdown: bool,
}

impl Cluster {
    /// Opens the log directories and loads every topic's partitions.
    pub fn open(config: &BrokerConfig) -> io::Result<(Cluster, OpenReport)> {
        let logs = LogManager::open(&config.log_dirs)?;
        let store = MetadataStore::new(logs.primary_dir());
        let record = match store.load()? {
            Some(r) => r,
            None => MetadataRecord {
                cluster_id: config.cluster_id.clone().unwrap_or_else(|| topic_id_string(new_uuid())),
                // Kafka's KRaft bootstrap writes this cluster-wide dynamic default.
                default_broker_configs: BTreeMap::from([("min.insync.replicas".to_string(), "1".to_string())]),
                ..Default::default()
            },
        };
        let mut report = OpenReport {
            clean_shutdown: logs.was_clean_shutdown(),
            ..Default::default()
        };
        let static_configs: BTreeMap<String, String> =
            config.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let defaults = resolve_defaults(&record.broker_configs, &record.default_broker_configs, &static_configs)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let mut image = Image {
            broker_configs: record.broker_configs.clone(),
            default_broker_configs: record.default_broker_configs.clone(),
            defaults,
            scram: record.scram_credentials.clone(),
            acls: Arc::new(record.acls.clone()),
            client_quotas: Arc::new(record.client_quotas.clone()),
            ..Image::default()
        };
        for t in &record.topics {
            let id = parse_topic_id(&t.id).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad topic id {} for {}", t.id, t.name),
                )
            })?;
            let log_config = LogConfig::resolve(&image.defaults, &t.configs);
            let mut partitions = Vec::new();
            for p in 0..t.partitions {
                let (partition, load) = logs
                    .open_partition(&t.name, p, id, log_config.clone())
                    .map_err(|e| io::Error::other(format!("loading {}-{p}: {e}", t.name)))?;
                if let Some(reason) = &load.truncation_reason {
                    warn!(topic = %t.name, partition = p, bytes = load.truncated_bytes, reason = %reason,
                        "truncated an invalid tail of the log");
                }
                report.recovered_segments += load.recovered_segments;
                report.truncated_bytes += load.truncated_bytes;
                partitions.push(partition);
            }
            report.partitions += partitions.len();
            image.insert(Arc::new(Topic {
                name: t.name.clone(),
                id,
                configs: t.configs.clone(),
                log_config,
                partitions,
                stats: Arc::default(),
            }));
        }
        report.topics = image.topics.len();
        for (topic, p) in logs.partitions_on_disk() {
            let known = image.topics.get(&topic).is_some_and(|t| p < t.partitions.len() as i32);
            if !known {
                warn!(topic = %topic, partition = p, "partition directory belongs to no known topic; left untouched");
            }
        }
        for dir in &config.log_dirs {
            write_meta_properties(dir, &record.cluster_id, config.node_id)?;
        }
        let block_end = record.producer_id_block_end;
        let cluster = Cluster {
            node_id: config.node_id,
            cluster_id: record.cluster_id.clone(),
            logs,
            store,
            static_configs,
            default_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            delete_topic_enable: config.delete_topic_enable,
            image: RwLock::new(image),
            // Ids below the saved block end may have been handed out before a crash.
            next_producer_id: Mutex::new(block_end),
            producer_id_block_end: AtomicI64::new(block_end),
        };
        cluster.save(&cluster.read_image())?;
        if !config.initial_scram.is_empty() {
            cluster
                .alter_scram(config.initial_scram.clone(), Vec::new())
                .map_err(|e| io::Error::other(e.to_string()))?;
            info!(
                credentials = config.initial_scram.len(),
                "added SCRAM credentials given with --add-scram"
            );
        }
        Ok((cluster, report))
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn default_partitions(&self) -> i32 {
        self.default_partitions
    }

    pub fn default_replication_factor(&self) -> i16 {
        self.default_replication_factor
    }

    /// The current topic defaults (static and dynamic broker configs resolved).
    pub fn topic_defaults(&self) -> TopicDefaults {
        self.read_image().defaults.clone()
    }

    /// Broker configs changed at run time: (this broker's, every broker's).
    pub fn dynamic_broker_configs(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let image = self.read_image();
        (image.broker_configs.clone(), image.default_broker_configs.clone())
    }

    fn read_image(&self) -> RwLockReadGuard<'_, Image> {
        self.image.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_image().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_image().by_id.get(&id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_image().topics.values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic).and_then(|t| t.partition(index).cloned())
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.read_image()
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    fn save(&self, image: &Image) -> io::Result<()> {
        let record = MetadataRecord {
            cluster_id: self.cluster_id.clone(),
            topics: image
                .topics
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: topic_id_string(t.id),
                    partitions: t.partitions.len() as i32,
                    configs: t.configs.clone(),
                })
                .collect(),
            producer_id_block_end: self.producer_id_block_end.load(Ordering::SeqCst),
            broker_configs: image.broker_configs.clone(),
            default_broker_configs: image.default_broker_configs.clone(),
            scram_credentials: image.scram.clone(),
            acls: image.acls.as_ref().clone(),
            client_quotas: image.client_quotas.as_ref().clone(),
        };
        self.store.save(&record)
    }

    /// Checks topic config overrides: known keys, valid values.
    pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
        for (k, v) in configs {
            let def = topic_config_def(k)
                .ok_or_else(|| TopicError::InvalidConfig(format!("Unknown topic config name: {k}")))?;
            validate_value(def, v).map_err(|e| match e {
                ConfigError::InvalidValue { key, value, reason } => {
                    TopicError::InvalidConfig(format!("Invalid value {value} for configuration {key}: {reason}"))
                }
                other => TopicError::InvalidConfig(other.to_string()),
            })?;
        }
        Ok(())
    }

    /// Creates a topic and its partition logs (or only checks, when `validate_only`).
    pub fn create_topic(&self, new: NewTopic, validate_only: bool) -> Result<Arc<Topic>, TopicError> {
        topic_name::validate(&new.name).map_err(TopicError::InvalidName)?;
        if new.partitions <= 0 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if new.replication_factor <= 0 {
            return Err(TopicError::InvalidReplicationFactor(
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if new.replication_factor > 1 {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.",
                new.replication_factor, new.replication_factor
            )));
        }
        Self::validate_configs(&new.configs)?;
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        if image.topics.contains_key(&new.name) {
            return Err(TopicError::AlreadyExists(new.name));
        }
        let key = topic_name::collision_key(&new.name);
        if let Some(other) = image.topics.keys().find(|t| topic_name::collision_key(t) == key) {
            return Err(TopicError::InvalidName(format!(
                "Topic '{}' collides with existing topic: {other}",
                new.name
            )));
        }
        let id = new_uuid();
        let log_config = LogConfig::resolve(&image.defaults, &new.configs);
        if validate_only {
            return Ok(Arc::new(Topic {
                name: new.name,
                id,
                configs: new.configs,
                log_config,
                partitions: Vec::new(),
                stats: Arc::default(),
            }));
        }
        let mut partitions = Vec::with_capacity(new.partitions as usize);
        for p in 0..new.partitions {
            let (partition, _) = self
                .logs
                .open_partition(&new.name, p, id, log_config.clone())
                .map_err(|e| TopicError::Storage(e.to_string()))?;
            partitions.push(partition);
        }
        let topic = Arc::new(Topic {
            name: new.name.clone(),
            id,
            configs: new.configs,
            log_config,
            partitions,
            stats: Arc::default(),
        });
        image.insert(topic.clone());
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        info!(topic = %topic.name, partitions = topic.partitions.len(), id = %topic_id_string(id), "created topic");
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        if !self.delete_topic_enable {
            return Err(TopicError::DeletionDisabled);
        }
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let topic = image.topics.remove(name).ok_or(TopicError::Unknown)?;
        image.by_id.remove(&topic.id);
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        drop(image);
        for p in &topic.partitions {
            self.logs.delete_partition(p);
            p.wake_waiters();
        }
        info!(topic = %name, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let topic = image.topics.get(name).cloned().ok_or(TopicError::Unknown)?;
        let current = topic.partitions.len() as i32;
        if count < current {
            return Err(TopicError::InvalidPartitions(format!(
                "The topic {name} currently has {current} partition(s); {count} would not be an increase."
            )));
        }
        if count == current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        for p in current..count {
            let (partition, _) = self
                .logs
                .open_partition(name, p, topic.id, topic.log_config.clone())
                .map_err(|e| TopicError::Storage(e.to_string()))?;
            partitions.push(partition);
        }
        image.insert(Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            configs: topic.configs.clone(),
            log_config: topic.log_config.clone(),
            partitions,
            stats: topic.stats.clone(),
        }));
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        info!(topic = %name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Changes a topic's config overrides: `edit` gets the current ones. The
    /// new configs apply to the topic's logs at once and are kept.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), TopicError>,
    ) -> Result<(), TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let topic = image.topics.get(name).cloned().ok_or(TopicError::Unknown)?;
        let mut configs = topic.configs.clone();
        edit(&mut configs)?;
        Self::validate_configs(&configs)?;
        if validate_only {
            return Ok(());
        }
        let log_config = LogConfig::resolve(&image.defaults, &configs);
        for p in &topic.partitions {
            p.log().set_config(log_config.clone());
        }
        image.insert(Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            configs,
            log_config,
            partitions: topic.partitions.clone(),
            stats: topic.stats.clone(),
        }));
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        info!(topic = %name, "changed topic configs");
        Ok(())
    }

    /// Changes broker configs at run time, for this broker (`per_broker`) or
    /// as every broker's default. Only the keys that set topic defaults may
    /// change; every topic without its own override follows.
    pub fn alter_broker_configs(
        &self,
        per_broker: bool,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), TopicError>,
    ) -> Result<(), TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let mut configs = if per_broker {
            image.broker_configs.clone()
        } else {
            image.default_broker_configs.clone()
        };
        edit(&mut configs)?;
        let fixed: Vec<&String> = configs.keys().filter(|k| !is_topic_default_key(k)).collect();
        if !fixed.is_empty() {
            return Err(TopicError::InvalidRequest(format!(
                "Cannot update these configs dynamically: {fixed:?}"
            )));
        }
        let (broker, default) = if per_broker {
            (&configs, &image.default_broker_configs)
        } else {
            (&image.broker_configs, &configs)
        };
        let defaults = resolve_defaults(broker, default, &self.static_configs)
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        if per_broker {
            image.broker_configs = configs;
        } else {
            image.default_broker_configs = configs;
        }
        image.defaults = defaults;
        let topics: Vec<Arc<Topic>> = image.topics.values().cloned().collect();
        for topic in topics {
            let log_config = LogConfig::resolve(&image.defaults, &topic.configs);
            for p in &topic.partitions {
                p.log().set_config(log_config.clone());
            }
            image.insert(Arc::new(Topic {
                name: topic.name.clone(),
                id: topic.id,
                configs: topic.configs.clone(),
                log_config,
                partitions: topic.partitions.clone(),
                stats: topic.stats.clone(),
            }));
        }
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        info!(per_broker, "changed broker configs");
        Ok(())
    }

    /// The SCRAM credential of a user for a mechanism.
    pub fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.read_image()
            .scram
            .get(user)
            .and_then(|m| m.get(&mechanism))
            .cloned()
    }

    /// Users with SCRAM credentials: (user, [(mechanism, iterations)]).
    pub fn scram_users(&self) -> Vec<(String, Vec<(ScramMechanism, i32)>)> {
        self.read_image()
            .scram
            .iter()
            .map(|(user, m)| (user.clone(), m.iter().map(|(k, c)| (*k, c.iterations)).collect()))
            .collect()
    }

    /// Adds, replaces and removes SCRAM credentials, all saved at once.
    /// Removing one that does not exist is reported per entry.
    pub fn alter_scram(
        &self,
        upserts: Vec<(String, ScramMechanism, ScramCredential)>,
        deletions: Vec<(String, ScramMechanism)>,
    ) -> Result<Vec<bool>, TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let mut found = Vec::with_capacity(deletions.len());
        for (user, mechanism) in deletions {
            let removed = image.scram.get_mut(&user).and_then(|m| m.remove(&mechanism)).is_some();
            if image.scram.get(&user).is_some_and(|m| m.is_empty()) {
                image.scram.remove(&user);
            }
            found.push(removed);
        }
        for (user, mechanism, credential) in upserts {
            image.scram.entry(user).or_default().insert(mechanism, credential);
        }
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        Ok(found)
    }

    /// Every ACL (a shared snapshot: the authorizer reads it per request).
    pub fn acls(&self) -> Arc<Vec<AclBinding>> {
        self.read_image().acls.clone()
    }

    pub fn create_acls(&self, new: Vec<AclBinding>) -> Result<(), TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let mut acls = image.acls.as_ref().clone();
        for b in new {
            if !acls.contains(&b) {
                acls.push(b);
            }
        }
        image.acls = Arc::new(acls);
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))
    }

    /// Removes the ACLs each filter matches; returns them per filter.
    pub fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let acls = image.acls.as_ref().clone();
        let matched: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| acls.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let remaining: Vec<AclBinding> = acls
            .into_iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .collect();
        image.acls = Arc::new(remaining);
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))?;
        Ok(matched)
    }

    /// Every entity's client quotas (a shared snapshot: read per request).
    pub fn client_quotas(&self) -> Arc<Vec<ClientQuota>> {
        self.read_image().client_quotas.clone()
    }

    /// Sets and removes quota values, entity by entity; an entity left with
    /// no value is forgotten.
    pub fn alter_client_quotas(&self, changes: &[QuotaChange]) -> Result<(), TopicError> {
        let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
        let mut quotas = image.client_quotas.as_ref().clone();
        for change in changes {
            let index = match quotas.iter().position(|q| q.entity == change.entity) {
                Some(i) => i,
                None => {
                    quotas.push(ClientQuota {
                        entity: change.entity.clone(),
                        values: BTreeMap::new(),
                    });
                    quotas.len() - 1
                }
            };
            for (key, value) in &change.ops {
                match value {
                    Some(v) => quotas[index].values.insert(key.clone(), *v),
                    None => quotas[index].values.remove(key),
                };
            }
        }
        quotas.retain(|q| !q.values.is_empty());
        image.client_quotas = Arc::new(quotas);
        self.save(&image).map_err(|e| TopicError::Storage(e.to_string()))
    }

    /// Hands out a new producer id, reserving a block on disk when needed.
    pub fn allocate_producer_id(&self) -> io::Result<i64> {
        let mut next = self.next_producer_id.lock().unwrap_or_else(|e| e.into_inner());
        if *next >= self.producer_id_block_end.load(Ordering::SeqCst) {
            self.producer_id_block_end
                .store(*next + PRODUCER_ID_BLOCK, Ordering::SeqCst);
            self.save(&self.read_image())?;
        }
        let id = *next;
        *next += 1;
        Ok(id)
    }

    /// Notified when recovery points have moved and should be checkpointed.
    pub fn checkpoint_wanted(&self) -> Arc<tokio::sync::Notify> {
        self.logs.checkpoint_wanted().clone()
    }

    /// Writes the checkpoint files (recovery points, log start offsets).
    pub fn checkpoint(&self) -> io::Result<()> {
        self.logs.checkpoint(&self.all_partitions())
    }

    /// Closes every log cleanly.
    pub fn shutdown(&self) -> io::Result<()> {
        self.logs.shutdown(&self.all_partitions())
    }
}

/// Topic defaults from the broker's layers of configuration, most specific first.
fn resolve_defaults(
    broker: &BTreeMap<String, String>,
    default: &BTreeMap<String, String>,
    statics: &BTreeMap<String, String>,
) -> Result<TopicDefaults, crate::config::ConfigError> {
    TopicDefaults::from_layers(&[
        (broker, ConfigSource::DynamicBroker),
        (default, ConfigSource::DynamicDefaultBroker),
        (statics, ConfigSource::StaticBroker),
    ])
}
