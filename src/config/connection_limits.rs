//! How many connections the broker takes, by Kafka's keys (its
//! ConnectionQuotas): `max.connections` (every client listener together),
//! `listener.name.<l>.max.connections`, `max.connections.per.ip` and its
//! `max.connections.per.ip.overrides`, `connections.max.idle.ms`, and the
//! connection creation rates `max.connection.creation.rate` and
//! `listener.name.<l>.max.connection.creation.rate`.
//!
//! The same parser reads the static file and, at each new connection, the
//! dynamic broker configs laid over it, as Kafka reconfigures these live.

use super::{parse_num, ConfigError};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

pub const CONNECTION_LIMIT_KEYS: &[&str] = &[
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "connections.max.idle.ms",
    "max.connection.creation.rate",
];

/// Kafka's default for each count: Int.MaxValue, that is no limit.
const UNLIMITED: u32 = i32::MAX as u32;

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimitSettings {
    /// `max.connections`: all client listeners together (not the controller's).
    pub max_connections: u32,
    /// `listener.name.<l>.max.connections`, by listener name (upper case).
    pub per_listener: HashMap<String, u32>,
    /// `max.connections.per.ip`.
    pub max_per_ip: u32,
    /// `max.connections.per.ip.overrides`: `host:count,...`, hosts resolved.
    pub per_ip_overrides: HashMap<IpAddr, u32>,
    /// `connections.max.idle.ms`; None (a negative value): never.
    pub max_idle: Option<Duration>,
    /// `max.connection.creation.rate`: new connections per second on the
    /// client listeners together.
    pub max_creation_rate: u32,
    /// `listener.name.<l>.max.connection.creation.rate`, by listener name.
    pub listener_creation_rate: HashMap<String, u32>,
    /// The `connection_creation_rate` client quotas on `ip` entities (from
    /// the cluster metadata, not the config): by address, and the default.
    pub ip_creation_rate: HashMap<IpAddr, f64>,
    pub default_ip_creation_rate: Option<f64>,
}

impl Default for ConnectionLimitSettings {
    fn default() -> Self {
        ConnectionLimitSettings {
            max_connections: UNLIMITED,
            per_listener: HashMap::new(),
            max_per_ip: UNLIMITED,
            per_ip_overrides: HashMap::new(),
            max_idle: Some(Duration::from_millis(600_000)),
            max_creation_rate: UNLIMITED,
            listener_creation_rate: HashMap::new(),
            ip_creation_rate: HashMap::new(),
            default_ip_creation_rate: None,
        }
    }
}

pub fn is_connection_limit_key(key: &str) -> bool {
    CONNECTION_LIMIT_KEYS.contains(&key)
        || key
            .strip_prefix("listener.name.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(_, k)| k == "max.connections" || k == "max.connection.creation.rate")
}

impl ConnectionLimitSettings {
    /// From the keys `get` finds; `listeners`: the names to look up per-listener limits for.
    pub fn parse(get: &dyn Fn(&str) -> Option<String>, listeners: &[String]) -> Result<Self, ConfigError> {
        let count = |key: &str| -> Result<Option<u32>, ConfigError> {
            get(key)
                .map(|v| parse_num(key, &v, 0, i32::MAX as i64).map(|n| n as u32))
                .transpose()
        };
        let max_per_ip = count("max.connections.per.ip")?.unwrap_or(UNLIMITED);
        let overrides_text = get("max.connections.per.ip.overrides").unwrap_or_default();
        let per_ip_overrides = parse_overrides(&overrides_text)?;
        if max_per_ip == 0 && per_ip_overrides.is_empty() {
            // Kafka's own check (KafkaConfig.validateValues).
            return Err(ConfigError::InvalidValue {
                key: "max.connections.per.ip".into(),
                value: "0".into(),
                reason: "max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides \
                         property is set."
                    .into(),
            });
        }
        let mut per_listener = HashMap::new();
        let mut listener_creation_rate = HashMap::new();
        for name in listeners {
            let key = format!("listener.name.{}.max.connections", name.to_ascii_lowercase());
            if let Some(n) = count(&key)? {
                per_listener.insert(name.to_ascii_uppercase(), n);
            }
            let key = format!(
                "listener.name.{}.max.connection.creation.rate",
                name.to_ascii_lowercase()
            );
            if let Some(n) = count(&key)? {
                listener_creation_rate.insert(name.to_ascii_uppercase(), n);
            }
        }
        let max_idle = match get("connections.max.idle.ms") {
            None => Some(Duration::from_millis(600_000)),
            Some(v) => {
                let ms = parse_num("connections.max.idle.ms", &v, i64::MIN, i64::MAX)?;
                u64::try_from(ms).ok().map(Duration::from_millis)
            }
        };
        Ok(ConnectionLimitSettings {
            max_connections: count("max.connections")?.unwrap_or(UNLIMITED),
            per_listener,
            max_per_ip,
            per_ip_overrides,
            max_idle,
            max_creation_rate: count("max.connection.creation.rate")?.unwrap_or(UNLIMITED),
            listener_creation_rate,
            ip_creation_rate: HashMap::new(),
            default_ip_creation_rate: None,
        })
    }

    /// The most connections one address may have.
    pub fn max_for(&self, ip: IpAddr) -> u32 {
        self.per_ip_overrides.get(&ip).copied().unwrap_or(self.max_per_ip)
    }

    pub fn max_for_listener(&self, listener: &str) -> u32 {
        self.per_listener.get(listener).copied().unwrap_or(UNLIMITED)
    }

    /// The listener's creation rate, if one is set.
    pub fn listener_rate(&self, listener: &str) -> Option<u32> {
        self.listener_creation_rate
            .get(listener)
            .copied()
            .filter(|r| *r < UNLIMITED)
    }

    /// The broker-wide creation rate, if one is set.
    pub fn broker_rate(&self) -> Option<u32> {
        (self.max_creation_rate < UNLIMITED).then_some(self.max_creation_rate)
    }

    /// The address's creation rate quota, if one applies.
    pub fn ip_rate(&self, ip: IpAddr) -> Option<f64> {
        self.ip_creation_rate
            .get(&ip)
            .copied()
            .or(self.default_ip_creation_rate)
            .filter(|r| *r < UNLIMITED as f64)
    }

    /// Takes the `connection_creation_rate` quotas on `ip` entities.
    pub fn with_ip_quotas(mut self, quotas: &[crate::metadata::image::ClientQuota]) -> Self {
        for q in quotas {
            let Some(rate) = q.values.get(crate::quota::CONNECTION_CREATION_RATE) else {
                continue;
            };
            match q.entity.as_slice() {
                [(kind, None)] if kind == "ip" => self.default_ip_creation_rate = Some(*rate),
                [(kind, Some(addr))] if kind == "ip" => {
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        self.ip_creation_rate.insert(ip, *rate);
                    }
                }
                _ => {}
            }
        }
        self
    }
}

/// `queued.max.request.bytes` (Kafka's -1 or 0: no limit), which must hold
/// one request of `socket.request.max.bytes` (Kafka's own check).
pub fn queued_max_request_bytes(value: i64, socket_request_max_bytes: usize) -> Result<Option<u64>, ConfigError> {
    match value {
        n if n <= 0 => Ok(None),
        n if (n as u64) < socket_request_max_bytes as u64 => Err(ConfigError::InvalidValue {
            key: "queued.max.request.bytes".into(),
            value: n.to_string(),
            reason: "queued.max.request.bytes must be larger or equal to socket.request.max.bytes".into(),
        }),
        n => Ok(Some(n as u64)),
    }
}

/// `host:count,host:count`; a host name stands for every address it resolves to.
fn parse_overrides(text: &str) -> Result<HashMap<IpAddr, u32>, ConfigError> {
    let key = "max.connections.per.ip.overrides";
    let bad = |reason: String| ConfigError::InvalidValue {
        key: key.into(),
        value: text.into(),
        reason,
    };
    let mut overrides = HashMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, n) = item
            .rsplit_once(':')
            .ok_or_else(|| bad(format!("'{item}' is not host:count")))?;
        let n = parse_num(key, n, 0, i32::MAX as i64).map_err(|_| bad(format!("'{item}': bad count")))? as u32;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| bad(format!("'{host}' does not resolve: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in addresses {
            overrides.insert(ip, n);
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ConnectionLimitSettings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ConnectionLimitSettings::parse(&|k| map.get(k).cloned(), &["PLAINTEXT".into(), "SASL_SSL".into()])
    }

    #[test]
    fn defaults_are_unlimited_with_ten_idle_minutes() {
        let s = parse(&[]).expect("parse");
        assert_eq!(s, ConnectionLimitSettings::default());
        assert_eq!(s.max_for("10.0.0.1".parse().expect("ip")), i32::MAX as u32);
    }

    #[test]
    fn limits_overrides_and_listeners() {
        let s = parse(&[
            ("max.connections", "20"),
            ("max.connections.per.ip", "5"),
            ("max.connections.per.ip.overrides", "127.0.0.1:2, [::1]:3,localhost:4"),
            ("listener.name.sasl_ssl.max.connections", "7"),
            ("connections.max.idle.ms", "-1"),
        ])
        .expect("parse");
        assert_eq!(s.max_connections, 20);
        assert_eq!(s.max_for("10.1.1.1".parse().expect("ip")), 5);
        // localhost resolves to 127.0.0.1 (and maybe ::1); the later entry wins.
        assert_eq!(s.max_for("127.0.0.1".parse().expect("ip")), 4);
        assert_eq!(s.max_for_listener("SASL_SSL"), 7);
        assert_eq!(s.max_for_listener("PLAINTEXT"), i32::MAX as u32);
        assert_eq!(s.max_idle, None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let zero = parse(&[("max.connections.per.ip", "0")]).expect_err("zero without overrides");
        assert!(
            zero.to_string().contains("only if max.connections.per.ip.overrides"),
            "{zero}"
        );
        assert!(parse(&[
            ("max.connections.per.ip", "0"),
            ("max.connections.per.ip.overrides", "10.0.0.1:1")
        ])
        .is_ok());
        let negative = parse(&[("max.connections", "-1")]).expect_err("negative");
        assert!(negative.to_string().contains("'max.connections'"), "{negative}");
        let malformed = parse(&[("max.connections.per.ip.overrides", "10.0.0.1")]).expect_err("no count");
        assert!(
            malformed.to_string().contains("max.connections.per.ip.overrides"),
            "{malformed}"
        );
    }
}
