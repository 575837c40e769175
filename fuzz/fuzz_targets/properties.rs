//! Configuration text: server.properties (config::properties::parse, then
//! BrokerConfig::from_properties), and the same pairs as the topic and
//! group configs clients send (CreateTopics, IncrementalAlterConfigs):
//! each value checked, then a topic's LogConfig resolved from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::config::topic::{topic_config_def, validate_value, LogConfig, TopicDefaults};
use sluice::config::{group, properties, BrokerConfig};
use std::collections::BTreeMap;

/// Keys whose value may name a file the broker reads at start (PEM, keytab,
/// JWKS): the fuzzer must not read the machine's files.
fn names_a_file(key: &str, value: &str) -> bool {
    ["ssl.", "keytab", "jwks", "file", "location", "store"]
        .iter()
        .any(|k| key.contains(k))
        || value.to_ascii_lowercase().contains("keytab")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut props = properties::parse(text);
    props.retain(|k, v| !names_a_file(k, v));
    let _ = BrokerConfig::from_properties(props.clone());

    let mut topic = BTreeMap::new();
    for (key, value) in &props {
        if let Some(def) = topic_config_def(key) {
            if validate_value(def, value).is_ok() {
                topic.insert(key.clone(), value.clone());
            }
        }
    }
    let _ = LogConfig::resolve(&TopicDefaults::default(), &topic);
    if let Ok(defaults) = TopicDefaults::from_broker_properties(&props) {
        let _ = LogConfig::resolve(&defaults, &topic);
    }
    let all: BTreeMap<String, String> = props.into_iter().collect();
    let _ = group::validate(&all, &BTreeMap::new());
});
