//! Group configs (config resource type GROUP, Kafka 4.x's GroupConfig): per
//! group overrides of the broker's `group.consumer.*`, `group.share.*` and
//! `group.streams.*` settings, set with `kafka-configs --entity-type groups`.
//! The names, types, defaults and checks are Kafka 4.4's (read from its
//! jars); each value must also lie within the broker's min/max bounds.

use super::topic::ConfigType;
use std::collections::BTreeMap;

/// How a value is checked beyond its type.
#[derive(Debug, Clone, Copy)]
enum Check {
    Free,
    /// ConfigDef's own validator: at least this much.
    AtLeast(i64),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    ShareAutoOffsetReset,
    DeadLetterTopic,
}

/// Where the broker bounds a group's value: a (min key, default) and a
/// (max key, default); either may be absent.
type Bound = Option<(&'static str, i64)>;

pub struct GroupConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// The broker config that sets the value for groups without an override.
    pub broker_key: Option<&'static str>,
    pub default: &'static str,
    /// Kafka's internal configs: settable, but described only when set.
    pub internal: bool,
    check: Check,
    min: Bound,
    max: Bound,
}

const fn def(
    name: &'static str,
    kind: ConfigType,
    broker_key: Option<&'static str>,
    default: &'static str,
    check: Check,
    min: Bound,
    max: Bound,
) -> GroupConfigDef {
    GroupConfigDef {
        name,
        kind,
        broker_key,
        default,
        internal: false,
        check,
        min,
        max,
    }
}

const fn internal(mut d: GroupConfigDef) -> GroupConfigDef {
    d.internal = true;
    d
}

use Check::*;
use ConfigType::{Boolean, Int, List, Long, String as Str};

pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    def(
        "consumer.session.timeout.ms",
        Int,
        Some("group.consumer.session.timeout.ms"),
        "45000",
        AtLeast(1),
        Some(("group.consumer.min.session.timeout.ms", 45000)),
        Some(("group.consumer.max.session.timeout.ms", 60000)),
    ),
    def(
        "consumer.heartbeat.interval.ms",
        Int,
        Some("group.consumer.heartbeat.interval.ms"),
        "5000",
        AtLeast(1),
        Some(("group.consumer.min.heartbeat.interval.ms", 5000)),
        Some(("group.consumer.max.heartbeat.interval.ms", 15000)),
    ),
    def(
        "consumer.assignment.interval.ms",
        Int,
        Some("group.consumer.assignment.interval.ms"),
        "1000",
        AtLeast(0),
        Some(("group.consumer.min.assignment.interval.ms", 0)),
        Some(("group.consumer.max.assignment.interval.ms", 15000)),
    ),
    internal(def(
        "consumer.assignor.offload.enable",
        Boolean,
        Some("group.consumer.assignor.offload.enable"),
        "true",
        Free,
        None,
        None,
    )),
    def(
        "share.session.timeout.ms",
        Int,
        Some("group.share.session.timeout.ms"),
        "45000",
        AtLeast(1),
        Some(("group.share.min.session.timeout.ms", 45000)),
        Some(("group.share.max.session.timeout.ms", 60000)),
    ),
    def(
        "share.heartbeat.interval.ms",
        Int,
        Some("group.share.heartbeat.interval.ms"),
        "5000",
        AtLeast(1),
        Some(("group.share.min.heartbeat.interval.ms", 5000)),
        Some(("group.share.max.heartbeat.interval.ms", 15000)),
    ),
    def(
        "share.record.lock.duration.ms",
        Int,
        Some("group.share.record.lock.duration.ms"),
        "30000",
        AtLeast(1000),
        Some(("group.share.min.record.lock.duration.ms", 15000)),
        Some(("group.share.max.record.lock.duration.ms", 60000)),
    ),
    def(
        "share.delivery.count.limit",
        Int,
        Some("group.share.delivery.count.limit"),
        "5",
        AtLeast(2),
        Some(("group.share.min.delivery.count.limit", 2)),
        Some(("group.share.max.delivery.count.limit", 10)),
    ),
    def(
        "share.partition.max.record.locks",
        Int,
        Some("group.share.partition.max.record.locks"),
        "2000",
        AtLeast(100),
        Some(("group.share.min.partition.max.record.locks", 100)),
        Some(("group.share.max.partition.max.record.locks", 4000)),
    ),
    def(
        "share.auto.offset.reset",
        Str,
        None,
        "latest",
        ShareAutoOffsetReset,
        None,
        None,
    ),
    def(
        "share.isolation.level",
        Str,
        None,
        "read_uncommitted",
        OneOf(&["read_committed", "read_uncommitted"]),
        None,
        None,
    ),
    def(
        "share.renew.acknowledge.enable",
        Boolean,
        None,
        "true",
        Free,
        None,
        None,
    ),
    def(
        "share.assignment.interval.ms",
        Int,
        Some("group.share.assignment.interval.ms"),
        "1000",
        AtLeast(0),
        Some(("group.share.min.assignment.interval.ms", 0)),
        Some(("group.share.max.assignment.interval.ms", 15000)),
    ),
    internal(def(
        "share.assignor.offload.enable",
        Boolean,
        Some("group.share.assignor.offload.enable"),
        "true",
        Free,
        None,
        None,
    )),
    def(
        "streams.session.timeout.ms",
        Int,
        Some("group.streams.session.timeout.ms"),
        "45000",
        AtLeast(1),
        Some(("group.streams.min.session.timeout.ms", 45000)),
        Some(("group.streams.max.session.timeout.ms", 60000)),
    ),
    def(
        "streams.heartbeat.interval.ms",
        Int,
        Some("group.streams.heartbeat.interval.ms"),
        "5000",
        AtLeast(1),
        Some(("group.streams.min.heartbeat.interval.ms", 5000)),
        Some(("group.streams.max.heartbeat.interval.ms", 15000)),
    ),
    def(
        "streams.num.standby.replicas",
        Int,
        Some("group.streams.num.standby.replicas"),
        "0",
        AtLeast(0),
        None,
        Some(("group.streams.max.standby.replicas", 2)),
    ),
    def(
        "streams.initial.rebalance.delay.ms",
        Int,
        Some("group.streams.initial.rebalance.delay.ms"),
        "3000",
        AtLeast(0),
        None,
        None,
    ),
    def(
        "streams.assignment.interval.ms",
        Int,
        Some("group.streams.assignment.interval.ms"),
        "1000",
        AtLeast(0),
        Some(("group.streams.min.assignment.interval.ms", 0)),
        Some(("group.streams.max.assignment.interval.ms", 15000)),
    ),
    internal(def(
        "streams.assignor.offload.enable",
        Boolean,
        Some("group.streams.assignor.offload.enable"),
        "true",
        Free,
        None,
        None,
    )),
    internal(def(
        "streams.task.offset.interval.ms",
        Int,
        Some("group.streams.task.offset.interval.ms"),
        "60000",
        AtLeast(1),
        Some(("group.streams.min.task.offset.interval.ms", 15000)),
        None,
    )),
    internal(def(
        "streams.num.warmup.replicas",
        Int,
        Some("group.streams.num.warmup.replicas"),
        "2",
        AtLeast(0),
        None,
        Some(("group.streams.max.warmup.replicas", 20)),
    )),
    def(
        "streams.rack.aware.assignment.tags",
        List,
        Some("group.streams.rack.aware.assignment.tags"),
        "",
        Free,
        None,
        None,
    ),
    internal(def(
        "streams.acceptable.recovery.lag",
        Long,
        Some("group.streams.acceptable.recovery.lag"),
        "10000",
        AtLeast(0),
        None,
        None,
    )),
    def(
        "streams.assignor.name",
        Str,
        Some("group.streams.assignors"),
        "sticky",
        Free,
        None,
        None,
    ),
    def(
        "errors.deadletterqueue.topic.name",
        Str,
        None,
        "",
        DeadLetterTopic,
        None,
        None,
    ),
    def(
        "errors.deadletterqueue.copy.record.enable",
        Boolean,
        None,
        "false",
        Free,
        None,
        None,
    ),
];

pub fn group_config_def(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// A broker key that sets or bounds a group config (read for validation and
/// described as the group's default).
pub fn is_broker_group_key(key: &str) -> bool {
    GROUP_CONFIGS.iter().any(|d| {
        d.broker_key == Some(key) || d.min.is_some_and(|(k, _)| k == key) || d.max.is_some_and(|(k, _)| k == key)
    })
}

/// The broker's value of a key, or Kafka's default for it.
fn broker_int(broker: &BTreeMap<String, String>, key: &str, default: i64) -> i64 {
    broker.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

impl GroupConfigDef {
    /// The value a group without an override gets: the broker's setting, else
    /// Kafka's default. (The streams assignor default is the first one listed.)
    pub fn broker_value(&self, broker: &BTreeMap<String, String>) -> Option<(&'static str, String)> {
        let key = self.broker_key?;
        let value = broker.get(key)?;
        let value = if self.name == "streams.assignor.name" {
            value.split(',').next().unwrap_or_default().trim().to_string()
        } else {
            value.clone()
        };
        Some((key, value))
    }

    /// The name Kafka gives the default in its synonyms: the broker key, or
    /// the group key itself for configs with no broker counterpart.
    pub fn default_synonym(&self) -> &'static str {
        self.broker_key.unwrap_or(self.name)
    }
}

/// A group's value of a config: its own override, else the broker's
/// setting, else Kafka's default.
pub fn effective_value(name: &str, broker: &BTreeMap<String, String>, group: &BTreeMap<String, String>) -> String {
    if let Some(v) = group.get(name) {
        return v.clone();
    }
    match group_config_def(name) {
        Some(d) => d.broker_value(broker).map_or_else(|| d.default.to_string(), |(_, v)| v),
        None => String::new(),
    }
}

/// Checks a group's whole set of overrides as Kafka's GroupConfig.validate
/// does: known names, then each value's type and validator, then the broker's
/// bounds. The error is Kafka's InvalidConfigurationException message.
pub fn validate(configs: &BTreeMap<String, String>, broker: &BTreeMap<String, String>) -> Result<(), String> {
    for name in configs.keys() {
        if group_config_def(name).is_none() {
            return Err(format!("Unknown group config name: {name}"));
        }
    }
    let mut ints: BTreeMap<&str, i64> = BTreeMap::new();
    for (name, value) in configs {
        let Some(def) = group_config_def(name) else {
            continue;
        };
        let invalid = |reason: &str| format!("Invalid value {value} for configuration {name}: {reason}");
        let trimmed = value.trim();
        match def.kind {
            Int | Long => {
                let n: i64 = match (def.kind, trimmed.parse::<i64>()) {
                    (Int, Ok(n)) if i32::try_from(n).is_ok() => n,
                    (Long, Ok(n)) => n,
                    _ => {
                        let kind = if def.kind == Int { "INT" } else { "LONG" };
                        return Err(invalid(&format!("Not a number of type {kind}")));
                    }
                };
                if let AtLeast(min) = def.check {
                    if n < min {
                        return Err(invalid(&format!("Value must be at least {min}")));
                    }
                }
                ints.insert(def.name, n);
            }
            Boolean => {
                if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                    return Err(invalid("Expected value to be either true or false"));
                }
            }
            _ => match def.check {
                OneOf(allowed) if !allowed.contains(&trimmed) => {
                    return Err(invalid(&format!("String must be one of: {}", allowed.join(", "))));
                }
                ShareAutoOffsetReset if !valid_auto_offset_reset(trimmed) => {
                    return Err(invalid(&format!(
                        "Invalid value `{value}` for configuration {name}. The value must be either \
                         'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
                    )));
                }
                _ => {}
            },
        }
    }
    // The broker's bounds, in the order Kafka checks them.
    for def in GROUP_CONFIGS {
        let Some(&n) = ints.get(def.name) else {
            continue;
        };
        let min = def.min.map(|(k, d)| broker_int(broker, k, d));
        let max = def.max.map(|(k, d)| broker_int(broker, k, d));
        match (min, max) {
            (Some(lo), Some(hi)) if n < lo || n > hi => {
                return Err(format!("{} must be in the range {lo} to {hi} inclusive.", def.name));
            }
            (None, Some(hi)) if n > hi => {
                return Err(format!("{} must be less than or equal to {hi}", def.name));
            }
            (Some(lo), None) if n < lo => {
                return Err(format!("{} must be greater than or equal to {lo}", def.name));
            }
            _ => {}
        }
    }
    if let Some(assignor) = configs.get("streams.assignor.name") {
        let registered = broker
            .get("group.streams.assignors")
            .cloned()
            .unwrap_or_else(|| "sticky".to_string());
        if !registered.split(',').any(|a| a.trim() == assignor) {
            return Err(format!(
                "streams.assignor.name '{assignor}' is not a registered task assignor. Registered assignors are: [{}].",
                registered.split(',').map(str::trim).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for (session, heartbeat) in [
        ("consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"),
        ("share.session.timeout.ms", "share.heartbeat.interval.ms"),
        ("streams.session.timeout.ms", "streams.heartbeat.interval.ms"),
    ] {
        let effective = |key: &str| {
            ints.get(key).copied().unwrap_or_else(|| {
                let def = group_config_def(key).expect("a group config");
                def.broker_value(broker)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or_else(|| def.default.parse().unwrap_or(0))
            })
        };
        if (ints.contains_key(session) || ints.contains_key(heartbeat)) && effective(session) <= effective(heartbeat) {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    if let Some(topic) = configs.get("errors.deadletterqueue.topic.name") {
        if topic.starts_with("__") {
            return Err("errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'".to_string());
        }
    }
    Ok(())
}

/// `earliest`, `latest` or `by_duration:<ISO-8601 duration>` (not negative).
fn valid_auto_offset_reset(value: &str) -> bool {
    match value {
        "earliest" | "latest" => true,
        _ => value
            .strip_prefix("by_duration:")
            .is_some_and(|d| !d.starts_with('-') && iso_duration(d)),
    }
}

/// Java's Duration.parse syntax, PnDTnHnMn.nS: each part a number with its
/// unit letter, in order, at least one part. In milliseconds.
pub fn parse_iso_duration_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let parts = |text: &str, units: &[(char, f64)]| -> Option<(usize, f64)> {
        let (mut count, mut total) = (0, 0.0);
        let mut number = String::new();
        let mut next_unit = 0;
        for c in text.chars() {
            if c.is_ascii_digit() || c == '.' || (c == '-' && number.is_empty()) {
                number.push(c);
                continue;
            }
            let unit = units[next_unit..]
                .iter()
                .position(|(u, _)| u.eq_ignore_ascii_case(&c))?;
            let value: f64 = number.parse().ok()?;
            total += value * units[next_unit + unit].1;
            next_unit += unit + 1;
            number.clear();
            count += 1;
        }
        number.is_empty().then_some((count, total))
    };
    let (day_parts, day_ms) = parts(days, &[('D', 86_400_000.0)])?;
    let ms = match time {
        Some(t) => {
            let (n, ms) = parts(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
            if n == 0 {
                return None;
            }
            day_ms + ms
        }
        None if day_parts > 0 => day_ms,
        None => return None,
    };
    Some(ms as i64)
}

fn iso_duration(s: &str) -> bool {
    parse_iso_duration_ms(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<(), String> {
        let configs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        validate(&configs, &BTreeMap::new())
    }

    #[test]
    fn kafka_messages() {
        assert_eq!(check(&[("consumer.session.timeout.ms", "50000")]), Ok(()));
        assert_eq!(
            check(&[("consumer.session.timeout.ms", "10000")]),
            Err("consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive.".into())
        );
        assert_eq!(
            check(&[("nosuch.config", "1")]),
            Err("Unknown group config name: nosuch.config".into())
        );
        assert_eq!(
            check(&[("consumer.heartbeat.interval.ms", "abc")]),
            Err("Invalid value abc for configuration consumer.heartbeat.interval.ms: Not a number of type INT".into())
        );
        assert_eq!(
            check(&[("streams.num.standby.replicas", "5")]),
            Err("streams.num.standby.replicas must be less than or equal to 2".into())
        );
        assert_eq!(check(&[("streams.num.warmup.replicas", "2")]), Ok(()));
        assert!(check(&[("share.auto.offset.reset", "bogus")])
            .unwrap_err()
            .ends_with("The value must be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."));
        assert_eq!(check(&[("share.auto.offset.reset", "by_duration:PT1H30M")]), Ok(()));
        assert_eq!(check(&[("share.auto.offset.reset", "by_duration:P2D")]), Ok(()));
        assert_eq!(parse_iso_duration_ms("PT1H30M"), Some(5_400_000));
        assert_eq!(parse_iso_duration_ms("P1DT0.5S"), Some(86_400_500));
        assert!(check(&[("share.auto.offset.reset", "by_duration:-PT1H")]).is_err());
        assert!(check(&[("share.auto.offset.reset", "by_duration:PT")]).is_err());
        assert!(check(&[("errors.deadletterqueue.topic.name", "__dlq")]).is_err());
    }
}
