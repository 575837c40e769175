//! The log cleaner: compacts `cleanup.policy=compact` partitions as Kafka's
//! LogCleaner does, the internal topics (`__consumer_offsets`,
//! `__transaction_state`) included. Closed segments (never the active one)
//! are rewritten without the records that a later record with the same key
//! replaces; the latest record of every key stays, at its offset. Deletes
//! (null values) stay for `delete.retention.ms`, then go too.
//!
//! Memory is bounded (`log.cleaner.dedupe.buffer.size`): the keys of the
//! dirty part of the log (written since the last cleaning) go into a
//! fixed-size `OffsetMap`; when it fills, this round cleans up to the last
//! segment mapped whole and the next round carries on from there.
//!
//! Closed segments never change, so reading and rewriting happen outside
//! the partition lock; the lock is taken to plan and to swap the files in
//! (`Log::swap_cleaned`). Neighbours that fit one segment.bytes are cleaned
//! into one segment, so that a compacted log does not keep a segment (and a
//! descriptor) for every segment it ever rolled. Cleaned files are written to
//! a staging directory and synced first, and swapped in as Kafka does
//! (`swap`), so a crash leaves whole segments, old or new.
//!
//! Transactions: only segments below the last stable offset are cleaned, so
//! every transaction in them has ended. Records of aborted transactions are
//! removed and never count as a key's latest; transaction markers are kept
//! (and the segment's aborted-transaction index with them).

mod compactor;
mod offset_map;
#[cfg(test)]
mod tests;

pub use offset_map::OffsetMap;

use super::log::{Log, LogError, SealedSegment};
use super::Partition;
use compactor::{build_offset_map, group_by_size, rewrite, Aborted, KeepRule};
use std::path::{Path, PathBuf};

/// Where cleaned segments are written before they replace the originals
/// (inside the partition directory; removed at start-up if left over).
pub const STAGING_DIR: &str = ".cleaning";

/// Kafka's default log.cleaner.dedupe.buffer.size.
pub const DEFAULT_DEDUPE_BUFFER_SIZE: usize = 128 * 1024 * 1024;

/// What one cleaning did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Segments replaced by cleaned ones (several may become one).
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The log is clean below this offset now.
    pub cleaned_to: i64,
}

/// The closed segments to clean, as they were when the cleaning was planned.
struct Plan {
    dir: PathBuf,
    index_interval_bytes: u64,
    segment_bytes: u64,
    delete_retention_ms: i64,
    /// Oldest first; a prefix of the sealed segments.
    segments: Vec<SealedSegment>,
    first_dirty: i64,
    aborted: Aborted,
}

/// Cleans `partition` if its policy is compact and enough of it is dirty,
/// with at most `dedupe_buffer_size` bytes of key map. None when there was
/// nothing to do. File I/O: run it off the async threads.
pub fn clean(partition: &Partition, now_ms: i64, dedupe_buffer_size: usize) -> Result<Option<CleanReport>, LogError> {
    let Some(plan) = plan(&mut partition.log(), now_ms)? else {
        return Ok(None);
    };
    let staging = plan.dir.join(STAGING_DIR);
    let report = run(partition, &plan, &staging, now_ms, dedupe_buffer_size);
    let _ = std::fs::remove_dir_all(&staging);
    report.map(Some)
}

/// The closed segments below the last stable offset and older than
/// min.compaction.lag.ms, when the dirty share of them reaches
/// min.cleanable.dirty.ratio.
fn plan(log: &mut Log, now_ms: i64) -> Result<Option<Plan>, LogError> {
    if log.is_deleted() || !log.config().compact {
        return Ok(None);
    }
    let stable = log.last_stable_offset();
    let lag = log.config().min_compaction_lag_ms;
    let segments: Vec<SealedSegment> = log
        .sealed_segments()?
        .into_iter()
        // An emptied segment has no records to be too young (nor a timestamp).
        .take_while(|s| s.end <= stable && (s.size == 0 || now_ms - s.newest_timestamp >= lag))
        .collect();
    let Some(first) = segments.first() else {
        return Ok(None);
    };
    let first_dirty = log.first_dirty_offset().max(first.base);
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let dirty: u64 = segments.iter().filter(|s| s.end > first_dirty).map(|s| s.size).sum();
    if dirty == 0 || (dirty as f64) < log.config().min_cleanable_dirty_ratio * total as f64 {
        return Ok(None);
    }
    Ok(Some(Plan {
        dir: log.dir().to_path_buf(),
        index_interval_bytes: log.config().index_interval_bytes,
        segment_bytes: log.config().segment_bytes,
        delete_retention_ms: log.config().delete_retention_ms,
        segments,
        first_dirty,
        aborted: Aborted::new(log.aborted_txns().iter()),
    }))
}

/// Maps the dirty keys, rewrites what they make obsolete into `staging`,
/// and swaps the rewritten segments in.
fn run(
    partition: &Partition,
    plan: &Plan,
    staging: &Path,
    now_ms: i64,
    dedupe_buffer_size: usize,
) -> Result<CleanReport, LogError> {
    let dirty_from = plan.segments.partition_point(|s| s.end <= plan.first_dirty);
    let dirty = &plan.segments[dirty_from..];
    // Records are at most one per offset: a bound on the keys to map.
    let keys = dirty.last().map_or(0, |s| s.end - plan.first_dirty).max(0) as usize;
    let mut map = OffsetMap::new(dedupe_buffer_size, keys);
    let deleted;
    let end = build_offset_map(dirty, plan.first_dirty, &plan.aborted, &mut map)?;
    let rule = KeepRule {
        map: &map,
        end,
        tombstone_horizon: now_ms.saturating_sub(plan.delete_retention_ms),
    };
    std::fs::create_dir_all(staging)?;
    let cleaned = plan.segments.partition_point(|s| s.base < end);
    let mut staged = Vec::new();
    for group in group_by_size(&plan.segments[..cleaned], plan.segment_bytes) {
        let rewritten = rewrite(
            group,
            &plan.dir,
            staging,
            plan.index_interval_bytes,
            &rule,
            &plan.aborted,
        )?;
        staged.extend(rewritten.map(|r| (group, r)));
    }
    let mut report = CleanReport {
        cleaned_to: end,
        ..CleanReport::default()
    };
    {
        let mut log = partition.log();
        for (group, rewritten) in &staged {
            let old: Vec<(i64, u64)> = group.iter().map(|s| (s.base, s.size)).collect();
            if log.swap_cleaned(&old, staging)? {
                report.segments_rewritten += group.len();
                report.records_removed += rewritten.records_removed;
                report.bytes_before += group.iter().map(|s| s.size).sum::<u64>();
                report.bytes_after += rewritten.new_size;
            }
        }
        deleted = log.take_deleted();
    }
    for segment in deleted {
        segment.remove()?;
    }
    // The swaps are durable before the checkpoint may say the log is clean.
    super::fsync_dir(&plan.dir)?;
    partition.log().mark_cleaned(end);
    Ok(report)
}
