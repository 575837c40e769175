//! `queued.max.request.bytes`: the bytes of requests read and not yet
//! answered, all connections together. When they reach the limit, no
//! connection reads another request's body until memory comes back (Kafka's
//! memory pool mutes its channels the same way), so slow or stalled clients
//! cannot make the broker hold more than that. Kafka's pool is not strict:
//! a request is read whenever any memory is left, so the total can pass the
//! limit by at most one request.

use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct RequestMemory {
    available: Mutex<i64>,
    freed: Notify,
}

/// Bytes taken from the pool until dropped.
pub struct Reservation {
    pool: Arc<RequestMemory>,
    bytes: i64,
}

impl RequestMemory {
    pub fn new(bytes: u64) -> Arc<RequestMemory> {
        Arc::new(RequestMemory {
            available: Mutex::new(i64::try_from(bytes).unwrap_or(i64::MAX)),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, i64> {
        self.available.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` once any memory is available.
    pub async fn reserve(self: &Arc<Self>, bytes: usize) -> Reservation {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut available = self.lock();
                if *available >= 1 {
                    *available = available.saturating_sub(bytes);
                    return Reservation {
                        pool: self.clone(),
                        bytes,
                    };
                }
            }
            metrics::counter!("sluice_request_memory_waits_total").increment(1);
            freed.await;
        }
    }

    pub fn available(&self) -> i64 {
        *self.lock()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut available = self.pool.lock();
            *available = available.saturating_add(self.bytes);
        }
        self.pool.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_while_the_pool_is_spent() {
        let pool = RequestMemory::new(100);
        // Not strict, as Kafka's: 150 bytes are taken while any memory is left.
        let big = pool.reserve(150).await;
        assert_eq!(pool.available(), -50);
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.reserve(10).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "no memory left: the next request waits");
        drop(big);
        let small = waiting.await.expect("task");
        assert_eq!(pool.available(), 90);
        drop(small);
        assert_eq!(pool.available(), 100);
    }
}
