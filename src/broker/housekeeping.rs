//! The logs' background work: time-based flushes, retention, compaction,
//! checkpoints and producer expiry, with the file work off the async threads.

use super::Broker;
use crate::storage::{now_ms, Partition};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Compacts the partitions of compacted topics that need it, the internal
/// topics included, one at a time (off the async threads).
async fn clean_compacted(partitions: &[Arc<Partition>], dedupe_buffer_size: usize) {
    for p in partitions {
        if !p.log().config().compact {
            continue;
        }
        let partition = p.clone();
        let result = tokio::task::spawn_blocking(move || {
            crate::storage::cleaner::clean(&partition, now_ms(), dedupe_buffer_size)
        })
        .await;
        match result {
            Ok(Ok(Some(r))) => info!(
                topic = p.topic(),
                partition = p.index(),
                segments = r.segments_rewritten,
                records_removed = r.records_removed,
                bytes_before = r.bytes_before,
                bytes_after = r.bytes_after,
                "compacted"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => warn!(topic = p.topic(), partition = p.index(), error = %e, "compaction failed"),
            Err(e) => warn!(topic = p.topic(), partition = p.index(), error = %e, "compaction stopped"),
        }
    }
}

/// Background work: retention, compaction, time-based flushes, checkpoints, producer expiry.
pub async fn run(broker: Arc<Broker>) {
    let config = &broker.config;
    let tick = Duration::from_millis(config.flush_scheduler_interval_ms.clamp(10, 1000));
    let retention_every = Duration::from_millis(config.retention_check_interval_ms);
    let checkpoint_every = Duration::from_millis(config.checkpoint_interval_ms.max(100));
    let producer_expiry_every = Duration::from_secs(600);
    let mut last_retention = Instant::now();
    let cleaner_every = Duration::from_millis(config.cleaner_backoff_ms);
    let mut last_cleaning = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut last_expiry = Instant::now();
    let checkpoint_wanted = broker.replicas.checkpoint_wanted();
    loop {
        let mut checkpoint_now = false;
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
            _ = checkpoint_wanted.notified() => checkpoint_now = true,
        }
        let now = now_ms();
        let partitions = broker.replicas.all_partitions();
        crate::storage::maintenance::flush_due(&partitions, now).await;
        if last_retention.elapsed() >= retention_every {
            last_retention = Instant::now();
            crate::storage::maintenance::apply_retention(&partitions, now).await;
        }
        if config.cleaner_enable && last_cleaning.elapsed() >= cleaner_every {
            last_cleaning = Instant::now();
            clean_compacted(&partitions, config.cleaner_dedupe_buffer_size).await;
        }
        if last_expiry.elapsed() >= producer_expiry_every {
            last_expiry = Instant::now();
            let horizon = now - config.producer_id_expiration_ms;
            for p in &partitions {
                p.log().expire_producers(horizon);
            }
        }
        if checkpoint_now || last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            let b = broker.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.replicas.checkpoint()).await {
                warn!(error = %e, "could not write checkpoints");
            }
        }
    }
}
