//! Topic-level configs (Kafka's LogConfig): their names, types, defaults, the
//! broker keys that set their defaults, and the resolved `LogConfig` a log uses.

use super::ConfigError;
use std::collections::BTreeMap;

/// Kafka's ConfigEntry types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where a config value came from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// A group's own override (Kafka's GROUP_CONFIG).
    DynamicGroup = 8,
}

pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker keys that set the default, finest unit first, each with its
    /// factor to the topic key's unit (log.retention.hours: 3600000).
    pub broker_keys: &'static [(&'static str, i64)],
    pub kind: ConfigType,
    pub default: &'static str,
    pub allowed: &'static [&'static str],
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Kafka's internal configs: settable, never listed.
    pub hidden: bool,
}

const fn cfg(
    name: &'static str,
    broker_keys: &'static [(&'static str, i64)],
    kind: ConfigType,
    default: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_keys,
        kind,
        default,
        allowed: &[],
        min: None,
        max: None,
        hidden: false,
    }
}

impl TopicConfigDef {
    const fn at_least(mut self, min: i64) -> Self {
        self.min = Some(min);
        self
    }
    const fn between(mut self, min: i64, max: i64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    const fn one_of(mut self, allowed: &'static [&'static str]) -> Self {
        self.allowed = allowed;
        self
    }
    const fn internal(mut self) -> Self {
        self.hidden = true;
        self
    }
}

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_MINUTE: i64 = 60_000;
const LONG_MAX: &str = "9223372036854775807";

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

/// Every topic config of Kafka 4.4, in its order (alphabetical), with its
/// defaults and limits and the broker keys behind them.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    cfg("cleanup.policy", &[("log.cleanup.policy", 1)], List, "delete").one_of(&["compact", "delete"]),
    cfg("compression.gzip.level", &[("compression.gzip.level", 1)], Int, "-1").between(-1, 9),
    cfg("compression.lz4.level", &[("compression.lz4.level", 1)], Int, "9").between(1, 17),
    // "producer": batches are stored as sent; a codec: batches in another are recompressed.
    cfg("compression.type", &[("compression.type", 1)], Str, "producer").one_of(&[
        "uncompressed",
        "zstd",
        "lz4",
        "snappy",
        "gzip",
        "producer",
    ]),
    cfg("compression.zstd.level", &[("compression.zstd.level", 1)], Int, "3").between(-131072, 22),
    cfg(
        "delete.retention.ms",
        &[("log.cleaner.delete.retention.ms", 1)],
        Long,
        "86400000",
    )
    .at_least(0),
    cfg("errors.deadletterqueue.group.enable", &[], Boolean, "false"),
    cfg(
        "file.delete.delay.ms",
        &[("log.segment.delete.delay.ms", 1)],
        Long,
        "60000",
    )
    .at_least(0),
    cfg("flush.messages", &[("log.flush.interval.messages", 1)], Long, LONG_MAX).at_least(1),
    cfg(
        "flush.ms",
        &[("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)],
        Long,
        LONG_MAX,
    )
    .at_least(0),
    cfg("follower.replication.throttled.replicas", &[], List, ""),
    cfg("index.interval.bytes", &[("log.index.interval.bytes", 1)], Int, "4096").at_least(0),
    cfg("internal.segment.bytes", &[], Int, "").at_least(14).internal(),
    cfg("leader.replication.throttled.replicas", &[], List, ""),
    cfg("local.retention.bytes", &[("log.local.retention.bytes", 1)], Long, "-2").at_least(-2),
    cfg("local.retention.ms", &[("log.local.retention.ms", 1)], Long, "-2").at_least(-2),
    cfg(
        "max.compaction.lag.ms",
        &[("log.cleaner.max.compaction.lag.ms", 1)],
        Long,
        LONG_MAX,
    )
    .at_least(1),
    cfg(
        "max.decompressed.message.bytes",
        &[("max.decompressed.message.bytes", 1)],
        Int,
        "2147483639",
    )
    .between(1, 2147483639),
    cfg("max.message.bytes", &[("message.max.bytes", 1)], Int, "1048588").at_least(0),
    cfg(
        "message.timestamp.after.max.ms",
        &[("log.message.timestamp.after.max.ms", 1)],
        Long,
        "3600000",
    )
    .at_least(0),
    cfg(
        "message.timestamp.before.max.ms",
        &[("log.message.timestamp.before.max.ms", 1)],
        Long,
        LONG_MAX,
    )
    .at_least(0),
    cfg(
        "message.timestamp.type",
        &[("log.message.timestamp.type", 1)],
        Str,
        "CreateTime",
    )
    .one_of(&["CreateTime", "LogAppendTime"]),
    cfg(
        "min.cleanable.dirty.ratio",
        &[("log.cleaner.min.cleanable.ratio", 1)],
        Double,
        "0.5",
    ),
    cfg(
        "min.compaction.lag.ms",
        &[("log.cleaner.min.compaction.lag.ms", 1)],
        Long,
        "0",
    )
    .at_least(0),
    cfg("min.insync.replicas", &[("min.insync.replicas", 1)], Int, "1").at_least(1),
    cfg("preallocate", &[("log.preallocate", 1)], Boolean, "false"),
    cfg("remote.copy.lag.bytes", &[("log.remote.copy.lag.bytes", 1)], Long, "-1").at_least(-1),
    cfg("remote.copy.lag.ms", &[("log.remote.copy.lag.ms", 1)], Long, "0").at_least(-1),
    cfg("remote.log.copy.disable", &[], Boolean, "false"),
    cfg("remote.log.delete.on.disable", &[], Boolean, "false"),
    cfg("remote.storage.enable", &[], Boolean, "false"),
    cfg("retention.bytes", &[("log.retention.bytes", 1)], Long, "-1"),
    cfg(
        "retention.ms",
        &[
            ("log.retention.ms", 1),
            ("log.retention.minutes", MS_PER_MINUTE),
            ("log.retention.hours", MS_PER_HOUR),
        ],
        Long,
        "604800000",
    )
    .at_least(-1),
    cfg("segment.bytes", &[("log.segment.bytes", 1)], Int, "1073741824").at_least(1_048_576),
    cfg(
        "segment.index.bytes",
        &[("log.index.size.max.bytes", 1)],
        Int,
        "10485760",
    )
    .at_least(4),
    cfg(
        "segment.jitter.ms",
        &[("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", MS_PER_HOUR)],
        Long,
        "0",
    )
    .at_least(0),
    cfg(
        "segment.ms",
        &[("log.roll.ms", 1), ("log.roll.hours", MS_PER_HOUR)],
        Long,
        "604800000",
    )
    .at_least(1),
    cfg(
        "unclean.leader.election.enable",
        &[("unclean.leader.election.enable", 1)],
        Boolean,
        "false",
    ),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks `value` against the definition; the error names the key and value.
pub fn validate_value(def: &TopicConfigDef, value: &str) -> Result<(), ConfigError> {
    // Reasons in Kafka's words (ConfigDef's validators).
    let bad = |reason: String| ConfigError::InvalidValue {
        key: def.name.to_string(),
        value: value.to_string(),
        reason,
    };
    match def.kind {
        ConfigType::Int | ConfigType::Long => {
            let n: i64 = value.trim().parse().map_err(|_| {
                bad(format!(
                    "Expected value to be a {}-bit integer",
                    if def.kind == ConfigType::Int { 32 } else { 64 }
                ))
            })?;
            if def.kind == ConfigType::Int && i32::try_from(n).is_err() {
                return Err(bad("Expected value to be a 32-bit integer".into()));
            }
            if let Some(min) = def.min {
                if n < min {
                    return Err(bad(format!("Value must be at least {min}")));
                }
            }
            if let Some(max) = def.max {
                if n > max {
                    return Err(bad(format!("Value must be no more than {max}")));
                }
            }
            // gzip's levels are 1 to 9, or -1 for the codec's default.
            if def.name == "compression.gzip.level" && n == 0 {
                return Err(bad("Value must be between 1 and 9, or -1".into()));
            }
        }
        ConfigType::Double => {
            let n: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad("Expected value to be a double".into()))?;
            if def.name == "min.cleanable.dirty.ratio" && !(0.0..=1.0).contains(&n) {
                return Err(bad("Value must be between 0 and 1".into()));
            }
        }
        ConfigType::Boolean => {
            if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") {
                return Err(bad("Expected value to be either true or false".into()));
            }
        }
        ConfigType::String | ConfigType::List => {
            if !def.allowed.is_empty() {
                for item in value.split(',').map(str::trim) {
                    if !def.allowed.contains(&item) {
                        return Err(bad(format!("String must be one of: {}", def.allowed.join(", "))));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The broker-wide defaults for topic configs, derived once from the broker's
/// properties: key → (value, source).
#[derive(Debug, Clone, Default)]
pub struct TopicDefaults {
    values: BTreeMap<&'static str, (String, ConfigSource)>,
}

/// Whether `key` is a broker key that sets a topic config's default (and so
/// may be changed while the broker runs).
pub fn is_topic_default_key(key: &str) -> bool {
    TOPIC_CONFIGS
        .iter()
        .any(|d| d.broker_keys.iter().any(|(k, _)| *k == key))
}

impl TopicDefaults {
    pub fn from_broker_properties(props: &indexmap::IndexMap<String, String>) -> Result<Self, ConfigError> {
        let statics: BTreeMap<String, String> = props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        TopicDefaults::from_layers(&[(&statics, ConfigSource::StaticBroker)])
    }

    /// Resolves every topic default from broker keys, the first layer that
    /// sets a key winning (per-broker dynamic, cluster-wide dynamic, static).
    pub fn from_layers(layers: &[(&BTreeMap<String, String>, ConfigSource)]) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let mut chosen = None;
            'layers: for (props, source) in layers {
                // Within a layer the finest unit wins (ms over minutes over hours).
                for (key, factor) in def.broker_keys {
                    if let Some(raw) = props.get(*key) {
                        let value = broker_value_in_topic_unit(key, raw, *factor)?;
                        validate_value(def, &value).map_err(|e| e.renamed(key))?;
                        chosen = Some((value, *source));
                        break 'layers;
                    }
                }
            }
            values.insert(
                def.name,
                chosen.unwrap_or((def.default.to_string(), ConfigSource::Default)),
            );
        }
        Ok(TopicDefaults { values })
    }

    pub fn get(&self, name: &str) -> Option<&(String, ConfigSource)> {
        self.values.get(name)
    }
}

fn broker_value_in_topic_unit(key: &str, raw: &str, factor: i64) -> Result<String, ConfigError> {
    if factor == 1 {
        return Ok(raw.trim().to_string());
    }
    let n: i64 = raw.trim().parse().map_err(|_| ConfigError::InvalidValue {
        key: key.to_string(),
        value: raw.to_string(),
        reason: "not a number".into(),
    })?;
    Ok(n.saturating_mul(factor).to_string())
}

/// The effective configs of one topic's logs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub index_interval_bytes: u64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub log_append_time: bool,
    /// CreateTime records may be at most this far ahead of the broker's clock...
    pub timestamp_after_max_ms: i64,
    /// ...and at most this far behind it.
    pub timestamp_before_max_ms: i64,
    pub min_insync_replicas: i32,
    pub compact: bool,
    pub delete: bool,
    /// Compaction: cleaned when this share of the cleanable bytes is dirty...
    pub min_cleanable_dirty_ratio: f64,
    /// ...and only records at least this old.
    pub min_compaction_lag_ms: i64,
    /// Tombstones older than this are removed by cleaning.
    pub delete_retention_ms: i64,
    /// The codec batches are stored in (None: as the producer sent them).
    pub compression: Option<i16>,
    /// Deleted segments' and partitions' files are removed this long after.
    pub file_delete_delay_ms: i64,
}

impl LogConfig {
    /// Resolves a topic's configs: its overrides first, then the broker defaults.
    pub fn resolve(defaults: &TopicDefaults, overrides: &BTreeMap<String, String>) -> LogConfig {
        let get = |name: &str| -> String {
            overrides
                .get(name)
                .cloned()
                .or_else(|| defaults.get(name).map(|(v, _)| v.clone()))
                .or_else(|| topic_config_def(name).map(|d| d.default.to_string()))
                .unwrap_or_default()
        };
        let num = |name: &str| -> i64 {
            get(name)
                .trim()
                .parse()
                .unwrap_or_else(|_| topic_config_def(name).and_then(|d| d.default.parse().ok()).unwrap_or(0))
        };
        let policy = get("cleanup.policy");
        LogConfig {
            // Kafka's hidden `internal.segment.bytes` lifts the 1 MiB floor (tests use it).
            segment_bytes: overrides
                .get("internal.segment.bytes")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or_else(|| num("segment.bytes"))
                .max(14) as u64,
            segment_ms: num("segment.ms"),
            retention_ms: num("retention.ms"),
            retention_bytes: num("retention.bytes"),
            max_message_bytes: num("max.message.bytes").max(0) as usize,
            index_interval_bytes: num("index.interval.bytes").max(0) as u64,
            flush_messages: num("flush.messages"),
            flush_ms: num("flush.ms"),
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            timestamp_after_max_ms: num("message.timestamp.after.max.ms"),
            timestamp_before_max_ms: num("message.timestamp.before.max.ms"),
            min_insync_replicas: num("min.insync.replicas") as i32,
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
            min_compaction_lag_ms: num("min.compaction.lag.ms"),
            delete_retention_ms: num("delete.retention.ms"),
            compression: crate::storage::codec::codec_of(get("compression.type").trim()),
            file_delete_delay_ms: num("file.delete.delay.ms"),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig::resolve(&TopicDefaults::default(), &BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_keys_set_topic_defaults_with_units() {
        let mut props = indexmap::IndexMap::new();
        props.insert("log.retention.hours".to_string(), "2".to_string());
        props.insert("log.segment.bytes".to_string(), "2097152".to_string());
        let d = TopicDefaults::from_broker_properties(&props).unwrap();
        assert_eq!(
            d.get("retention.ms").unwrap(),
            &("7200000".to_string(), ConfigSource::StaticBroker)
        );
        let mut overrides = BTreeMap::new();
        assert_eq!(LogConfig::resolve(&d, &BTreeMap::new()).segment_bytes, 2_097_152);
        overrides.insert("internal.segment.bytes".to_string(), "2000".to_string());
        let c = LogConfig::resolve(&d, &overrides);
        assert_eq!(c.segment_bytes, 2000);
        assert_eq!(c.retention_ms, 7_200_000);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert!(c.delete && !c.compact);
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let def = topic_config_def("message.timestamp.type").unwrap();
        assert!(validate_value(def, "LogAppendTime").is_ok());
        let err = validate_value(def, "Sometimes").unwrap_err().to_string();
        assert!(
            err.contains("message.timestamp.type") && err.contains("Sometimes"),
            "{err}"
        );
        let def = topic_config_def("segment.bytes").unwrap();
        assert!(validate_value(def, "abc").is_err());
        assert!(validate_value(def, "99999999999").is_err());
    }
}
