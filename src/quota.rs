//! Client quotas on produce and fetch bytes, as Kafka's ClientQuotaManager
//! enforces them: the quota that applies to a (user, client id) is found in
//! Kafka's order of precedence, the bytes are counted in a rolling window of
//! `quota.window.num` samples of `quota.window.size.seconds`, and a client
//! over its rate is told how long to wait (throttle_time_ms) and is not read
//! from for that long.

use crate::metadata::image::ClientQuota;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";

/// The entity keys a quota may be set on, by entity type.
pub const USER_AND_CLIENT_KEYS: &[&str] = &[
    PRODUCER_BYTE_RATE,
    CONSUMER_BYTE_RATE,
    "request_percentage",
    "controller_mutation_rate",
];
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";
pub const IP_KEYS: &[&str] = &[CONNECTION_CREATION_RATE];

/// (quota key, user or "", client id or ""): whose bytes count together.
type SensorKey = (&'static str, String, String);

pub struct QuotaEnforcer {
    window_ms: i64,
    samples: usize,
    rates: Mutex<HashMap<SensorKey, Rate>>,
}

impl QuotaEnforcer {
    pub fn new(samples: usize, window_ms: i64) -> QuotaEnforcer {
        QuotaEnforcer {
            window_ms: window_ms.max(1),
            samples: samples.max(2),
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// Counts `amount` bytes against the quota `key` that applies to this
    /// client, and returns how long it must wait, in ms (0 when within it or
    /// when no quota applies).
    pub fn record(
        &self,
        quotas: &[ClientQuota],
        key: &'static str,
        user: &str,
        client_id: &str,
        amount: u64,
        now_ms: i64,
    ) -> i32 {
        let Some((quota, sensor)) = applicable(quotas, key, user, client_id) else {
            return 0;
        };
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let rate = rates.entry(sensor).or_default();
        // Kafka's ClientQuotaManager.throttleTime: how long until the rate over
        // the window is back at the quota.
        let throttle = rate
            .record_over(amount as f64, quota, now_ms, self.window_ms, self.samples)
            .unwrap_or(0);
        throttle.min(self.samples as i64 * self.window_ms) as i32
    }

    /// Takes back bytes counted by `record` that were not sent after all (a
    /// throttled fetch is answered without records).
    pub fn unrecord(&self, quotas: &[ClientQuota], key: &'static str, user: &str, client_id: &str, amount: u64) {
        let Some((_, sensor)) = applicable(quotas, key, user, client_id) else {
            return;
        };
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = rates.get_mut(&sensor).and_then(|r| r.windows.back_mut()) {
            last.1 = (last.1 - amount as f64).max(0.0);
        }
    }
}

/// The quota value for `key` and the sensor it is counted on, in Kafka's order:
/// user+client, user+default client, user, default user+client, default
/// user+default client, default user, client, default client. Per request, so
/// nothing is allocated unless a quota applies.
fn applicable(quotas: &[ClientQuota], key: &'static str, user: &str, client_id: &str) -> Option<(f64, SensorKey)> {
    if quotas.is_empty() {
        return None;
    }
    let order: [(Part, Part); 8] = [
        (Some(Some(user)), Some(Some(client_id))),
        (Some(Some(user)), Some(None)),
        (Some(Some(user)), None),
        (Some(None), Some(Some(client_id))),
        (Some(None), Some(None)),
        (Some(None), None),
        (None, Some(Some(client_id))),
        (None, Some(None)),
    ];
    order.iter().find_map(|&(u, c)| {
        let quota = quotas.iter().find(|q| entity_is(q, u, c))?;
        let value = *quota.values.get(key)?;
        let sensor = (
            key,
            u.map_or(String::new(), |_| user.to_string()),
            c.map_or(String::new(), |_| client_id.to_string()),
        );
        Some((value, sensor))
    })
}

/// One part of an entity: None = the entity has no such part; Some(None) = the
/// type's default; Some(Some(name)) = that name.
type Part<'a> = Option<Option<&'a str>>;

/// Whether the quota's entity is exactly these parts (sorted: "client-id", then "user").
fn entity_is(quota: &ClientQuota, user: Part, client: Part) -> bool {
    let wanted = [("client-id", client), ("user", user)];
    let mut parts = quota.entity.iter();
    for (kind, name) in wanted.iter().filter_map(|(k, n)| n.map(|n| (*k, n))) {
        match parts.next() {
            Some((t, n)) if t == kind && n.as_deref() == name => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// Amounts per sample window, oldest first: (window start ms, amount).
#[derive(Default)]
pub(crate) struct Rate {
    windows: VecDeque<(i64, f64)>,
}

impl Rate {
    /// When the newest window began, if any was recorded.
    pub(crate) fn last_window_start(&self) -> Option<i64> {
        self.windows.back().map(|(start, _)| *start)
    }

    /// Takes back an amount recorded last (a connection refused after all).
    pub(crate) fn unrecord(&mut self, amount: f64) {
        if let Some(last) = self.windows.back_mut() {
            last.1 = (last.1 - amount).max(0.0);
        }
    }

    /// Records `amount`, then how long (ms) until the rate is back at
    /// `quota`, if it is over: Kafka's QuotaUtils.throttleTime.
    pub(crate) fn record_over(
        &mut self,
        amount: f64,
        quota: f64,
        now_ms: i64,
        window_ms: i64,
        samples: usize,
    ) -> Option<i64> {
        self.record(amount, now_ms, window_ms, samples);
        let (observed, elapsed_ms) = self.measure(now_ms, window_ms, samples);
        (observed > quota && quota > 0.0).then(|| ((observed - quota) / quota * elapsed_ms as f64).round() as i64)
    }

    fn record(&mut self, amount: f64, now_ms: i64, window_ms: i64, samples: usize) {
        let start = now_ms - now_ms.rem_euclid(window_ms);
        match self.windows.back_mut() {
            Some((s, a)) if *s == start => *a += amount,
            _ => self.windows.push_back((start, amount)),
        }
        let horizon = now_ms - samples as i64 * window_ms;
        while self.windows.len() > samples || self.windows.front().is_some_and(|(s, _)| *s <= horizon) {
            self.windows.pop_front();
        }
    }

    /// Bytes per second over the samples, and the time they span: Kafka's
    /// Rate, which counts at least `samples - 1` whole windows.
    fn measure(&self, now_ms: i64, window_ms: i64, samples: usize) -> (f64, i64) {
        let total: f64 = self.windows.iter().map(|(_, a)| a).sum();
        let oldest = self.windows.front().map_or(now_ms, |(s, _)| *s);
        let mut elapsed = now_ms - oldest;
        let full = elapsed / window_ms;
        let min_full = samples as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * window_ms;
        }
        (total * 1000.0 / elapsed.max(1) as f64, elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn quota(entity: &[(&str, Option<&str>)], key: &str, value: f64) -> ClientQuota {
        ClientQuota {
            entity: entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            values: BTreeMap::from([(key.to_string(), value)]),
        }
    }

    #[test]
    fn the_most_specific_quota_applies() {
        let quotas = vec![
            quota(&[("client-id", None)], PRODUCER_BYTE_RATE, 1.0),
            quota(&[("user", Some("alice"))], PRODUCER_BYTE_RATE, 2.0),
            quota(
                &[("client-id", Some("app")), ("user", Some("alice"))],
                PRODUCER_BYTE_RATE,
                3.0,
            ),
        ];
        let found = |user: &str, client: &str| applicable(&quotas, PRODUCER_BYTE_RATE, user, client);
        assert_eq!(
            found("alice", "app"),
            Some((3.0, (PRODUCER_BYTE_RATE, "alice".into(), "app".into())))
        );
        assert_eq!(
            found("alice", "other"),
            Some((2.0, (PRODUCER_BYTE_RATE, "alice".into(), String::new())))
        );
        assert_eq!(
            found("bob", "x"),
            Some((1.0, (PRODUCER_BYTE_RATE, String::new(), "x".into())))
        );
        assert_eq!(applicable(&quotas, CONSUMER_BYTE_RATE, "alice", "app"), None);
    }

    #[test]
    fn a_client_over_its_rate_waits_until_it_is_back_under() {
        let quotas = vec![quota(&[("client-id", Some("app"))], PRODUCER_BYTE_RATE, 1000.0)];
        let q = QuotaEnforcer::new(11, 1000);
        // 10,000 bytes in the first second: the rate counts over 10 windows at least,
        // so 1000 B/s is reached but not passed.
        assert_eq!(q.record(&quotas, PRODUCER_BYTE_RATE, "u", "app", 10_000, 0), 0);
        // 10,000 more half a second later: 20,000 bytes over the 10.5 s the window spans;
        // at 1000 B/s they take 20 s, so wait 9.5 s more.
        assert_eq!(q.record(&quotas, PRODUCER_BYTE_RATE, "u", "app", 10_000, 500), 9_500);
        // Another client id is not counted with it, and has no quota.
        assert_eq!(q.record(&quotas, PRODUCER_BYTE_RATE, "u", "other", 1_000_000, 500), 0);
        // Taken back, the bytes no longer count.
        q.unrecord(&quotas, PRODUCER_BYTE_RATE, "u", "app", 10_000);
        assert_eq!(q.record(&quotas, PRODUCER_BYTE_RATE, "u", "app", 0, 600), 0);
        // Eleven seconds later the old windows have left the samples.
        assert_eq!(q.record(&quotas, PRODUCER_BYTE_RATE, "u", "app", 5_000, 12_000), 0);
    }
}
