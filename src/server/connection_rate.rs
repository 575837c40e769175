//! Connection creation rates, as Kafka's ConnectionQuotas meters them: each
//! new connection is recorded in the broker's and its listener's rates (over
//! `quota.window.num` windows of `quota.window.size.seconds`); over
//! `max.connection.creation.rate` or the listener's own, the acceptor waits
//! until the rate is back at the quota (the connection is then taken). Over
//! an address's `connection_creation_rate` quota the connection is not
//! taken: it is closed once that wait is over, and counts nowhere.

use crate::config::connection_limits::ConnectionLimitSettings;
use crate::quota::Rate;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Address meters kept before the idle ones are swept out.
const FORGET_ABOVE: usize = 4096;

#[derive(Hash, PartialEq, Eq, Clone)]
enum Meter {
    Broker,
    Listener(String),
    Address(IpAddr),
}

pub struct ConnectionRates {
    window_ms: i64,
    samples: usize,
    /// No wait longer than one window (Kafka's maxThrottleTimeMs).
    max_wait_ms: i64,
    meters: Mutex<HashMap<Meter, Rate>>,
}

impl Default for ConnectionRates {
    /// Kafka's defaults: 11 windows of one second.
    fn default() -> Self {
        ConnectionRates::new(11, 1000)
    }
}

impl ConnectionRates {
    pub fn new(samples: usize, window_ms: i64) -> ConnectionRates {
        ConnectionRates {
            window_ms: window_ms.max(1),
            samples: samples.max(2),
            max_wait_ms: window_ms.max(1),
            meters: Mutex::new(HashMap::new()),
        }
    }

    /// Records a new connection on `listener` (and the broker's rate, unless
    /// `protected`): how long the acceptor waits before taking it, in ms.
    pub fn record_on_listener(
        &self,
        listener: &str,
        protected: bool,
        limits: &ConnectionLimitSettings,
        now_ms: i64,
    ) -> i64 {
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = 0;
        if !protected {
            wait = self.record(&mut meters, Meter::Broker, limits.broker_rate().map(f64::from), now_ms);
        }
        let own = self.record(
            &mut meters,
            Meter::Listener(listener.to_string()),
            limits.listener_rate(listener).map(f64::from),
            now_ms,
        );
        wait.max(own)
    }

    /// Records a connection from `ip` against its address quota. Over it:
    /// the connection is taken back from every rate, and the time until the
    /// address is back at its quota is returned (Kafka closes the connection
    /// then).
    pub fn record_from_address(
        &self,
        listener: &str,
        protected: bool,
        ip: IpAddr,
        limits: &ConnectionLimitSettings,
        now_ms: i64,
    ) -> Option<i64> {
        let quota = limits.ip_rate(ip)?;
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        if meters.len() > FORGET_ABOVE {
            self.forget_idle_in(&mut meters, now_ms);
        }
        let wait = self.record(&mut meters, Meter::Address(ip), Some(quota), now_ms);
        if wait == 0 {
            return None;
        }
        let mut taken_back = vec![Meter::Address(ip), Meter::Listener(listener.to_string())];
        if !protected {
            taken_back.push(Meter::Broker);
        }
        for meter in taken_back {
            if let Some(rate) = meters.get_mut(&meter) {
                rate.unrecord(1.0);
            }
        }
        Some(wait)
    }

    fn record(&self, meters: &mut HashMap<Meter, Rate>, meter: Meter, quota: Option<f64>, now_ms: i64) -> i64 {
        let rate = meters.entry(meter).or_default();
        // Recorded even without a quota, so one set later sees the recent past.
        let quota = quota.unwrap_or(f64::MAX);
        rate.record_over(1.0, quota, now_ms, self.window_ms, self.samples)
            .map_or(0, |ms| ms.clamp(0, self.max_wait_ms))
    }

    /// Forgets the addresses that have made no connection for a while (their
    /// windows are all in the past), so the table does not grow with every
    /// address ever seen.
    pub fn forget_idle(&self, now_ms: i64) {
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        self.forget_idle_in(&mut meters, now_ms);
    }

    fn forget_idle_in(&self, meters: &mut HashMap<Meter, Rate>, now_ms: i64) {
        let horizon = now_ms - self.samples as i64 * self.window_ms;
        meters.retain(|meter, rate| {
            !matches!(meter, Meter::Address(_)) || rate.last_window_start().is_some_and(|s| s > horizon)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn limits() -> ConnectionLimitSettings {
        ConnectionLimitSettings::default()
    }

    #[test]
    fn without_a_rate_set_nothing_waits() {
        let rates = ConnectionRates::default();
        for i in 0..1000 {
            assert_eq!(rates.record_on_listener("PLAINTEXT", false, &limits(), i), 0);
            assert_eq!(rates.record_from_address("PLAINTEXT", false, A, &limits(), i), None);
        }
    }

    #[test]
    fn the_broker_rate_makes_the_acceptor_wait_as_kafkas_rate_measures() {
        let mut l = limits();
        l.max_creation_rate = 5;
        let rates = ConnectionRates::default();
        // Kafka's Rate spans ten windows at least at the start: 50 connections
        // in the first moment are 5 a second, the 51st is over.
        for _ in 0..50 {
            assert_eq!(rates.record_on_listener("PLAINTEXT", false, &l, 0), 0);
        }
        let wait = rates.record_on_listener("PLAINTEXT", false, &l, 0);
        assert!(wait > 0 && wait <= 1000, "{wait}");
        // The inter-broker listener of a broker with others is not held back.
        assert_eq!(rates.record_on_listener("BROKER", true, &l, 0), 0);
    }

    #[test]
    fn a_listener_rate_holds_only_that_listener() {
        let mut l = limits();
        l.listener_creation_rate.insert("EXTERNAL".into(), 1);
        let rates = ConnectionRates::default();
        for _ in 0..10 {
            rates.record_on_listener("EXTERNAL", false, &l, 0);
        }
        assert!(rates.record_on_listener("EXTERNAL", false, &l, 0) > 0);
        assert_eq!(rates.record_on_listener("PLAINTEXT", false, &l, 0), 0);
    }

    #[test]
    fn an_address_over_its_quota_is_refused_and_not_counted() {
        let mut l = limits();
        l.ip_creation_rate.insert(A, 2.0);
        let rates = ConnectionRates::default();
        for _ in 0..20 {
            assert_eq!(rates.record_from_address("PLAINTEXT", false, A, &l, 0), None);
        }
        let refused = rates.record_from_address("PLAINTEXT", false, A, &l, 0);
        assert!(refused.is_some_and(|ms| ms > 0 && ms <= 1000), "{refused:?}");
        // Refused connections do not count: still exactly at the quota.
        assert!(rates.record_from_address("PLAINTEXT", false, A, &l, 0).is_some());
        // Another address, under the default (none): taken.
        let b = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(rates.record_from_address("PLAINTEXT", false, b, &l, 0), None);
        // Eleven seconds on, the old windows are gone.
        assert_eq!(rates.record_from_address("PLAINTEXT", false, A, &l, 11_000), None);
        rates.forget_idle(30_000);
        assert!(rates
            .meters
            .lock()
            .unwrap()
            .keys()
            .all(|m| !matches!(m, Meter::Address(_))));
    }
}
