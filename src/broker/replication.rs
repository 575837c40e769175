//! The broker's side of the ISR (Kafka's AlterPartitionManager and
//! isr-expiration task): ISR changes the partitions led here ask for are
//! sent to the active controller one at a time, and every half
//! `replica.lag.time.max.ms` the led partitions drop the followers that fell
//! behind.

use super::Broker;
use crate::metadata::controller::isr::AlterPartition;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// Sends the ISR changes asked for, until the broker stops.
pub async fn send_isr_changes(broker: Arc<Broker>) {
    let Some(mut changes) = broker.replicas.take_isr_changes() else {
        return;
    };
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            _ = broker.shutdown.cancelled() => None,
        };
        let Some(change) = change else {
            return;
        };
        let request = AlterPartition::from_change(broker.node_id(), &change);
        match broker.controller.alter_partition(request).await {
            Ok(()) => info!(topic_id = %change.topic_id, partition = change.partition, isr = ?change.new_isr,
                "ISR changed"),
            Err(e) => {
                debug!(topic_id = %change.topic_id, partition = change.partition, error = %e, "ISR change refused");
                if let Some(led) = broker.replicas.led(change.topic_id, change.partition) {
                    led.leader.isr_change_failed();
                }
            }
        }
    }
}

/// Drops lagging followers from the ISRs of the partitions led here.
pub async fn shrink_isrs(broker: Arc<Broker>) {
    let every = Duration::from_millis((broker.config.replication.lag_time_max_ms / 2).max(10) as u64);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for led in broker.replicas.all_led() {
            if let Some(change) = led.leader.shrink(&led.partition) {
                debug!(topic_id = %change.topic_id, partition = change.partition, isr = ?change.new_isr,
                    "followers fell behind; shrinking the ISR");
                broker.replicas.request_isr_change(change);
            }
        }
    }
}
