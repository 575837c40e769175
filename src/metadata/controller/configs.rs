//! Config changes: topic overrides and dynamic broker configs, as
//! ConfigRecords. `edit` gets the resource's current configs and changes
//! them; the controller checks the result and records the difference.

use super::topics::validate_topic_configs;
use super::{topic_defaults, Controller, ControllerError, ControllerResult};
use crate::config::dynamic_broker::{is_listener_security_key, update_mode, UpdateMode};
use crate::config::group as group_config;
use crate::config::topic::is_topic_default_key;
use crate::metadata::image::MetadataImage;
use crate::metadata::records::{ConfigResource, MetadataRecord};
use crate::replication::throttle;
use std::collections::BTreeMap;
use tracing::info;

type Edit = Box<dyn FnOnce(&mut BTreeMap<String, String>) -> Result<(), ControllerError> + Send>;

/// Records that turn `before` into `after`.
fn config_records(
    resource: &ConfigResource,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let removed = before.keys().filter(|k| !after.contains_key(*k)).map(|k| (k, None));
    let set = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k, Some(v.clone())));
    removed
        .chain(set)
        .map(|(name, value)| MetadataRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value,
        })
        .collect()
}

impl Controller {
    /// Changes a topic's config overrides.
    pub async fn alter_topic_configs(
        &self,
        topic: String,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), ControllerError> + Send + 'static,
    ) -> Result<(), ControllerError> {
        let edit: Edit = Box::new(edit);
        self.write(move |image, _| {
            let result = (|| {
                if image.topics.get(&topic).is_none() {
                    return Err(ControllerError::UnknownTopicOrPartition);
                }
                let resource = ConfigResource::Topic(topic.clone());
                let before = image.configs_of(&resource);
                let mut after = before.clone();
                edit(&mut after)?;
                validate_topic_configs(&after)?;
                let records = if validate_only {
                    Vec::new()
                } else {
                    config_records(&resource, before, &after)
                };
                Ok(records)
            })();
            match result {
                Ok(records) => {
                    if !records.is_empty() {
                        info!(topic = %topic, "changed topic configs");
                    }
                    ControllerResult::of(records, Ok(()))
                }
                Err(e) => ControllerResult::none(Err(e)),
            }
        })
        .await?
    }

    /// Changes dynamic broker configs, of one broker (`Some(id)`) or every
    /// broker's default. Only the keys that set topic defaults may change.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), ControllerError> + Send + 'static,
    ) -> Result<(), ControllerError> {
        let edit: Edit = Box::new(edit);
        self.write(move |image, config| {
            let resource = ConfigResource::Broker(broker);
            let result = check_broker_configs(image, config, &resource, edit).map(|(before, after)| {
                if validate_only {
                    Vec::new()
                } else {
                    config_records(&resource, &before, &after)
                }
            });
            match result {
                Ok(records) => {
                    if !records.is_empty() {
                        info!(per_broker = broker.is_some(), "changed broker configs");
                    }
                    ControllerResult::of(records, Ok(()))
                }
                Err(e) => ControllerResult::none(Err(e)),
            }
        })
        .await?
    }
}

impl Controller {
    /// Changes a group's config overrides. The group need not exist (Kafka
    /// keeps them for a group id whether or not it has members or offsets).
    pub async fn alter_group_configs(
        &self,
        group: String,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), ControllerError> + Send + 'static,
    ) -> Result<(), ControllerError> {
        let edit: Edit = Box::new(edit);
        self.write(move |image, config| {
            let resource = ConfigResource::Group(group.clone());
            let before = image.configs_of(&resource);
            let mut after = before.clone();
            let result = edit(&mut after).and_then(|()| {
                group_config::validate(&after, &config.static_configs).map_err(ControllerError::InvalidConfig)
            });
            match result {
                Ok(()) if validate_only => ControllerResult::none(Ok(())),
                Ok(()) => {
                    let records = config_records(&resource, before, &after);
                    if !records.is_empty() {
                        info!(group = %group, "changed group configs");
                    }
                    ControllerResult::of(records, Ok(()))
                }
                Err(e) => ControllerResult::none(Err(e)),
            }
        })
        .await?
    }
}

/// The broker configs before and after `edit`, when the result is valid.
#[allow(clippy::type_complexity)]
fn check_broker_configs(
    image: &MetadataImage,
    config: &super::ControllerConfig,
    resource: &ConfigResource,
    edit: Edit,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), ControllerError> {
    let before = image.configs_of(resource).clone();
    let mut after = before.clone();
    edit(&mut after)?;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let fixed: Vec<&String> = changed
        .iter()
        .copied()
        .filter(|k| !is_topic_default_key(k) && !throttle::is_rate_key(k) && update_mode(k).is_none())
        .collect();
    // Kafka's messages, naming the keys as a Java set prints them.
    let java_set = |keys: &[&String]| format!("[{}]", keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "));
    if !fixed.is_empty() {
        return Err(ControllerError::InvalidRequest(format!(
            "Cannot update these configs dynamically: {}",
            java_set(&fixed)
        )));
    }
    let unprefixed: Vec<&String> = changed
        .iter()
        .copied()
        .filter(|k| is_listener_security_key(k))
        .collect();
    if !unprefixed.is_empty() {
        return Err(ControllerError::InvalidRequest(format!(
            "These security configs can be dynamically updated only per-listener using the listener prefix: {}",
            java_set(&unprefixed)
        )));
    }
    if *resource == ConfigResource::Broker(None) {
        let per_broker: Vec<&String> = changed
            .iter()
            .copied()
            .filter(|k| update_mode(k) == Some(UpdateMode::PerBroker))
            .collect();
        if !per_broker.is_empty() {
            return Err(ControllerError::InvalidRequest(format!(
                "Cannot update these configs at default cluster level, broker id must be specified: {}",
                java_set(&per_broker)
            )));
        }
    }
    for (k, v) in after.iter().filter(|(k, _)| throttle::is_rate_key(k)) {
        throttle::check_rate(k, v).map_err(ControllerError::InvalidConfig)?;
    }
    // The new layering must resolve: every value valid for its topic key.
    let mut trial = image.clone();
    std::sync::Arc::make_mut(&mut trial.configs).insert(resource.clone(), after.clone());
    topic_defaults(&trial, config.node_id, &config.static_configs)
        .map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
    Ok((before, after))
}
