//! acks=all on a replicated partition (Kafka's DelayedProduce): the answer
//! waits until the high watermark passes the batch — every ISR member has
//! it — then checks min.insync.replicas again; it gives up at the request's
//! timeout, or when this broker stops leading the partition.

use crate::broker::Broker;
use crate::replication::leader_state::AcksAll;
use crate::replication::LedPartition;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// One appended batch waiting for its replicas; `at` is where its answer is.
pub struct Wait {
    pub at: (usize, usize),
    pub led: LedPartition,
    pub last_offset: i64,
    pub min_isr: usize,
}

/// Waits for every batch; returns the error codes of those that failed.
pub async fn acks_all(broker: &Broker, mut waits: Vec<Wait>, timeout_ms: i32) -> Vec<((usize, usize), i16)> {
    let mut failed = Vec::new();
    if waits.is_empty() {
        return failed;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
    let waiter = Arc::new(Notify::new());
    loop {
        // Registered before checking, so that a move in between still wakes us.
        for w in &waits {
            w.led.partition.register_waiter(&waiter);
        }
        waits.retain(|w| {
            let still_led = broker
                .replicas
                .led(w.led.leader.topic_id, w.led.leader.index)
                .is_some_and(|now| Arc::ptr_eq(&now.leader, &w.led.leader));
            if !still_led {
                failed.push((w.at, ResponseError::NotLeaderOrFollower.code()));
                return false;
            }
            match w.led.leader.acks_all(w.last_offset, w.min_isr) {
                AcksAll::Waiting => true,
                AcksAll::Done => false,
                AcksAll::NotEnoughReplicasAfterAppend => {
                    failed.push((w.at, ResponseError::NotEnoughReplicasAfterAppend.code()));
                    false
                }
            }
        });
        if waits.is_empty() {
            return failed;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {
                failed.extend(waits.iter().map(|w| (w.at, ResponseError::RequestTimedOut.code())));
                return failed;
            }
            // Leadership changes are checked at least this often.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
