//! Periodic storage work that the broker's housekeeping runs: each call is
//! one `blocking` call (off the async threads) for all partitions, which take their own
//! locks one at a time.

use super::{blocking, Partition};
use std::sync::Arc;
use tracing::{info, warn};

/// Flushes the partitions whose flush.ms has passed.
pub async fn flush_due(partitions: &[Arc<Partition>], now_ms: i64) {
    let partitions = partitions.to_vec();
    let _ = blocking(move || {
        for p in &partitions {
            if let Err(e) = p.flush_if_due(now_ms) {
                warn!(topic = p.topic(), partition = p.index(), error = %e, "flush failed");
            }
        }
    })
    .await;
}

/// Deletes the segments that retention.ms and retention.bytes give up.
pub async fn apply_retention(partitions: &[Arc<Partition>], now_ms: i64) {
    let partitions = partitions.to_vec();
    let _ = blocking(move || {
        for p in &partitions {
            match p.apply_retention(now_ms) {
                Ok(0) => {}
                Ok(n) => info!(
                    topic = p.topic(),
                    partition = p.index(),
                    segments = n,
                    "retention deleted segments"
                ),
                Err(e) => warn!(topic = p.topic(), partition = p.index(), error = %e, "retention failed"),
            }
        }
    })
    .await;
}
