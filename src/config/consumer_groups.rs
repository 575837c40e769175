//! The broker's settings for consumer groups of the new protocol (KIP-848):
//! which assignors members may name, and which way a group may move between
//! the classic and the consumer protocol.

use super::ConfigError;

/// `group.consumer.migration.policy`: which way a group may move between
/// the classic and the consumer protocol while it has members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationPolicy {
    pub upgrade: bool,
    pub downgrade: bool,
}

impl Default for MigrationPolicy {
    /// Kafka's default: bidirectional.
    fn default() -> Self {
        MigrationPolicy {
            upgrade: true,
            downgrade: true,
        }
    }
}

pub(super) fn migration_policy(value: Option<String>) -> Result<MigrationPolicy, ConfigError> {
    let Some(value) = value else {
        return Ok(MigrationPolicy::default());
    };
    let (upgrade, downgrade) = match value.trim().to_ascii_lowercase().as_str() {
        "bidirectional" => (true, true),
        "upgrade" => (true, false),
        "downgrade" => (false, true),
        "disabled" => (false, false),
        _ => {
            return Err(ConfigError::InvalidValue {
                key: "group.consumer.migration.policy".to_string(),
                value,
                reason: "expected one of disabled, downgrade, upgrade, bidirectional".to_string(),
            })
        }
    };
    Ok(MigrationPolicy { upgrade, downgrade })
}

/// `group.consumer.assignors`: short names (`uniform`, `range`) or Kafka's
/// class names for them.
pub(super) fn consumer_assignors(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec!["uniform".to_string(), "range".to_string()]);
    };
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let short = match name {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            _ => {
                return Err(ConfigError::InvalidValue {
                    key: "group.consumer.assignors".to_string(),
                    value: value.clone(),
                    reason: format!("unknown assignor {name} (known: uniform, range)"),
                })
            }
        };
        out.push(short.to_string());
    }
    if out.is_empty() {
        return Err(ConfigError::InvalidValue {
            key: "group.consumer.assignors".to_string(),
            value,
            reason: "at least one assignor is needed".to_string(),
        });
    }
    Ok(out)
}
