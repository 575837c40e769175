//! `Log`: one partition's log. It owns the offsets clients see (log start,
//! high watermark, last stable offset, log end), assigns offsets to the
//! batches it appends, and keeps the producer state and aborted transactions
//! in step with them. Rolling and flushing are in `flush`, reads and
//! timestamp lookups in `read`, retention and DeleteRecords in `retention`,
//! what the cleaner needs in `cleaning`.
//!
//! Its methods do file I/O: callers run them off the async threads (see
//! `Partition`), under the partition's own lock.

mod cleaning;
mod flush;
mod follower;
#[cfg(test)]
mod follower_tests;
mod read;
mod retention;
#[cfg(test)]
mod tests;
mod truncation;

pub use cleaning::SealedSegment;
pub use flush::{FlushPlan, Rolled};
pub use follower::FollowerAppend;
pub use read::{ReadPlan, RecordRegion};

use super::batch::{assign_offsets_split, BatchError, BatchHeader, PendingBatch, BATCH_HEADER_LEN};
use super::leader_epochs::LeaderEpochCache;
use super::producer_state::{ProducerState, ProducerStateError, SequenceCheck};
use super::records::control_type_of_records;
use super::segment::{DeletedSegment, LogSegment};
use super::segments::LogSegments;
use super::txn_index::AbortedTxns;
use crate::config::topic::LogConfig;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: i64, log_start: i64, log_end: i64 },
    #[error("{0}")]
    Batch(#[from] BatchError),
    #[error("{0}")]
    ProducerState(#[from] ProducerStateError),
    #[error("the partition has been deleted")]
    Deleted,
    /// A follower was sent a batch below its log end.
    #[error("a batch at offset {first} is below the log end offset {log_end}")]
    UnexpectedAppendOffset { first: i64, log_end: i64 },
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Set when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub log_start_offset: i64,
    /// The batch had already been stored (an idempotent retry).
    pub duplicate: bool,
    /// The flush policy asks for an fsync before answering.
    pub needs_flush: bool,
    /// The append rolled the log: what to finish in the background.
    pub rolled: Option<Rolled>,
}

/// A log as the loader found it on disk.
pub struct LoadedLog {
    pub dir: PathBuf,
    pub config: LogConfig,
    pub segments: LogSegments,
    pub log_start_offset: i64,
    pub next_offset: i64,
    pub recovery_point: i64,
    pub producers: ProducerState,
    pub aborted: AbortedTxns,
    /// The leader epoch cache, truncated to the loaded offsets.
    pub epochs: LeaderEpochCache,
    pub now_ms: i64,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: LogSegments,
    log_start_offset: i64,
    next_offset: i64,
    high_watermark: i64,
    producers: ProducerState,
    /// Aborted transactions of the retained segments, by marker offset.
    aborted: AbortedTxns,
    recovery_point: i64,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// Directory entries not yet synced: the partition directory's own (a
    /// new log) and the segment files' (a new log, a roll).
    unsynced_dirs: flush::UnsyncedDirs,
    leader_epoch: i32,
    /// Other replicas share this log: the high watermark is moved by the
    /// replication layer, not by appends.
    replicated: bool,
    /// The high watermark checkpointed before a restart
    /// (`replication-offset-checkpoint`): taken when the log turns out to
    /// be replicated, so that a restarted replica never serves records its
    /// cluster had not committed (a single node commits its whole log).
    checkpointed_high_watermark: Option<i64>,
    /// Where each leader epoch begins (`leader-epoch-checkpoint`).
    epochs: LeaderEpochCache,
    deleted: bool,
    /// Its log directory failed: nothing more is read or written (KAFKA_STORAGE_ERROR).
    offline: bool,
    /// The cleaner has compacted the log below this offset (since start-up).
    first_dirty_offset: i64,
    /// Segments deleted, their files not yet unlinked (see `take_deleted`).
    deleted_segments: Vec<DeletedSegment>,
}

impl Log {
    /// Creates an empty log in `dir` (which is created): a directory and one
    /// empty segment file, nothing synced. The metadata log, not the
    /// directory, says that the partition exists.
    pub fn create(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        Log::create_at(dir, config, 0, now_ms)
    }

    /// As `create`, with offsets starting at `base_offset` (a log whose
    /// every segment was deleted by retention keeps its numbering).
    pub fn create_at(dir: &Path, config: LogConfig, base_offset: i64, now_ms: i64) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir)?;
        let segment = LogSegment::create(dir, base_offset, config.index_interval_bytes, now_ms)?;
        let mut log = Log::from_loaded(LoadedLog {
            dir: dir.to_path_buf(),
            config,
            segments: LogSegments::new(segment),
            log_start_offset: base_offset,
            next_offset: base_offset,
            recovery_point: base_offset,
            producers: ProducerState::default(),
            aborted: AbortedTxns::empty(dir),
            epochs: LeaderEpochCache::open(dir)?,
            now_ms,
        });
        log.unsynced_dirs = flush::UnsyncedDirs::NewLog;
        Ok(log)
    }

    pub fn from_loaded(loaded: LoadedLog) -> Log {
        Log {
            dir: loaded.dir,
            config: loaded.config,
            segments: loaded.segments,
            log_start_offset: loaded.log_start_offset,
            next_offset: loaded.next_offset,
            high_watermark: loaded.next_offset,
            producers: loaded.producers,
            aborted: loaded.aborted,
            recovery_point: loaded.recovery_point,
            unflushed_messages: 0,
            last_flush_ms: loaded.now_ms,
            unsynced_dirs: flush::UnsyncedDirs::None,
            leader_epoch: loaded.epochs.latest().map_or(0, |e| e.epoch),
            replicated: false,
            checkpointed_high_watermark: None,
            epochs: loaded.epochs,
            deleted: false,
            offline: false,
            first_dirty_offset: 0,
            deleted_segments: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The high watermark, or the start of the oldest open transaction if
    /// that comes first: read_committed consumers stop here.
    pub fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .map_or(self.high_watermark, |f| f.min(self.high_watermark))
    }

    /// Aborted transactions that overlap `[from, upper)`: (producer id, first
    /// offset), what a read_committed fetch tells the client to skip.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<(i64, i64)> {
        self.aborted.overlapping(from, upper)
    }

    pub fn aborted_txns(&self) -> &AbortedTxns {
        &self.aborted
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// This replica leads from `epoch` on: its appends carry that epoch,
    /// which begins at the log end (Kafka's makeLeader).
    pub fn become_leader(&mut self, epoch: i32) -> Result<(), LogError> {
        self.leader_epoch = epoch;
        self.epochs.assign(epoch, self.next_offset)?;
        Ok(())
    }

    /// Whether other replicas share this log (see `replicated`). Turning it
    /// off (the replica is alone again) commits the whole log.
    pub fn set_replicated(&mut self, replicated: bool) {
        self.replicated = replicated;
        if replicated {
            if let Some(hw) = self.checkpointed_high_watermark.take() {
                self.high_watermark = hw.clamp(self.log_start_offset, self.next_offset);
            }
        } else {
            self.high_watermark = self.next_offset;
        }
    }

    /// The high watermark found in the checkpoint at start-up.
    pub fn restore_high_watermark(&mut self, high_watermark: i64) {
        self.checkpointed_high_watermark = Some(high_watermark);
    }

    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Where `epoch` ends in this log (OffsetForLeaderEpoch's answer).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.next_offset)
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    pub fn producers(&self) -> &ProducerState {
        &self.producers
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.size_bytes()
    }

    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.bases().collect()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// Stores one batch (validated, or written by the broker itself) with
    /// offsets assigned here, in place.
    pub fn append(&mut self, batch: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let (head, records) = batch.split_at_mut(BATCH_HEADER_LEN.min(batch.len()));
        self.append_parts(head, records, now_ms)
    }

    /// As `append`, for a batch whose records are not copied to be stored.
    pub fn append_pending(&mut self, batch: &mut PendingBatch, now_ms: i64) -> Result<AppendInfo, LogError> {
        let (head, records) = batch.parts_mut();
        self.append_parts(head, records, now_ms)
    }

    fn append_parts(&mut self, head: &mut [u8], records: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        if self.deleted {
            return Err(self.gone());
        }
        let header = BatchHeader::parse(head)?;
        if let SequenceCheck::Duplicate(original) = self.producers.check(&header)? {
            return Ok(AppendInfo {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                log_append_time: self.config.log_append_time.then_some(original.timestamp),
                log_start_offset: self.log_start_offset,
                duplicate: true,
                needs_flush: false,
                rolled: None,
            });
        }
        let size = head.len() + records.len();
        let rolled = self.maybe_roll(size, &header, now_ms)?;
        let base_offset = self.next_offset;
        let log_append_time = self.config.log_append_time.then_some(now_ms);
        assign_offsets_split(head, records, base_offset, self.leader_epoch, log_append_time);
        if self.epochs.latest().is_none_or(|e| e.epoch != self.leader_epoch) {
            self.epochs.assign(self.leader_epoch, base_offset)?;
        }
        let stored = BatchHeader::parse(head)?;
        self.store(head, records, &stored)?;
        // Alone, the leader's append is committed at once; replicated, the
        // replication layer moves the high watermark as the ISR catches up.
        if !self.replicated {
            self.high_watermark = stored.next_offset();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: stored.last_offset(),
            log_append_time,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush: self.unflushed_messages >= self.config.flush_messages,
            rolled,
        })
    }

    /// Writes a batch whose offsets are final at the log end, and keeps the
    /// producer state and aborted transactions in step (leader and follower).
    fn store(&mut self, head: &[u8], records: &[u8], header: &BatchHeader) -> Result<(), LogError> {
        self.segments.active_mut().append_parts(head, records, header)?;
        self.producers.record(header);
        self.next_offset = header.next_offset();
        if header.is_control() {
            let segment = self.segments.active().base_offset();
            let kind = control_type_of_records(records);
            // Kafka's lastStableOffset(completedTxn): stable up to the marker.
            let stable = header.next_offset();
            self.aborted
                .complete(&mut self.producers, segment, header, kind, stable)?;
        }
        self.unflushed_messages += header.records_count as i64;
        Ok(())
    }

    /// Forgets idempotent producers idle since before `horizon_ms`.
    pub fn expire_producers(&mut self, horizon_ms: i64) {
        self.producers.expire(horizon_ms);
    }

    /// Marks the log deleted; appends and reads fail from now on.
    pub fn mark_deleted(&mut self) {
        self.deleted = true;
    }

    /// Its log directory failed: the log is out of service as a deleted one
    /// is (no flush, no close into the broken directory), but answers
    /// KAFKA_STORAGE_ERROR.
    pub fn mark_offline(&mut self) {
        self.deleted = true;
        self.offline = true;
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The error of a log out of service.
    pub(crate) fn gone(&self) -> LogError {
        if self.offline {
            LogError::Io(io::Error::other("the log directory is offline"))
        } else {
            LogError::Deleted
        }
    }
}
