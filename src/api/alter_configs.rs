//! AlterConfigs (replace a resource's dynamic configs) and
//! IncrementalAlterConfigs (set, delete, append, subtract), for topics and
//! brokers. Changes apply at once and are kept across restarts.

use super::RequestContext;
use crate::auth::acl;
use crate::broker::Broker;
use crate::config::group::group_config_def;
use crate::config::topic::{topic_config_def, ConfigType, TOPIC_CONFIGS};
use crate::metadata::ControllerError as TopicError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashSet};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// One config change as IncrementalAlterConfigs expresses it.
struct Change {
    name: String,
    operation: i8,
    value: Option<String>,
}

/// The config's type, whether it is named as a topic key or a broker key.
/// A topic config's (or its broker key's) built-in default.
fn default_value(name: &str) -> Option<&'static str> {
    topic_config_def(name).map(|d| d.default).or_else(|| {
        TOPIC_CONFIGS
            .iter()
            .find(|d| d.broker_keys.iter().any(|(k, _)| *k == name))
            .map(|d| d.default)
    })
}

fn config_type(name: &str) -> Option<ConfigType> {
    if let Some(def) = group_config_def(name) {
        return Some(def.kind);
    }
    topic_config_def(name).map(|d| d.kind).or_else(|| {
        TOPIC_CONFIGS
            .iter()
            .find(|d| d.broker_keys.iter().any(|(k, _)| *k == name))
            .map(|d| d.kind)
    })
}

fn apply(configs: &mut BTreeMap<String, String>, changes: &[Change]) -> Result<(), TopicError> {
    let mut seen = HashSet::new();
    for c in changes {
        if !seen.insert(c.name.as_str()) {
            return Err(TopicError::InvalidRequest(format!(
                "Error due to duplicate config keys: {}",
                c.name
            )));
        }
    }
    for c in changes {
        match c.operation {
            SET => {
                let value = c
                    .value
                    .clone()
                    .ok_or_else(|| TopicError::InvalidRequest(format!("Null value not supported for: {}", c.name)))?;
                configs.insert(c.name.clone(), value);
            }
            DELETE => {
                configs.remove(&c.name);
            }
            APPEND | SUBTRACT => {
                if config_type(&c.name) != Some(ConfigType::List) {
                    return Err(TopicError::InvalidConfig(format!(
                        "Config value append is not allowed for config key: {}",
                        c.name
                    )));
                }
                // Unset, the list starts from its default, as Kafka's does:
                // APPEND compact to the default cleanup.policy gives "delete,compact".
                let current: Vec<String> = configs
                    .get(&c.name)
                    .cloned()
                    .or_else(|| default_value(&c.name).map(str::to_string))
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let items: Vec<String> = c
                    .value
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                let updated: Vec<String> = if c.operation == APPEND {
                    let mut v = current;
                    for i in items {
                        if !v.contains(&i) {
                            v.push(i);
                        }
                    }
                    v
                } else {
                    current.into_iter().filter(|x| !items.contains(x)).collect()
                };
                configs.insert(c.name.clone(), updated.join(","));
            }
            other => {
                return Err(TopicError::InvalidRequest(format!("Unknown config operation {other}")));
            }
        }
    }
    Ok(())
}

/// Applies changes to one resource; the result code and message.
async fn alter(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), TopicError> + Send + 'static,
) -> Result<(), TopicError> {
    let allowed = match resource_type {
        TOPIC => broker.authorize(ctx, acl::operation::ALTER_CONFIGS, acl::resource::TOPIC, name),
        GROUP => broker.authorize(ctx, acl::operation::ALTER_CONFIGS, acl::resource::GROUP, name),
        _ => broker.authorize_cluster(ctx, acl::operation::ALTER_CONFIGS),
    };
    if !allowed {
        return Err(match resource_type {
            GROUP => TopicError::GroupNotAuthorized,
            t => TopicError::NotAuthorized(t == TOPIC),
        });
    }
    match resource_type {
        TOPIC => {
            broker
                .controller
                .alter_topic_configs(name.to_string(), validate_only, edit)
                .await
        }
        BROKER if name.is_empty() => broker.controller.alter_broker_configs(None, validate_only, edit).await,
        BROKER if name == ctx.node_id.to_string() => {
            broker
                .controller
                .alter_broker_configs(Some(ctx.node_id), validate_only, edit)
                .await
        }
        GROUP => {
            broker
                .controller
                .alter_group_configs(name.to_string(), validate_only, edit)
                .await
        }
        BROKER => Err(TopicError::InvalidRequest(format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            ctx.node_id
        ))),
        other => Err(TopicError::InvalidRequest(format!(
            "Unsupported resource type {other} for altering configs"
        ))),
    }
}

fn outcome(result: Result<(), TopicError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => (e.code(), Some(StrBytes::from_string(e.to_string()))),
    }
}

pub async fn handle_alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        // The legacy API replaces the resource's whole set of dynamic configs.
        let replacement: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let edit = move |configs: &mut BTreeMap<String, String>| {
            *configs = replacement;
            Ok(())
        };
        let result = alter(broker, ctx, r.resource_type, &r.resource_name, req.validate_only, edit).await;
        let (code, message) = outcome(result);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn handle_incremental_alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let changes: Vec<Change> = r
            .configs
            .iter()
            .map(|c| Change {
                name: c.name.to_string(),
                operation: c.config_operation,
                value: c.value.as_ref().map(|v| v.to_string()),
            })
            .collect();
        let edit = move |configs: &mut BTreeMap<String, String>| apply(configs, &changes);
        let result = alter(broker, ctx, r.resource_type, &r.resource_name, req.validate_only, edit).await;
        let (code, message) = outcome(result);
        responses.push(
            IncrementalResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, operation: i8, value: Option<&str>) -> Change {
        Change {
            name: name.into(),
            operation,
            value: value.map(String::from),
        }
    }

    #[test]
    fn incremental_operations() {
        let mut c = BTreeMap::new();
        apply(
            &mut c,
            &[
                change("retention.ms", SET, Some("100")),
                change("cleanup.policy", APPEND, Some("compact")),
            ],
        )
        .unwrap();
        assert_eq!(c["retention.ms"], "100");
        // Appended to the default (delete), as Kafka does.
        assert_eq!(c["cleanup.policy"], "delete,compact");
        apply(&mut c, &[change("cleanup.policy", SUBTRACT, Some("delete"))]).unwrap();
        assert_eq!(c["cleanup.policy"], "compact");
        apply(&mut c, &[change("cleanup.policy", APPEND, Some("delete"))]).unwrap();
        assert_eq!(c["cleanup.policy"], "compact,delete");
        apply(
            &mut c,
            &[
                change("cleanup.policy", SUBTRACT, Some("compact")),
                change("retention.ms", DELETE, None),
            ],
        )
        .unwrap();
        assert_eq!(c["cleanup.policy"], "delete");
        assert!(!c.contains_key("retention.ms"));
        assert!(matches!(
            apply(&mut c, &[change("retention.ms", APPEND, Some("1"))]),
            Err(TopicError::InvalidConfig(_))
        ));
        assert!(matches!(
            apply(&mut c, &[change("a", SET, Some("1")), change("a", DELETE, None)]),
            Err(TopicError::InvalidRequest(_))
        ));
    }
}
