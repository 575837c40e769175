//! The broker's side of the ISR (Kafka's AlterPartitionManager and
//! isr-expansion/expiration tasks): the ISR changes the partitions led here
//! ask for go to the active controller one request at a time, each request
//! carrying every change pending (a broker back from a restart rejoins
//! thousands of ISRs in a few requests, not one write each), and every half
//! `replica.lag.time.max.ms` the led partitions drop the followers that fell
//! behind.

use super::Broker;
use crate::metadata::controller::isr::AlterPartition;
use crate::replication::IsrChange;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// The most changes sent in one request (the controller writes them in Raft
/// entries of at most 10,000 records).
const MAX_CHANGES_PER_REQUEST: usize = 10_000;

/// Sends the ISR changes asked for, until the broker stops.
pub async fn send_isr_changes(broker: Arc<Broker>) {
    let Some(mut changes) = broker.replicas.take_isr_changes() else {
        return;
    };
    loop {
        let first = tokio::select! {
            c = changes.recv() => c,
            _ = broker.shutdown.cancelled() => None,
        };
        let Some(first) = first else {
            return;
        };
        let mut pending = vec![first];
        while pending.len() < MAX_CHANGES_PER_REQUEST {
            match changes.try_recv() {
                Ok(change) => pending.push(change),
                Err(_) => break,
            }
        }
        send(&broker, latest_per_partition(pending)).await;
    }
}

/// Of several changes asked for one partition (a leader replaced by a newer
/// one while its change waited), the last.
fn latest_per_partition(changes: Vec<IsrChange>) -> Vec<IsrChange> {
    let mut at: HashMap<(uuid::Uuid, i32), usize> = HashMap::with_capacity(changes.len());
    let mut latest: Vec<Option<IsrChange>> = Vec::with_capacity(changes.len());
    for change in changes {
        let key = (change.topic_id, change.partition);
        if let Some(&i) = at.get(&key) {
            latest[i] = None;
        }
        at.insert(key, latest.len());
        latest.push(Some(change));
    }
    latest.into_iter().flatten().collect()
}

async fn send(broker: &Broker, changes: Vec<IsrChange>) {
    let requests = changes
        .iter()
        .map(|change| AlterPartition::from_change(broker.node_id(), change))
        .collect();
    let outcomes = match broker.controller.alter_partitions(requests).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            debug!(changes = changes.len(), error = %e, "ISR changes not sent");
            changes.iter().map(|_| Err(e.clone())).collect()
        }
    };
    if changes.len() > 1 {
        let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
        info!(asked = changes.len(), accepted, "ISR changes sent in one request");
    }
    for (change, outcome) in changes.iter().zip(outcomes) {
        match outcome {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn change(partition: i32, partition_epoch: i32) -> IsrChange {
        IsrChange {
            topic_id: uuid::Uuid::nil(),
            partition,
            leader_epoch: 1,
            partition_epoch,
            new_isr: vec![1, 2],
        }
    }

    #[test]
    fn of_two_changes_of_one_partition_the_last_is_sent() {
        let sent = latest_per_partition(vec![change(0, 1), change(1, 1), change(0, 2), change(2, 1)]);
        assert_eq!(sent, vec![change(1, 1), change(0, 2), change(2, 1)]);
    }
}
