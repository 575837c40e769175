//! Replication throttles (Kafka's ReplicationQuotaManager, KIP-73), which
//! `kafka-reassign-partitions --throttle` sets: a byte rate per broker for
//! what it sends as leader (`leader.replication.throttled.rate`) and fetches
//! as follower (`follower.replication.throttled.rate`), applied only to the
//! replicas a topic lists (`*.replication.throttled.replicas`, "p:broker" or
//! "*") and only while the replica is out of the ISR: a moving replica
//! catches up slowly, those in sync are never held back. Over its rate, a
//! leader answers a throttled partition without records and a follower
//! leaves it out of its next fetch. Rates are measured as Kafka measures
//! them: 11 one-second samples, over at least 10 seconds.

use crate::metadata::image::MetadataImage;
use crate::metadata::records::ConfigResource;
use crate::storage::now_ms;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
/// Accepted as Kafka does (JBOD moves between log dirs are not throttled here).
pub const ALTER_LOG_DIRS_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";

/// The dynamic broker configs of replication quotas (long, at least 0).
pub fn is_rate_key(key: &str) -> bool {
    matches!(key, LEADER_RATE | FOLLOWER_RATE | ALTER_LOG_DIRS_RATE)
}

/// Checks a rate's value as Kafka's ConfigDef does.
pub fn check_rate(key: &str, value: &str) -> Result<(), String> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(()),
        Ok(_) => Err(format!(
            "Invalid value {value} for configuration {key}: Value must be at least 0"
        )),
        Err(_) => Err(format!(
            "Invalid value {value} for configuration {key}: Not a number of type LONG"
        )),
    }
}

const SAMPLES: usize = 11;
const SAMPLE_MS: i64 = 1000;

/// Bytes per one-second sample, the last `SAMPLES` of them.
#[derive(Default)]
struct Window {
    samples: Vec<(i64, u64)>,
}

impl Window {
    fn purge(&mut self, now: i64) {
        let oldest = now - SAMPLES as i64 * SAMPLE_MS;
        self.samples.retain(|(start, _)| *start > oldest);
    }

    fn record(&mut self, bytes: u64, now: i64) {
        self.purge(now);
        let start = now - now.rem_euclid(SAMPLE_MS);
        match self.samples.last_mut() {
            Some((s, b)) if *s == start => *b += bytes,
            _ => self.samples.push((start, bytes)),
        }
    }

    /// Bytes per second (Kafka's Rate: the window counts as at least
    /// SAMPLES - 1 full samples, so a quiet start is not a burst).
    fn rate(&mut self, now: i64) -> f64 {
        self.purge(now);
        let Some((oldest, _)) = self.samples.first() else {
            return 0.0;
        };
        let elapsed = (now - oldest).max((SAMPLES as i64 - 1) * SAMPLE_MS);
        let total: u64 = self.samples.iter().map(|(_, b)| b).sum();
        total as f64 * 1000.0 / elapsed as f64
    }
}

/// One side's byte rate.
pub struct Quota {
    side: &'static str,
    /// Bytes per second; u64::MAX: no limit.
    limit: AtomicU64,
    window: Mutex<Window>,
}

impl Quota {
    fn new(side: &'static str) -> Quota {
        Quota {
            side,
            limit: AtomicU64::new(u64::MAX),
            window: Mutex::default(),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.limit.load(Ordering::Relaxed) != u64::MAX
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the throttled traffic is over the rate now.
    pub fn is_exceeded(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != u64::MAX && self.window().rate(now_ms()) > limit as f64
    }

    /// Throttled bytes sent (leader) or fetched (follower).
    pub fn record(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let rate = {
            let mut window = self.window();
            let now = now_ms();
            window.record(bytes, now);
            window.rate(now)
        };
        metrics::counter!("sluice_replication_throttled_bytes_total", "side" => self.side).increment(bytes);
        metrics::gauge!("sluice_replication_throttled_byte_rate", "side" => self.side).set(rate);
    }

    fn set_limit(&self, limit: Option<u64>) {
        let limit = limit.unwrap_or(u64::MAX);
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            let shown = if limit == u64::MAX { -1.0 } else { limit as f64 };
            metrics::gauge!("sluice_replication_throttled_rate_limit", "side" => self.side).set(shown);
        }
    }
}

/// The partitions of a topic whose replica here is throttled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Throttled {
    #[default]
    None,
    All,
    Some(BTreeSet<i32>),
}

impl Throttled {
    /// "*", or "partition:broker" pairs: those naming `node_id`.
    fn parse(value: Option<&String>, node_id: i32) -> Throttled {
        let Some(value) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            return Throttled::None;
        };
        if value == "*" {
            return Throttled::All;
        }
        let set: BTreeSet<i32> = value
            .split(',')
            .filter_map(|pair| {
                let (p, b) = pair.trim().split_once(':')?;
                (b.trim().parse::<i32>().ok()? == node_id).then(|| p.trim().parse::<i32>().ok())?
            })
            .collect();
        if set.is_empty() {
            Throttled::None
        } else {
            Throttled::Some(set)
        }
    }

    fn contains(&self, index: i32) -> bool {
        match self {
            Throttled::None => false,
            Throttled::All => true,
            Throttled::Some(set) => set.contains(&index),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct TopicThrottle {
    leader: Throttled,
    follower: Throttled,
}

/// This broker's replication quotas and the replicas they apply to.
pub struct ReplicationQuotas {
    node_id: i32,
    pub leader: Quota,
    pub follower: Quota,
    throttled: arc_swap::ArcSwap<HashMap<Uuid, TopicThrottle>>,
}

impl ReplicationQuotas {
    pub fn new(node_id: i32) -> ReplicationQuotas {
        ReplicationQuotas {
            node_id,
            leader: Quota::new("leader"),
            follower: Quota::new("follower"),
            throttled: Default::default(),
        }
    }

    /// Takes the rates and throttled replicas from the image (this broker's
    /// dynamic config, else the cluster default, else the static one).
    pub fn update(&self, image: &MetadataImage, static_configs: &BTreeMap<String, String>) {
        let rate = |key: &str| {
            image
                .configs_of(&ConfigResource::Broker(Some(self.node_id)))
                .get(key)
                .or_else(|| image.configs_of(&ConfigResource::Broker(None)).get(key))
                .or_else(|| static_configs.get(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        self.leader.set_limit(rate(LEADER_RATE));
        self.follower.set_limit(rate(FOLLOWER_RATE));
        let mut throttled = HashMap::new();
        for t in image.topics.iter() {
            let configs = image.topic_configs(&t.name);
            let entry = TopicThrottle {
                leader: Throttled::parse(configs.get(LEADER_REPLICAS), self.node_id),
                follower: Throttled::parse(configs.get(FOLLOWER_REPLICAS), self.node_id),
            };
            if entry.leader != Throttled::None || entry.follower != Throttled::None {
                throttled.insert(t.id, entry);
            }
        }
        self.throttled.store(Arc::new(throttled));
    }

    /// Whether this leader throttles what it sends of the partition to
    /// followers out of the ISR.
    pub fn leader_throttles(&self, topic_id: Uuid, index: i32) -> bool {
        self.leader.is_limited()
            && self
                .throttled
                .load()
                .get(&topic_id)
                .is_some_and(|t| t.leader.contains(index))
    }

    /// Whether this follower throttles its fetches of the partition while
    /// out of the ISR.
    pub fn follower_throttles(&self, topic_id: Uuid, index: i32) -> bool {
        self.follower.is_limited()
            && self
                .throttled
                .load()
                .get(&topic_id)
                .is_some_and(|t| t.follower.contains(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replicas_name_partitions_of_this_broker() {
        let v = |s: &str| Some(s.to_string());
        assert_eq!(Throttled::parse(v("*").as_ref(), 3), Throttled::All);
        let t = Throttled::parse(v("0:1,0:4, 2:4,1:2").as_ref(), 4);
        assert!(t.contains(0) && t.contains(2) && !t.contains(1));
        assert_eq!(Throttled::parse(v("0:1").as_ref(), 4), Throttled::None);
        assert_eq!(Throttled::parse(None, 4), Throttled::None);
    }

    #[test]
    fn the_rate_counts_a_quiet_start_as_ten_seconds() {
        let mut w = Window::default();
        w.record(5_000, 100_000);
        assert_eq!(w.rate(100_500), 500.0, "5,000 bytes over at least 10 s");
        w.record(20_000, 104_000);
        assert_eq!(w.rate(104_000), 2_500.0);
        assert_eq!(w.rate(200_000), 0.0, "old samples expire");
    }

    #[test]
    fn rates_are_longs_of_at_least_zero() {
        assert!(check_rate(LEADER_RATE, "1000000").is_ok());
        assert!(check_rate(LEADER_RATE, "-1")
            .unwrap_err()
            .contains("Value must be at least 0"));
        assert!(check_rate(FOLLOWER_RATE, "fast").is_err());
    }
}
