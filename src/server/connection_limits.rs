//! Connections counted against the limits, as Kafka's ConnectionQuotas
//! counts them: a listener at `listener.name.<l>.max.connections`, or the
//! client listeners together at `max.connections`, stop accepting until a
//! connection closes (the client's connect waits in the kernel's backlog);
//! an address already at `max.connections.per.ip` (or its override) has
//! the new connection closed at once. The inter-broker listener is not held
//! back by `max.connections` when there are other listeners, so brokers can
//! always reach each other. Creation rates are metered on the way in
//! (`connection_rate`).

use super::connection_rate::ConnectionRates;
use crate::config::connection_limits::ConnectionLimitSettings;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a waiting acceptor looks at the limits again even if no
/// connection closed: they may have been raised at run time.
const RECHECK: Duration = Duration::from_secs(1);

pub struct ConnectionCounter {
    counts: Mutex<Counts>,
    freed: Notify,
    rates: ConnectionRates,
    /// The rates' clock (tokio's, so tests may pause it).
    started: tokio::time::Instant,
}

impl Default for ConnectionCounter {
    fn default() -> Self {
        ConnectionCounter::new(ConnectionRates::default())
    }
}

#[derive(Default)]
struct Counts {
    total: u32,
    by_listener: HashMap<String, u32>,
    by_ip: HashMap<IpAddr, u32>,
}

/// One admitted connection; its counts are given back when it is dropped.
pub struct Slot {
    counter: Arc<ConnectionCounter>,
    listener: String,
    ip: IpAddr,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The address already has `max` connections.
    TooManyFromAddress { max: u32 },
    /// The address is over its connection creation rate: the connection is
    /// closed after `ms` (Kafka's delayed close of a throttled socket).
    Throttled { ms: u64 },
}

impl ConnectionCounter {
    pub fn new(rates: ConnectionRates) -> ConnectionCounter {
        ConnectionCounter {
            counts: Mutex::default(),
            freed: Notify::new(),
            rates,
            started: tokio::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `listener` may take one more connection, then counts the
    /// one from `ip`. `protected`: the inter-broker listener of a broker
    /// with other listeners. `settings` is asked again at every try.
    pub async fn admit(
        self: &Arc<Self>,
        listener: &str,
        ip: IpAddr,
        protected: bool,
        settings: impl Fn() -> ConnectionLimitSettings,
    ) -> Result<Slot, Refused> {
        // Kafka's acceptor records the connection in the broker's and the
        // listener's rates, and waits out any excess before looking for room.
        let wait = self
            .rates
            .record_on_listener(listener, protected, &settings(), self.now_ms());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a close in between is not missed.
            freed.as_mut().enable();
            let limits = settings();
            {
                let mut counts = self.lock();
                if counts.has_room(listener, protected, &limits) {
                    let now = self.now_ms();
                    if let Some(ms) = self.rates.record_from_address(listener, protected, ip, &limits, now) {
                        return Err(Refused::Throttled { ms: ms as u64 });
                    }
                    let from_ip = counts.by_ip.get(&ip).copied().unwrap_or(0);
                    let max = limits.max_for(ip);
                    if from_ip >= max {
                        return Err(Refused::TooManyFromAddress { max });
                    }
                    counts.total += 1;
                    *counts.by_listener.entry(listener.to_string()).or_default() += 1;
                    *counts.by_ip.entry(ip).or_default() += 1;
                    return Ok(Slot {
                        counter: self.clone(),
                        listener: listener.to_string(),
                        ip,
                    });
                }
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    /// Connections open now: (on the listener, from the address).
    pub fn open(&self, listener: &str, ip: IpAddr) -> (u32, u32) {
        let counts = self.lock();
        (
            counts.by_listener.get(listener).copied().unwrap_or(0),
            counts.by_ip.get(&ip).copied().unwrap_or(0),
        )
    }
}

impl Counts {
    fn has_room(&self, listener: &str, protected: bool, limits: &ConnectionLimitSettings) -> bool {
        let on_listener = self.by_listener.get(listener).copied().unwrap_or(0);
        if on_listener >= limits.max_for_listener(listener) {
            return false;
        }
        protected || self.total < limits.max_connections
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counter.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_listener.get_mut(&self.listener) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
        drop(counts);
        self.counter.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u32, per_ip: u32) -> ConnectionLimitSettings {
        ConnectionLimitSettings {
            max_connections: max,
            max_per_ip: per_ip,
            ..ConnectionLimitSettings::default()
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn the_broker_limit_waits_for_a_close() {
        let counter = Arc::new(ConnectionCounter::default());
        let first = counter
            .admit("PLAINTEXT", A, false, || limits(2, 10))
            .await
            .expect("first");
        let _second = counter
            .admit("PLAINTEXT", B, false, || limits(2, 10))
            .await
            .expect("second");
        let waiting = {
            let counter = counter.clone();
            tokio::spawn(async move { counter.admit("PLAINTEXT", A, false, || limits(2, 10)).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "a third connection waits while two are open");
        drop(first);
        let third = waiting.await.expect("task").expect("admitted once one closed");
        assert_eq!(counter.open("PLAINTEXT", A), (2, 1));
        // The inter-broker listener is not held back by max.connections.
        let _broker = counter
            .admit("BROKER", B, true, || limits(2, 10))
            .await
            .expect("protected");
        drop(third);
        assert_eq!(counter.open("PLAINTEXT", A), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_over_its_limit_is_refused_at_once() {
        let counter = Arc::new(ConnectionCounter::default());
        let mut settings = limits(100, 2);
        settings.per_ip_overrides.insert(B, 0);
        let _a1 = counter
            .admit("PLAINTEXT", A, false, || settings.clone())
            .await
            .expect("a1");
        let _a2 = counter
            .admit("PLAINTEXT", A, false, || settings.clone())
            .await
            .expect("a2");
        assert_eq!(
            counter.admit("PLAINTEXT", A, false, || settings.clone()).await.err(),
            Some(Refused::TooManyFromAddress { max: 2 })
        );
        assert_eq!(
            counter.admit("PLAINTEXT", B, false, || settings.clone()).await.err(),
            Some(Refused::TooManyFromAddress { max: 0 })
        );
        assert_eq!(counter.open("PLAINTEXT", A), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_limit_holds_only_that_listener() {
        let counter = Arc::new(ConnectionCounter::default());
        let mut settings = limits(100, 100);
        settings.per_listener.insert("SSL".into(), 1);
        let _ssl = counter.admit("SSL", A, false, || settings.clone()).await.expect("ssl");
        let _plain = counter
            .admit("PLAINTEXT", A, false, || settings.clone())
            .await
            .expect("plaintext");
        let second_ssl = tokio::time::timeout(
            Duration::from_secs(3),
            counter.admit("SSL", B, false, || settings.clone()),
        )
        .await;
        assert!(second_ssl.is_err(), "the SSL listener is full");
    }

    #[tokio::test(start_paused = true)]
    async fn raised_limits_let_a_waiting_connection_in() {
        let counter = Arc::new(ConnectionCounter::default());
        let max = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let _one = counter
            .admit("PLAINTEXT", A, false, || limits(1, 10))
            .await
            .expect("one");
        let waiting = {
            let (counter, max) = (counter.clone(), max.clone());
            tokio::spawn(async move {
                counter
                    .admit("PLAINTEXT", A, false, move || {
                        limits(max.load(std::sync::atomic::Ordering::SeqCst), 10)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!waiting.is_finished());
        max.store(2, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(RECHECK * 2).await;
        assert!(waiting.await.expect("task").is_ok());
    }
}
