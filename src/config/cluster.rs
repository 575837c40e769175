//! Cluster configuration: Kafka's KRaft keys (`process.roles`,
//! `controller.quorum.*`, `controller.listener.names`, ...), parsed and
//! checked the way Kafka 4.4's `KafkaConfig` checks them, so that a file that
//! Kafka refuses is refused here too, with Kafka's words.
//!
//! Without `process.roles` Sluice is a single node that needs none of this;
//! the keys are still parsed (a wrong value is an error) but not checked
//! against each other.

use super::listener::ListenerSpec;
use super::security::SecurityProtocol;
use super::ConfigError;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// A member of the controller quorum: `id@host:port` in
/// `controller.quorum.voters`, `id@host:port:directory` in KIP-853's
/// `--initial-controllers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub directory_id: Option<uuid::Uuid>,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// None when `process.roles` is unset: the single-node default.
    pub roles: Option<ProcessRoles>,
    /// `controller.quorum.voters`: the static quorum, "1@host:port,2@host:port".
    pub voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers`: where to find a dynamic quorum.
    pub bootstrap_servers: Vec<(String, u16)>,
    /// `controller.listener.names`, upper case as listener names are.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name` (or the listener named by
    /// `security.inter.broker.protocol`); None means Kafka's default, PLAINTEXT.
    pub inter_broker_listener_name: Option<String>,
    /// `broker.session.timeout.ms`: a broker without heartbeats for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `metadata.log.dir`; None means the first of `log.dirs`. `format`
    /// writes the bootstrap there; a single node still keeps its metadata log
    /// in the first of `log.dirs`, as it always has.
    pub metadata_log_dir: Option<PathBuf>,
    /// `metadata.log.max.record.bytes.between.snapshots`: a controller takes
    /// a snapshot once this many bytes of records were committed since the last.
    pub snapshot_after_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms`: and once this long passed with
    /// anything committed (0: never by time).
    pub snapshot_interval_ms: u64,
    /// The security protocol of the first controller listener, from
    /// `listener.security.protocol.map` (a broker-only node has no such
    /// listener of its own, yet must speak it to the controllers).
    pub controller_security_protocol: Option<SecurityProtocol>,
    /// `auto.leader.rebalance.enable`: the active controller gives
    /// partitions back to their preferred replica by itself,
    pub auto_leader_rebalance: bool,
    /// every `leader.imbalance.check.interval.seconds` (in ms here).
    pub leader_imbalance_check_interval_ms: u64,
}

/// Kafka's defaults (KRaftConfigs, QuorumConfig).
const DEFAULT_SESSION_TIMEOUT_MS: u64 = 9000;
const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 2000;
const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 1000;
const DEFAULT_SNAPSHOT_AFTER_BYTES: u64 = 20 * 1024 * 1024;
const DEFAULT_SNAPSHOT_INTERVAL_MS: u64 = 60 * 60 * 1000;
const DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_MS: u64 = 300 * 1000;

/// The keys this module reads.
pub const CLUSTER_KEYS: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "controller.quorum.election.timeout.ms",
    "metadata.log.dir",
    "metadata.log.max.record.bytes.between.snapshots",
    "metadata.log.max.snapshot.interval.ms",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
];

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            roles: None,
            voters: Vec::new(),
            bootstrap_servers: Vec::new(),
            controller_listener_names: Vec::new(),
            inter_broker_listener_name: None,
            broker_session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            broker_heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            metadata_log_dir: None,
            snapshot_after_bytes: DEFAULT_SNAPSHOT_AFTER_BYTES,
            snapshot_interval_ms: DEFAULT_SNAPSHOT_INTERVAL_MS,
            controller_security_protocol: None,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_MS,
        }
    }
}

/// A configuration that parses key by key but that Kafka refuses as a whole.
/// The wording is Kafka's (KafkaConfig.validateValues).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterConfigError {
    #[error("Missing required configuration \"{0}\" which has no default value.")]
    Missing(&'static str),
    #[error(
        "If using process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap \
         controllers or controller.quorum.voters must contain a parseable set of controllers."
    )]
    NoQuorum,
    #[error(
        "If process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set \
         of voters controller.quorum.voters={voters}"
    )]
    BrokerIsVoter { node_id: i32, voters: String },
    #[error(
        "If process.roles contains the 'controller' role, the node id {node_id} must be included in the set of \
         voters controller.quorum.voters={voters}"
    )]
    ControllerNotVoter { node_id: i32, voters: String },
    #[error(
        "controller.listener.names must not contain a value appearing in the 'listeners' configuration when \
         running KRaft with just the broker role"
    )]
    BrokerHasControllerListener,
    #[error(
        "Controller listener with name {0} defined in controller.listener.names not found in \
         listener.security.protocol.map (an explicit security mapping for each controller listener is required \
         if listener.security.protocol.map is non-empty, or if there are security protocols other than PLAINTEXT \
         in use)"
    )]
    ControllerListenerWithoutProtocol(String),
    #[error(
        "controller.listener.names must contain at least one value appearing in the 'listeners' configuration \
         when running the KRaft controller role"
    )]
    NoControllerListener,
    #[error(
        "controller.listener.names must only contain values appearing in the 'listeners' configuration when \
         running the KRaft controller role"
    )]
    UnknownControllerListener,
    #[error(
        "The listeners config must only contain KRaft controller listeners from controller.listener.names when \
         process.roles=controller"
    )]
    ControllerOnlyHasBrokerListener,
    #[error("There must be at least one broker advertised listener. Perhaps all listeners appear in controller.listener.names?")]
    NoBrokerListener,
    #[error(
        "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options \
         based on currently configured listeners are {options}"
    )]
    InterBrokerListenerNotAdvertised { options: String },
}

impl ClusterConfig {
    /// Reads the cluster keys, each on its own; `check` relates them.
    pub fn from_properties(props: &IndexMap<String, String>) -> Result<ClusterConfig, ConfigError> {
        let get = |k: &str| props.get(k).map(|v| v.trim().to_string());
        let timeout = |key: &str, default: u64| match get(key) {
            Some(v) => super::parse_num(key, &v, 1, i32::MAX as i64).map(|n| n as u64),
            None => Ok(default),
        };
        let long = |key: &str, min: i64, default: u64| match get(key) {
            Some(v) => super::parse_num(key, &v, min, i64::MAX).map(|n| n as u64),
            None => Ok(default),
        };
        let config = ClusterConfig {
            roles: get("process.roles").map(|v| parse_roles(&v)).transpose()?,
            voters: get("controller.quorum.voters")
                .map(|v| parse_voters(&v))
                .transpose()?
                .unwrap_or_default(),
            bootstrap_servers: get("controller.quorum.bootstrap.servers")
                .map(|v| parse_bootstrap_servers(&v))
                .transpose()?
                .unwrap_or_default(),
            controller_listener_names: get("controller.listener.names")
                .map(|v| parse_controller_listener_names(&v))
                .transpose()?
                .unwrap_or_default(),
            inter_broker_listener_name: get("inter.broker.listener.name")
                .or_else(|| get("security.inter.broker.protocol"))
                .filter(|v| !v.is_empty())
                .map(|v| v.to_ascii_uppercase()),
            broker_session_timeout_ms: timeout("broker.session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS)?,
            broker_heartbeat_interval_ms: timeout("broker.heartbeat.interval.ms", DEFAULT_HEARTBEAT_INTERVAL_MS)?,
            election_timeout_ms: timeout("controller.quorum.election.timeout.ms", DEFAULT_ELECTION_TIMEOUT_MS)?,
            metadata_log_dir: get("metadata.log.dir").filter(|v| !v.is_empty()).map(PathBuf::from),
            snapshot_after_bytes: long(
                "metadata.log.max.record.bytes.between.snapshots",
                1,
                DEFAULT_SNAPSHOT_AFTER_BYTES,
            )?,
            snapshot_interval_ms: long("metadata.log.max.snapshot.interval.ms", 0, DEFAULT_SNAPSHOT_INTERVAL_MS)?,
            controller_security_protocol: None,
            auto_leader_rebalance: super::parse_bool(props, "auto.leader.rebalance.enable", true)?,
            leader_imbalance_check_interval_ms: long("leader.imbalance.check.interval.seconds", 1, 300)? * 1000,
        };
        // Keys without a default in Kafka's KRaft: a node of a cluster must
        // say who it is and where the controllers listen. Kafka complains of
        // these before anything else.
        if config.roles.is_some() {
            if !props.contains_key("node.id") && !props.contains_key("broker.id") {
                return Err(ClusterConfigError::Missing("node.id").into());
            }
            if config.controller_listener_names.is_empty() {
                return Err(ClusterConfigError::Missing("controller.listener.names").into());
            }
        }
        Ok(config)
    }

    /// True when this node runs the replicated quorum: process.roles is set and the quorum is not just this one
    /// combined node (one voter = this node with roles broker,controller and no bootstrap servers stays the
    /// single-node mode, so Kafka's single-node KRaft configs keep working with no format step).
    pub fn is_cluster(&self, node_id: i32) -> bool {
        match self.roles {
            None => false,
            Some(roles) => {
                let alone = roles.broker
                    && roles.controller
                    && self.bootstrap_servers.is_empty()
                    && self.voters.len() == 1
                    && self.voters[0].id == node_id;
                !alone
            }
        }
    }

    /// Names that `listener.security.protocol.map` maps to PLAINTEXT when it
    /// is not given: Kafka's rule for KRaft, which adds the controller
    /// listeners unless some listener is SSL or SASL by name.
    pub fn implicit_plaintext_listeners(
        &self,
        props: &IndexMap<String, String>,
        listeners: &[ListenerSpec],
    ) -> Vec<String> {
        let secure = |name: &str| matches!(name, "SSL" | "SASL_SSL" | "SASL_PLAINTEXT");
        if self.roles.is_none()
            || props.contains_key("listener.security.protocol.map")
            || self.controller_listener_names.iter().any(|n| secure(n))
            || listeners.iter().any(|l| secure(&l.name))
        {
            return Vec::new();
        }
        self.controller_listener_names
            .iter()
            .filter(|n| n.as_str() != "PLAINTEXT")
            .cloned()
            .collect()
    }

    /// Kafka's checks across keys (KafkaConfig.validateValues), in Kafka's
    /// order, so the first complaint is the one Kafka would make. Nothing is
    /// checked when process.roles is unset.
    pub fn check(
        &mut self,
        node_id: i32,
        listeners: &[ListenerSpec],
        advertised: &[ListenerSpec],
        protocols: &HashMap<String, SecurityProtocol>,
    ) -> Result<(), ClusterConfigError> {
        let Some(roles) = self.roles else {
            return Ok(());
        };
        if self.voters.is_empty() && self.bootstrap_servers.is_empty() {
            return Err(ClusterConfigError::NoQuorum);
        }
        let is_controller_listener = |l: &ListenerSpec| self.controller_listener_names.contains(&l.name);
        let voters = || {
            let ids: Vec<String> = self.voters.iter().map(|v| v.id.to_string()).collect();
            format!("[{}]", ids.join(", "))
        };
        let is_voter = self.voters.iter().any(|v| v.id == node_id);
        if !roles.controller {
            if is_voter {
                return Err(ClusterConfigError::BrokerIsVoter {
                    node_id,
                    voters: voters(),
                });
            }
            if listeners.iter().any(is_controller_listener) {
                return Err(ClusterConfigError::BrokerHasControllerListener);
            }
            if let Some(name) = self
                .controller_listener_names
                .iter()
                .find(|n| !protocols.contains_key(*n))
            {
                return Err(ClusterConfigError::ControllerListenerWithoutProtocol(name.clone()));
            }
        } else {
            if !roles.broker && !listeners.iter().all(is_controller_listener) {
                return Err(ClusterConfigError::ControllerOnlyHasBrokerListener);
            }
            if !self.voters.is_empty() && !is_voter {
                return Err(ClusterConfigError::ControllerNotVoter {
                    node_id,
                    voters: voters(),
                });
            }
            if !listeners.iter().any(is_controller_listener) {
                return Err(ClusterConfigError::NoControllerListener);
            }
            if !self
                .controller_listener_names
                .iter()
                .all(|n| listeners.iter().any(|l| &l.name == n))
            {
                return Err(ClusterConfigError::UnknownControllerListener);
            }
        }
        if roles.broker {
            let broker_listeners: Vec<&str> = advertised
                .iter()
                .filter(|l| !is_controller_listener(l))
                .map(|l| l.name.as_str())
                .collect();
            if broker_listeners.is_empty() {
                return Err(ClusterConfigError::NoBrokerListener);
            }
            let inter_broker = self.inter_broker_listener_name.as_deref().unwrap_or("PLAINTEXT");
            if !broker_listeners.contains(&inter_broker) {
                return Err(ClusterConfigError::InterBrokerListenerNotAdvertised {
                    options: broker_listeners.join(","),
                });
            }
        }
        self.controller_security_protocol = self
            .controller_listener_names
            .first()
            .and_then(|n| protocols.get(n))
            .copied();
        Ok(())
    }

    /// Where this node's controller listener is reached, as `--standalone`
    /// records it: the first controller listener, advertised if it is, with
    /// an empty host read as localhost (Kafka does the same).
    pub fn controller_endpoint(
        &self,
        listeners: &[ListenerSpec],
        advertised: &[ListenerSpec],
    ) -> Option<(String, u16)> {
        let name = self.controller_listener_names.first()?;
        let listener = advertised
            .iter()
            .find(|l| &l.name == name)
            .or_else(|| listeners.iter().find(|l| &l.name == name))?;
        let host = if listener.host.is_empty() {
            "localhost".to_string()
        } else {
            listener.host.clone()
        };
        Some((host, listener.port))
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Comma-separated items, trimmed, empty ones dropped (Kafka's LIST type).
fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_roles(value: &str) -> Result<ProcessRoles, ConfigError> {
    let key = "process.roles";
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    // Kafka drops a repeated role with a warning; so does this.
    for role in items(value) {
        match role {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(invalid(
                    key,
                    value,
                    format!("unknown role '{other}': each must be one of: broker, controller"),
                ))
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(invalid(
            key,
            value,
            "must not be empty. Valid values include: [broker, controller]",
        ));
    }
    Ok(roles)
}

/// Why a `host:port` did not parse: Kafka words the two apart.
enum HostPortError {
    Malformed,
    PortOutOfRange,
}

/// `host:port` or `[ipv6]:port`.
fn parse_host_port(entry: &str) -> Result<(String, u16), HostPortError> {
    let (host, port) = entry.rsplit_once(':').ok_or(HostPortError::Malformed)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostPortError::Malformed);
    }
    let port = port.parse::<u16>().map_err(|_| HostPortError::PortOutOfRange)?;
    Ok((host.to_string(), port))
}

fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let form = "Each entry should be in the form `{id}@{host}:{port}`.";
    let mut voters: Vec<Voter> = Vec::new();
    for entry in items(value) {
        let Some((id, address)) = entry.split_once('@').filter(|(_, a)| !a.contains('@')) else {
            return Err(invalid(key, value, form));
        };
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| invalid(key, value, format!("Failed to parse voter ID as an integer from {id}")))?;
        if id < 0 {
            return Err(invalid(key, value, format!("voter ID {id} is negative")));
        }
        let (host, port) = parse_host_port(address.trim()).map_err(|e| match e {
            HostPortError::PortOutOfRange => invalid(key, value, format!("port out of range in entry {entry}")),
            HostPortError::Malformed => invalid(
                key,
                value,
                format!("Failed to parse host name from entry {entry}. {form}"),
            ),
        })?;
        // Kafka keeps the last of two entries with one id; a quorum with a
        // voter named twice is a typo, so it is refused here.
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("voter ID {id} appears more than once")));
        }
        voters.push(Voter {
            id,
            host,
            port,
            directory_id: None,
        });
    }
    Ok(voters)
}

fn parse_bootstrap_servers(value: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    let key = "controller.quorum.bootstrap.servers";
    items(value)
        .map(|entry| {
            parse_host_port(entry).map_err(|e| match e {
                HostPortError::PortOutOfRange => invalid(key, value, format!("port out of range in entry {entry}")),
                HostPortError::Malformed => invalid(
                    key,
                    value,
                    format!("Failed to parse host name from {entry}. Each entry should be in the form \"{{host}}:{{port}}\""),
                ),
            })
        })
        .collect()
}

fn parse_controller_listener_names(value: &str) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = items(value).map(str::to_ascii_uppercase).collect();
    if names.is_empty() {
        return Err(invalid(
            "controller.listener.names",
            value,
            "must not be empty. Valid values include: any non-empty value",
        ));
    }
    Ok(names)
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
