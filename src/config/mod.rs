//! Broker configuration: Kafka's own key names, read from a `server.properties`
//! file and `--override key=value` pairs, checked once at start-up.

pub mod cluster;
pub mod connection_limits;
pub mod consumer_groups;
pub mod dynamic_broker;
pub mod group;
mod known_keys;
pub mod listener;
pub mod oauthbearer;
pub mod properties;
pub mod replication;
pub mod sasl;
pub mod security;
pub mod topic;

use cluster::{ClusterConfig, ClusterConfigError};
pub use consumer_groups::MigrationPolicy;
use consumer_groups::{consumer_assignors, migration_policy};
use indexmap::IndexMap;
use known_keys::{is_known_key, ACCEPTED_WITHOUT_EFFECT};
use listener::{parse_listeners, ListenerSpec};
use std::path::{Path, PathBuf};
use thiserror::Error;
use topic::TopicDefaults;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid value '{value}' for '{key}': {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    #[error("invalid override '{0}': expected key=value")]
    BadOverride(String),
    /// Keys that are each valid but that Kafka refuses together.
    #[error("{0}")]
    Cluster(#[from] ClusterConfigError),
}

impl ConfigError {
    /// The same error reported against another key (a broker key behind a topic key).
    pub fn renamed(self, key: &str) -> ConfigError {
        match self {
            ConfigError::InvalidValue { value, reason, .. } => ConfigError::InvalidValue {
                key: key.to_string(),
                value,
                reason,
            },
            other => other,
        }
    }
}

/// The transaction coordinator's settings (Kafka's `transaction.*` keys).
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    pub state_log_partitions: i32,
    /// `transaction.state.log.replication.factor` (a cluster's; a single node's is 1).
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`: the topic's min.insync.replicas.
    pub state_log_min_isr: i32,
    pub state_log_segment_bytes: u64,
    /// A producer may not ask for a longer transaction.timeout.ms.
    pub max_timeout_ms: i32,
    /// Idle transactional ids are forgotten after this long.
    pub id_expiration_ms: i64,
    pub abort_timed_out_interval_ms: u64,
    pub remove_expired_interval_ms: u64,
}

/// The share coordinator's settings (Kafka's `share.coordinator.*` keys):
/// where share groups' delivery state is kept (`__share_group_state`).
#[derive(Debug, Clone)]
pub struct ShareCoordinatorConfig {
    pub state_topic_partitions: i32,
    /// A cluster's; a single node's is 1.
    pub state_topic_replication_factor: i16,
    pub state_topic_min_isr: i32,
    pub state_topic_segment_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every key as the user gave it (file, then overrides), for DescribeConfigs.
    pub properties: IndexMap<String, String>,
    pub listeners: Vec<ListenerSpec>,
    pub advertised_listeners: Vec<ListenerSpec>,
    pub log_dirs: Vec<PathBuf>,
    pub node_id: i32,
    /// `broker.rack`: where this broker is, for rack-aware placement.
    pub broker_rack: Option<String>,
    pub cluster_id: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes`: bytes of requests read and not yet
    /// answered, all connections together; None (Kafka's -1): no limit.
    pub queued_max_request_bytes: Option<u64>,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: i32,
    /// KIP-848 consumer groups: `group.consumer.session.timeout.ms`.
    pub group_consumer_session_timeout_ms: i32,
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the first is the default.
    pub group_consumer_assignors: Vec<String>,
    pub group_consumer_max_size: i32,
    pub group_consumer_migration_policy: MigrationPolicy,
    pub group_max_session_timeout_ms: i32,
    pub offsets_retention_minutes: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offset_metadata_max_bytes: usize,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.topic.replication.factor` (a cluster's; a single node's is 1).
    pub offsets_topic_replication_factor: i16,
    pub retention_check_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points
    /// (and the other per-dir checkpoints) are written.
    pub checkpoint_interval_ms: u64,
    pub flush_scheduler_interval_ms: u64,
    /// Whether compacted topics are cleaned, and how often the cleaner looks.
    pub cleaner_enable: bool,
    pub cleaner_backoff_ms: u64,
    /// Memory of the cleaner's key map (`log.cleaner.dedupe.buffer.size`).
    pub cleaner_dedupe_buffer_size: usize,
    /// Client quotas are measured over this many windows of this many seconds.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: i64,
    pub producer_id_expiration_ms: i64,
    pub transactions: TransactionConfig,
    pub share_coordinator: ShareCoordinatorConfig,
    pub topic_defaults: TopicDefaults,
    pub security: security::SecurityConfig,
    /// Where the Prometheus scrape endpoint listens (`metrics.prometheus.address`); off when unset.
    pub metrics_address: Option<String>,
    /// `logging.format`: text (default) or json.
    pub log_json: bool,
    /// `logging.level`: a tracing filter, used when RUST_LOG is not set.
    pub log_level: String,
    /// The KRaft keys: roles, quorum, controller listeners.
    pub cluster: ClusterConfig,
    pub replication: replication::ReplicationConfig,
    /// `max.connections` and the other limits on connections (static keys).
    pub connection_limits: connection_limits::ConnectionLimitSettings,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions (KIP-227) held at once.
    pub fetch_session_cache_slots: usize,
    /// SCRAM credentials to create or replace at start (`--add-scram`).
    pub initial_scram: Vec<(
        String,
        crate::auth::scram::ScramMechanism,
        crate::auth::scram::ScramCredential,
    )>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::from_properties(IndexMap::new()).expect("the built-in defaults are valid")
    }
}

/// Result of loading: the config and the keys that nobody reads (to warn about).
pub struct LoadedConfig {
    pub config: BrokerConfig,
    pub unknown_keys: Vec<String>,
    pub ignored_keys: Vec<String>,
}

impl BrokerConfig {
    /// Reads the optional file, applies `key=value` overrides, and checks it all.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
        let mut props = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                properties::parse(&text)
            }
            None => IndexMap::new(),
        };
        for item in overrides {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
            if k.trim().is_empty() {
                return Err(ConfigError::BadOverride(item.clone()));
            }
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut unknown_keys = Vec::new();
        let mut ignored_keys = Vec::new();
        for key in props.keys() {
            if ACCEPTED_WITHOUT_EFFECT.contains(&key.as_str()) {
                ignored_keys.push(key.clone());
            } else if !is_known_key(key) {
                unknown_keys.push(key.clone());
            }
        }
        let config = BrokerConfig::from_properties(props)?;
        Ok(LoadedConfig {
            config,
            unknown_keys,
            ignored_keys,
        })
    }

    pub fn from_properties(props: IndexMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let get = |k: &str| props.get(k).map(|s| s.trim().to_string());
        let listeners = parse_listeners(
            "listeners",
            &get("listeners").unwrap_or_else(|| "PLAINTEXT://localhost:9092".into()),
        )?;
        let advertised_listeners = match get("advertised.listeners") {
            Some(v) => parse_listeners("advertised.listeners", &v)?,
            None => listeners.clone(),
        };
        let mut cluster = ClusterConfig::from_properties(&props)?;
        let protocols = security::protocol_map(&props, &cluster.implicit_plaintext_listeners(&props, &listeners))?;
        let security = security::parse(&props, &listeners, &protocols)?;
        for a in &advertised_listeners {
            if !listeners.iter().any(|l| l.name == a.name) {
                return Err(ConfigError::InvalidValue {
                    key: "advertised.listeners".into(),
                    value: a.url(),
                    reason: format!("no listener is named {}", a.name),
                });
            }
        }
        let log_dirs: Vec<PathBuf> = get("log.dirs")
            .or_else(|| get("log.dir"))
            .unwrap_or_else(|| "sluice-data".into())
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(ConfigError::InvalidValue {
                key: "log.dirs".into(),
                value: String::new(),
                reason: "at least one directory is needed".into(),
            });
        }
        let node_id = match get("node.id") {
            Some(v) => parse_num("node.id", &v, 0, i32::MAX as i64)? as i32,
            None => match get("broker.id") {
                Some(v) => parse_num("broker.id", &v, -1, i32::MAX as i64)?.max(1) as i32,
                None => 1,
            },
        };
        cluster.check(node_id, &listeners, &advertised_listeners, &protocols)?;
        let topic_defaults = TopicDefaults::from_broker_properties(&props)?;
        let num = |k: &str, default: i64, min: i64, max: i64| -> Result<i64, ConfigError> {
            match get(k) {
                Some(v) => parse_num(k, &v, min, max),
                None => Ok(default),
            }
        };
        let socket_request_max_bytes = num("socket.request.max.bytes", 104_857_600, 1, i32::MAX as i64)? as usize;
        let queued_max_request_bytes = connection_limits::queued_max_request_bytes(
            num("queued.max.request.bytes", -1, i64::MIN, i64::MAX)?,
            socket_request_max_bytes,
        )?;
        let connection_limits = connection_limits::ConnectionLimitSettings::parse(
            &get,
            &listeners.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        )?;
        Ok(BrokerConfig {
            listeners,
            advertised_listeners,
            log_dirs,
            node_id,
            broker_rack: get("broker.rack").filter(|r| !r.is_empty()),
            cluster_id: get("cluster.id"),
            num_partitions: num("num.partitions", 1, 1, i32::MAX as i64)? as i32,
            default_replication_factor: num("default.replication.factor", 1, 1, i16::MAX as i64)? as i16,
            auto_create_topics: parse_bool(&props, "auto.create.topics.enable", true)?,
            delete_topic_enable: parse_bool(&props, "delete.topic.enable", true)?,
            socket_request_max_bytes,
            queued_max_request_bytes,
            group_initial_rebalance_delay_ms: num("group.initial.rebalance.delay.ms", 3000, 0, i32::MAX as i64)? as u64,
            group_min_session_timeout_ms: num("group.min.session.timeout.ms", 6000, 0, i32::MAX as i64)? as i32,
            group_consumer_session_timeout_ms: num("group.consumer.session.timeout.ms", 45_000, 1, i32::MAX as i64)?
                as i32,
            group_consumer_heartbeat_interval_ms: num("group.consumer.heartbeat.interval.ms", 5000, 1, i32::MAX as i64)?
                as i32,
            group_consumer_assignors: consumer_assignors(get("group.consumer.assignors"))?,
            group_consumer_max_size: num("group.consumer.max.size", i32::MAX as i64, 1, i32::MAX as i64)? as i32,
            group_consumer_migration_policy: migration_policy(get("group.consumer.migration.policy"))?,
            group_max_session_timeout_ms: num("group.max.session.timeout.ms", 1_800_000, 0, i32::MAX as i64)? as i32,
            offsets_retention_minutes: num("offsets.retention.minutes", 10080, 1, i32::MAX as i64)?,
            offsets_retention_check_interval_ms: num("offsets.retention.check.interval.ms", 600_000, 1, i64::MAX)?
                as u64,
            offset_metadata_max_bytes: num("offset.metadata.max.bytes", 4096, 0, i32::MAX as i64)? as usize,
            offsets_topic_num_partitions: num("offsets.topic.num.partitions", 50, 1, 10_000)? as i32,
            offsets_topic_replication_factor: num("offsets.topic.replication.factor", 3, 1, i16::MAX as i64)? as i16,
            offsets_topic_segment_bytes: num("offsets.topic.segment.bytes", 104_857_600, 1024, i32::MAX as i64)? as u64,
            retention_check_interval_ms: num("log.retention.check.interval.ms", 300_000, 1, i64::MAX)? as u64,
            checkpoint_interval_ms: num(
                "log.flush.offset.checkpoint.interval.ms",
                60_000,
                0,
                i64::from(i32::MAX),
            )? as u64,
            flush_scheduler_interval_ms: num("log.flush.scheduler.interval.ms", 1000, 1, i64::MAX)? as u64,
            cleaner_enable: parse_bool(&props, "log.cleaner.enable", true)?,
            cleaner_backoff_ms: num("log.cleaner.backoff.ms", 15_000, 0, i64::MAX)? as u64,
            cleaner_dedupe_buffer_size: num("log.cleaner.dedupe.buffer.size", 134_217_728, 1_048_576, i64::MAX)?
                as usize,
            quota_window_num: num("quota.window.num", 11, 1, i32::MAX as i64)? as usize,
            quota_window_size_seconds: num("quota.window.size.seconds", 1, 1, i32::MAX as i64)?,
            producer_id_expiration_ms: num("producer.id.expiration.ms", 86_400_000, 1, i64::MAX)?,
            transactions: TransactionConfig {
                state_log_partitions: num("transaction.state.log.num.partitions", 50, 1, 10_000)? as i32,
                state_log_replication_factor: num("transaction.state.log.replication.factor", 3, 1, i16::MAX as i64)?
                    as i16,
                state_log_min_isr: num("transaction.state.log.min.isr", 2, 1, i32::MAX as i64)? as i32,
                state_log_segment_bytes: num("transaction.state.log.segment.bytes", 104_857_600, 1, i32::MAX as i64)?
                    as u64,
                max_timeout_ms: num("transaction.max.timeout.ms", 900_000, 1, i32::MAX as i64)? as i32,
                id_expiration_ms: num("transactional.id.expiration.ms", 604_800_000, 1, i32::MAX as i64)?,
                abort_timed_out_interval_ms: num(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                    10_000,
                    1,
                    i32::MAX as i64,
                )? as u64,
                remove_expired_interval_ms: num(
                    "transaction.remove.expired.transaction.cleanup.interval.ms",
                    3_600_000,
                    1,
                    i32::MAX as i64,
                )? as u64,
            },
            share_coordinator: ShareCoordinatorConfig {
                state_topic_partitions: num("share.coordinator.state.topic.num.partitions", 50, 1, 10_000)? as i32,
                state_topic_replication_factor: num(
                    "share.coordinator.state.topic.replication.factor",
                    3,
                    1,
                    i16::MAX as i64,
                )? as i16,
                state_topic_min_isr: num("share.coordinator.state.topic.min.isr", 2, 1, i32::MAX as i64)? as i32,
                state_topic_segment_bytes: num(
                    "share.coordinator.state.topic.segment.bytes",
                    104_857_600,
                    1,
                    i32::MAX as i64,
                )? as u64,
            },
            topic_defaults,
            security,
            cluster,
            replication: replication::ReplicationConfig::from_properties(&props)?,
            connection_limits,
            fetch_session_cache_slots: num("max.incremental.fetch.session.cache.slots", 1000, 0, i32::MAX as i64)?
                as usize,
            initial_scram: Vec::new(),
            metrics_address: get("metrics.prometheus.address").filter(|a| !a.is_empty()),
            log_json: match get("logging.format").as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    return Err(ConfigError::InvalidValue {
                        key: "logging.format".into(),
                        value: other.to_string(),
                        reason: "must be text or json".into(),
                    })
                }
            },
            log_level: get("logging.level").unwrap_or_else(|| "info".into()),
            properties: props,
        })
    }

    /// The advertised endpoint for the listener a client came in on.
    pub fn advertised_for(&self, listener: &str) -> Option<&ListenerSpec> {
        self.advertised_listeners
            .iter()
            .find(|l| l.name == listener)
            .or_else(|| self.advertised_listeners.first())
    }
}

fn parse_num(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let bad = |reason: String| ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    let n: i64 = value.trim().parse().map_err(|_| bad("not a number".into()))?;
    if n < min || n > max {
        return Err(bad(format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn parse_bool(props: &IndexMap<String, String>, key: &str, default: bool) -> Result<bool, ConfigError> {
    match props.get(key).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: v,
            reason: "must be true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_localhost_9092_under_the_working_directory() {
        let c = BrokerConfig::default();
        assert_eq!(c.listeners[0].url(), "PLAINTEXT://localhost:9092");
        assert_eq!(c.log_dirs, vec![PathBuf::from("sluice-data")]);
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
    }

    #[test]
    fn overrides_win_and_unknown_keys_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(&file, "num.partitions=3\nnot.a.kafka.key=1\nnum.io.threads=8\n").unwrap();
        let loaded = BrokerConfig::load(Some(&file), &["num.partitions=5".into()]).unwrap();
        assert_eq!(loaded.config.num_partitions, 5);
        assert_eq!(loaded.unknown_keys, vec!["not.a.kafka.key".to_string()]);
        assert_eq!(loaded.ignored_keys, vec!["num.io.threads".to_string()]);
    }

    #[test]
    fn bad_values_are_errors_naming_key_and_value() {
        for (k, v) in [
            ("num.partitions", "zero"),
            ("num.partitions", "0"),
            ("auto.create.topics.enable", "maybe"),
            ("listeners", "nonsense"),
            ("log.retention.hours", "x"),
            ("log.message.timestamp.type", "Whenever"),
        ] {
            let err = BrokerConfig::load(None, &[format!("{k}={v}")])
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(k) && err.contains(v), "{err}");
        }
        assert!(matches!(
            BrokerConfig::load(None, &["novalue".into()]),
            Err(ConfigError::BadOverride(_))
        ));
    }
}
