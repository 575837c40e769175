//! DescribeConfigs for topics and this broker, with Kafka's config sources
//! and synonyms.

use super::RequestContext;
use crate::auth::acl;
use crate::broker::Broker;
use crate::config::group::GROUP_CONFIGS;
use crate::config::topic::{ConfigSource, ConfigType, TopicConfigDef, TOPIC_CONFIGS};
use crate::replication::throttle;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const GROUP: i8 = 32;

/// One config as DescribeConfigs and CreateTopics report it.
pub struct ConfigEntry {
    pub name: String,
    /// None where Kafka reports null (a finer-unit key left unset).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub kind: ConfigType,
    pub read_only: bool,
    /// (name, value, source), most specific first.
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// Every topic config with its effective value: the topic's override, else
/// the broker's setting, else Kafka's default.
pub fn topic_config_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    let defaults = broker.replicas.topic_defaults();
    let layers = broker_layers(broker);
    TOPIC_CONFIGS
        .iter()
        .filter(|def| !def.hidden)
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((def.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
            }
            synonyms.extend(broker_synonyms(def, &layers, 0));
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (v.clone(), ConfigSource::DynamicTopic),
                None => defaults
                    .get(def.name)
                    .cloned()
                    .unwrap_or((def.default.to_string(), ConfigSource::Default)),
            };
            ConfigEntry {
                name: def.name.to_string(),
                value: Some(value),
                source,
                kind: def.kind,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

/// A group's configs: its overrides, else the broker's group settings, else
/// Kafka's defaults. Internal configs appear only when set, as in Kafka.
fn group_config_entries(broker: &Broker, group: &str) -> Vec<ConfigEntry> {
    let image = broker.image();
    let overrides = image.configs_of(&crate::metadata::records::ConfigResource::Group(group.to_string()));
    let props: BTreeMap<String, String> = broker
        .config
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    GROUP_CONFIGS
        .iter()
        .filter(|def| !def.internal || overrides.contains_key(def.name))
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((def.name.to_string(), v.clone(), ConfigSource::DynamicGroup));
            }
            if let Some((key, v)) = def.broker_value(&props) {
                synonyms.push((key.to_string(), v, ConfigSource::StaticBroker));
            }
            synonyms.push((
                def.default_synonym().to_string(),
                def.default.to_string(),
                ConfigSource::Default,
            ));
            let (_, value, source) = synonyms[0].clone();
            ConfigEntry {
                name: def.name.to_string(),
                value: Some(value),
                source,
                kind: def.kind,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

/// The broker's own configs, as this node runs with them.
fn broker_config_entries(broker: &Broker) -> Vec<ConfigEntry> {
    let c = &broker.config;
    let props = &c.properties;
    let listeners =
        |ls: &[crate::config::listener::ListenerSpec]| ls.iter().map(|l| l.url()).collect::<Vec<_>>().join(",");
    let mut entries: Vec<(String, String, ConfigType)> = vec![
        (
            "advertised.listeners".into(),
            listeners(&c.advertised_listeners),
            ConfigType::String,
        ),
        (
            "auto.create.topics.enable".into(),
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
        ),
        ("broker.id".into(), c.node_id.to_string(), ConfigType::Int),
        (
            "default.replication.factor".into(),
            c.default_replication_factor.to_string(),
            ConfigType::Int,
        ),
        (
            "delete.topic.enable".into(),
            c.delete_topic_enable.to_string(),
            ConfigType::Boolean,
        ),
        (
            "group.initial.rebalance.delay.ms".into(),
            c.group_initial_rebalance_delay_ms.to_string(),
            ConfigType::Int,
        ),
        ("listeners".into(), listeners(&c.listeners), ConfigType::String),
        (
            "log.dirs".into(),
            c.log_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
        ),
        (
            "log.retention.check.interval.ms".into(),
            c.retention_check_interval_ms.to_string(),
            ConfigType::Long,
        ),
        ("node.id".into(), c.node_id.to_string(), ConfigType::Int),
        ("num.partitions".into(), c.num_partitions.to_string(), ConfigType::Int),
        (
            "socket.request.max.bytes".into(),
            c.socket_request_max_bytes.to_string(),
            ConfigType::Int,
        ),
    ];
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<ConfigEntry> = entries
        .into_iter()
        .map(|(name, value, kind)| {
            let source = if props.contains_key(&name) {
                ConfigSource::StaticBroker
            } else {
                ConfigSource::Default
            };
            ConfigEntry {
                synonyms: vec![(name.clone(), value.clone(), source)],
                name,
                value: Some(value),
                source,
                kind,
                read_only: true,
            }
        })
        .collect();
    // Broker keys that set topic defaults: these change at run time. Each is
    // listed as Kafka lists it: its own value, with the default on the
    // coarsest unit and null on finer ones (log.retention.hours=168,
    // log.retention.ms=null).
    let layers = broker_layers(broker);
    for def in TOPIC_CONFIGS.iter().filter(|d| !d.hidden) {
        let coarsest = def.broker_keys.len().saturating_sub(1);
        for (i, (key, factor)) in def.broker_keys.iter().enumerate() {
            let set = layers
                .iter()
                .find_map(|(props, source)| props.get(*key).map(|v| (v.clone(), *source)));
            let (value, source) = match set {
                Some((v, source)) => (Some(v), source),
                None if i == coarsest => (Some(scaled_default(def, *factor)), ConfigSource::Default),
                None => (None, ConfigSource::Default),
            };
            let synonyms = broker_synonyms(def, &layers, i);
            out.push(ConfigEntry {
                name: key.to_string(),
                value,
                source,
                kind: def.kind,
                read_only: false,
                synonyms,
            });
        }
    }
    // Replication quotas (Long.MAX_VALUE: unlimited), changeable at run time.
    for key in [
        throttle::LEADER_RATE,
        throttle::FOLLOWER_RATE,
        throttle::ALTER_LOG_DIRS_RATE,
    ] {
        let mut synonyms: Vec<(String, String, ConfigSource)> = layers
            .iter()
            .filter_map(|(props, source)| props.get(key).map(|v| (key.to_string(), v.clone(), *source)))
            .collect();
        let (value, source) = synonyms
            .first()
            .map_or((i64::MAX.to_string(), ConfigSource::Default), |(_, v, s)| {
                (v.clone(), *s)
            });
        synonyms.push((key.to_string(), i64::MAX.to_string(), ConfigSource::Default));
        out.push(ConfigEntry {
            name: key.to_string(),
            value: Some(value),
            source,
            kind: ConfigType::Long,
            read_only: false,
            synonyms,
        });
    }
    // Any other dynamic broker config Kafka accepts, where one is set.
    let listed: std::collections::BTreeSet<String> = out.iter().map(|e| e.name.clone()).collect();
    let mut dynamic: BTreeMap<String, Vec<(String, String, ConfigSource)>> = BTreeMap::new();
    for (props, source) in &layers[..2] {
        for (k, v) in props {
            if !listed.contains(k) && crate::config::dynamic_broker::update_mode(k).is_some() {
                dynamic
                    .entry(k.clone())
                    .or_default()
                    .push((k.clone(), v.clone(), *source));
            }
        }
    }
    for (name, synonyms) in dynamic {
        let (value, source) = (synonyms[0].1.clone(), synonyms[0].2);
        out.push(ConfigEntry {
            name,
            value: Some(value),
            source,
            kind: ConfigType::String,
            read_only: false,
            synonyms,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The broker's config layers, most specific first.
fn broker_layers(broker: &Broker) -> Vec<(BTreeMap<String, String>, ConfigSource)> {
    let (per_broker, default) = broker.dynamic_broker_configs();
    let statics = broker
        .config
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vec![
        (per_broker, ConfigSource::DynamicBroker),
        (default, ConfigSource::DynamicDefaultBroker),
        (statics, ConfigSource::StaticBroker),
    ]
}

/// A topic config's built-in default in a broker key's unit (168 for
/// log.retention.hours).
fn scaled_default(def: &TopicConfigDef, factor: i64) -> String {
    def.default
        .parse::<i64>()
        .map(|n| (n / factor).to_string())
        .unwrap_or_else(|_| def.default.to_string())
}

/// Every broker-level setting of a topic config's default from broker key
/// `from` on (finest unit first), most specific layer first, ending as Kafka
/// does with the built-in default on the coarsest key.
fn broker_synonyms(
    def: &TopicConfigDef,
    layers: &[(BTreeMap<String, String>, ConfigSource)],
    from: usize,
) -> Vec<(String, String, ConfigSource)> {
    let keys = def.broker_keys.get(from..).unwrap_or_default();
    let mut out = Vec::new();
    for (props, source) in layers {
        for (key, _) in keys {
            if let Some(v) = props.get(*key) {
                out.push((key.to_string(), v.clone(), *source));
            }
        }
    }
    if let Some((key, factor)) = def.broker_keys.last() {
        out.push((key.to_string(), scaled_default(def, *factor), ConfigSource::Default));
    }
    out
}

/// The cluster-wide dynamic defaults (DescribeConfigs for broker "").
fn default_broker_entries(broker: &Broker) -> Vec<ConfigEntry> {
    let (_, default) = broker.dynamic_broker_configs();
    default
        .into_iter()
        .map(|(name, value)| ConfigEntry {
            synonyms: vec![(name.clone(), value.clone(), ConfigSource::DynamicDefaultBroker)],
            kind: TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_keys.iter().any(|(k, _)| *k == name))
                .map_or(ConfigType::String, |d| d.kind),
            name,
            value: Some(value),
            source: ConfigSource::DynamicDefaultBroker,
            read_only: false,
        })
        .collect()
}

pub async fn handle_describe_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = ctx.api_version;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let fail = |code: i16, msg: String| {
                result
                    .clone()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(msg)))
            };
            let allowed = match r.resource_type {
                TOPIC => broker.authorize(
                    ctx,
                    acl::operation::DESCRIBE_CONFIGS,
                    acl::resource::TOPIC,
                    &r.resource_name,
                ),
                BROKER | BROKER_LOGGER => broker.authorize_cluster(ctx, acl::operation::DESCRIBE_CONFIGS),
                GROUP => broker.authorize(
                    ctx,
                    acl::operation::DESCRIBE_CONFIGS,
                    acl::resource::GROUP,
                    &r.resource_name,
                ),
                _ => true,
            };
            if !allowed {
                let code = match r.resource_type {
                    TOPIC => ResponseError::TopicAuthorizationFailed.code(),
                    GROUP => ResponseError::GroupAuthorizationFailed.code(),
                    _ => ResponseError::ClusterAuthorizationFailed.code(),
                };
                return fail(code, "Authorization failed.".to_string());
            }
            let entries = match r.resource_type {
                TOPIC => match broker.replicas.topic(&r.resource_name) {
                    Some(t) => topic_config_entries(broker, &t.configs),
                    None => {
                        return fail(
                            ResponseError::UnknownTopicOrPartition.code(),
                            format!("Topic {} does not exist", &*r.resource_name),
                        )
                    }
                },
                BROKER if r.resource_name.is_empty() => default_broker_entries(broker),
                BROKER if *r.resource_name == *broker.node_id().to_string() => broker_config_entries(broker),
                BROKER => {
                    return fail(
                        ResponseError::InvalidRequest.code(),
                        format!(
                            "Unexpected broker id, expected {} or empty string, but received {}",
                            broker.node_id(),
                            &*r.resource_name
                        ),
                    )
                }
                BROKER_LOGGER => Vec::new(),
                GROUP if r.resource_name.is_empty() => {
                    return fail(
                        ResponseError::InvalidRequest.code(),
                        "Group name must not be empty".to_string(),
                    )
                }
                GROUP => group_config_entries(broker, &r.resource_name),
                other => {
                    return fail(
                        ResponseError::InvalidRequest.code(),
                        format!("Unsupported resource type {other}"),
                    )
                }
            };
            let configs = entries
                .into_iter()
                .filter(|e| {
                    // As Kafka: a null or an empty key list asks for every config.
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| **k == *e.name))
                })
                .map(|e| {
                    let synonyms = if req.include_synonyms {
                        e.synonyms
                            .iter()
                            .map(|(n, v, s)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(StrBytes::from_string(n.clone()))
                                    .with_value(
                                        (!crate::config::dynamic_broker::is_sensitive(n))
                                            .then(|| StrBytes::from_string(v.clone())),
                                    )
                                    .with_source(*s as i8)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    // Passwords and keys are never shown, as in Kafka.
                    let sensitive = crate::config::dynamic_broker::is_sensitive(&e.name);
                    DescribeConfigsResourceResult::default()
                        .with_value(e.value.filter(|_| !sensitive).map(StrBytes::from_string))
                        .with_name(StrBytes::from_string(e.name))
                        .with_read_only(e.read_only)
                        .with_config_source(e.source as i8)
                        .with_is_sensitive(sensitive)
                        .with_synonyms(synonyms)
                        .with_config_type(if version >= 3 { e.kind as i8 } else { 0 })
                        .with_documentation(None)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
