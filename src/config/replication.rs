//! Replication settings (Kafka's `replica.*` keys and `num.replica.fetchers`),
//! read once at start-up with Kafka's defaults.

use super::{parse_num, ConfigError};
use indexmap::IndexMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `num.replica.fetchers`: fetch loops per source broker.
    pub num_replica_fetchers: usize,
    /// `replica.fetch.max.bytes`: bytes asked of each partition per fetch.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes asked of a whole fetch.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: how long the leader may hold a fetch.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms`: the pause after a failed fetch.
    pub fetch_backoff_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// `replica.socket.timeout.ms`: a fetch not answered in this long (plus
    /// its wait) is abandoned and the connection dropped.
    pub socket_timeout_ms: u64,
    /// `replica.selector.class`: which replica a consumer should read from
    /// (KIP-392); none: always the leader.
    pub replica_selector: Option<ReplicaSelector>,
}

/// The replica selectors Kafka ships (`replica.selector.class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// `org.apache.kafka.common.replica.RackAwareReplicaSelector`: a replica
    /// in the consumer's rack (`client.rack`).
    RackAware,
    /// `org.apache.kafka.common.replica.LeaderSelector`: the leader (Kafka's
    /// behaviour without a selector).
    Leader,
}

const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const LEADER_SELECTOR: &str = "org.apache.kafka.common.replica.LeaderSelector";

pub const REPLICATION_KEYS: &[&str] = &[
    "num.replica.fetchers",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.wait.max.ms",
    "replica.fetch.min.bytes",
    "replica.fetch.backoff.ms",
    "replica.lag.time.max.ms",
    "replica.socket.timeout.ms",
    "replica.selector.class",
];

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            num_replica_fetchers: 1,
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_backoff_ms: 1000,
            lag_time_max_ms: 30_000,
            socket_timeout_ms: 30_000,
            replica_selector: None,
        }
    }
}

impl ReplicationConfig {
    pub fn from_properties(props: &IndexMap<String, String>) -> Result<ReplicationConfig, ConfigError> {
        let d = ReplicationConfig::default();
        let num = |k: &str, default: i64, min: i64| -> Result<i64, ConfigError> {
            match props.get(k) {
                Some(v) => parse_num(k, v, min, i32::MAX as i64),
                None => Ok(default),
            }
        };
        let config = ReplicationConfig {
            num_replica_fetchers: num("num.replica.fetchers", d.num_replica_fetchers as i64, 1)? as usize,
            fetch_max_bytes: num("replica.fetch.max.bytes", d.fetch_max_bytes as i64, 0)? as i32,
            fetch_response_max_bytes: num("replica.fetch.response.max.bytes", d.fetch_response_max_bytes as i64, 0)?
                as i32,
            fetch_wait_max_ms: num("replica.fetch.wait.max.ms", d.fetch_wait_max_ms as i64, 0)? as i32,
            fetch_min_bytes: num("replica.fetch.min.bytes", d.fetch_min_bytes as i64, 0)? as i32,
            fetch_backoff_ms: num("replica.fetch.backoff.ms", d.fetch_backoff_ms as i64, 0)? as u64,
            lag_time_max_ms: num("replica.lag.time.max.ms", d.lag_time_max_ms, 0)?,
            socket_timeout_ms: num("replica.socket.timeout.ms", d.socket_timeout_ms as i64, 0)? as u64,
            replica_selector: match props.get("replica.selector.class").map(|v| v.trim()) {
                None | Some("") => None,
                Some(RACK_AWARE_SELECTOR) => Some(ReplicaSelector::RackAware),
                Some(LEADER_SELECTOR) => Some(ReplicaSelector::Leader),
                Some(other) => {
                    return Err(ConfigError::InvalidValue {
                        key: "replica.selector.class".into(),
                        value: other.into(),
                        reason: format!(
                            "Class {other} cannot be found (known: {RACK_AWARE_SELECTOR}, {LEADER_SELECTOR})"
                        ),
                    })
                }
            },
        };
        // Kafka: "replica.fetch.wait.max.ms should always be less than or
        // equal to replica.lag.time.max.ms to prevent frequent changes in ISR".
        if config.fetch_wait_max_ms as i64 > config.lag_time_max_ms {
            return Err(ConfigError::InvalidValue {
                key: "replica.fetch.wait.max.ms".into(),
                value: config.fetch_wait_max_ms.to_string(),
                reason: "must be at most replica.lag.time.max.ms".into(),
            });
        }
        Ok(config)
    }
}
