//! `Log`: one partition's ordered segments, with the offsets that clients see
//! (log start offset, high watermark, log end offset), appends, reads,
//! rolling, retention and DeleteRecords.

use super::batch::LOG_OVERHEAD;
use super::batch::{assign_offsets, BatchError, BatchHeader};
use super::batch::{control_type, ControlType};
use super::producer_state::{ProducerState, ProducerStateError, SequenceCheck};
use super::segment::{file_name, first_batch_size, whole_batches_len, LogSegment};
use super::txn_index::{self, AbortedTxn};
use crate::config::topic::LogConfig;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: i64, log_start: i64, log_end: i64 },
    #[error("{0}")]
    Batch(#[from] BatchError),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("{0}")]
    ProducerState(#[from] ProducerStateError),
    #[error("the partition has been deleted")]
    Deleted,
    #[error("timestamp {timestamp} is out of the range the topic accepts around {now}")]
    InvalidTimestamp { timestamp: i64, now: i64 },
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
    /// A segment was sealed by this append and should be flushed in the background.
    pub sealed: Option<Arc<File>>,
}

/// Where to read a fetch's bytes: worked out under the log's lock, read
/// outside it (a file handle stays valid even if the segment is deleted).
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Arc<File>,
    position: u64,
    end: u64,
}

impl ReadPlan {
    /// Reads whole batches, at most `max_bytes` of them, or the first batch
    /// whole when `min_one` is set even if it is larger.
    pub fn read(&self, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        let available = (self.end - self.position) as usize;
        let want = available.min(max_bytes.max(LOG_OVERHEAD));
        let mut chunk = LogSegment::read_at(&self.file, self.position, want)?;
        let mut keep = whole_batches_len(&chunk, max_bytes);
        if keep == 0 && min_one {
            if let Some(size) = first_batch_size(&chunk) {
                chunk = LogSegment::read_at(&self.file, self.position, size.min(available))?;
                keep = whole_batches_len(&chunk, size);
            }
        }
        chunk.truncate(keep);
        Ok(Bytes::from(chunk))
    }
}

pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    pub(super) segments: BTreeMap<i64, LogSegment>,
    pub(super) log_start_offset: i64,
    pub(super) next_offset: i64,
    pub(super) high_watermark: i64,
    pub(super) producers: ProducerState,
    pub(super) recovery_point: i64,
    pub(super) unflushed_messages: i64,
    pub(super) last_flush_ms: i64,
    pub(super) leader_epoch: i32,
    pub(super) deleted: bool,
    /// Aborted transactions of the retained segments, by marker offset.
    pub(super) aborted: Vec<AbortedTxn>,
    /// The cleaner has compacted the log below this offset (since start-up).
    pub(super) cleaned_to: i64,
}

impl Log {
    /// Creates an empty log in `dir` (which is created).
    pub fn create(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir)?;
        let segment = LogSegment::create(dir, 0, config.index_interval_bytes, now_ms)?;
        let mut segments = BTreeMap::new();
        segments.insert(0, segment);
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: 0,
            next_offset: 0,
            high_watermark: 0,
            producers: ProducerState::default(),
            recovery_point: 0,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            leader_epoch: 0,
            deleted: false,
            aborted: Vec::new(),
            cleaned_to: 0,
        })
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
        // Sorted by marker offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < upper)
            .map(|a| (a.producer_id, a.first_offset))
            .collect()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
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
        self.segments.values().map(|s| s.size()).sum()
    }

    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    fn active(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Stores one validated batch (as received; offsets are assigned here).
    pub fn append(&mut self, batch: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        if self.deleted {
            return Err(LogError::Deleted);
        }
        let header = BatchHeader::parse(batch)?;
        if batch.len() > self.config.max_message_bytes {
            return Err(LogError::MessageTooLarge {
                size: batch.len(),
                max: self.config.max_message_bytes,
            });
        }
        if !self.config.log_append_time {
            // As Kafka's message.timestamp.after/before.max.ms, judged from the
            // batch's greatest and first timestamps.
            let newest_allowed = now_ms.saturating_add(self.config.timestamp_after_max_ms);
            let oldest_allowed = now_ms.saturating_sub(self.config.timestamp_before_max_ms);
            for timestamp in [header.max_timestamp, header.base_timestamp] {
                if timestamp >= 0 && (timestamp > newest_allowed || timestamp < oldest_allowed) {
                    return Err(LogError::InvalidTimestamp { timestamp, now: now_ms });
                }
            }
        }
        if let SequenceCheck::Duplicate(original) = self.producers.check(&header)? {
            return Ok(AppendInfo {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                log_append_time: self.config.log_append_time.then_some(original.timestamp),
                log_start_offset: self.log_start_offset,
                duplicate: true,
                needs_flush: false,
                sealed: None,
            });
        }
        let sealed = self.maybe_roll(batch.len(), header.max_timestamp, header.last_offset_delta, now_ms)?;
        let base_offset = self.next_offset;
        let log_append_time = self.config.log_append_time.then_some(now_ms);
        assign_offsets(batch, base_offset, self.leader_epoch, log_append_time);
        let stored = BatchHeader::parse(batch)?;
        self.active().append(batch, &stored)?;
        self.producers.record(&stored);
        self.next_offset = stored.next_offset();
        self.high_watermark = self.next_offset;
        if stored.is_control() {
            self.complete_transaction(&stored, control_type(batch))?;
        }
        self.unflushed_messages += stored.records_count as i64;
        let needs_flush = self.unflushed_messages >= self.config.flush_messages;
        Ok(AppendInfo {
            base_offset,
            last_offset: stored.last_offset(),
            log_append_time,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
            sealed,
        })
    }

    /// A marker was stored: the producer's transaction is over.
    pub(super) fn complete_transaction(
        &mut self,
        marker: &BatchHeader,
        kind: Option<ControlType>,
    ) -> Result<(), LogError> {
        let segment = self
            .segments
            .range(..=marker.base_offset)
            .next_back()
            .map_or(marker.base_offset, |(b, _)| *b);
        let mut txns = Transactions {
            producers: &mut self.producers,
            aborted: &mut self.aborted,
            dir: &self.dir,
            high_watermark: self.high_watermark,
        };
        txns.complete(segment, marker, kind)
    }

    /// Rolls to a new segment if the active one is full, too old, or would
    /// overflow its relative offsets. Returns the sealed segment's file.
    fn maybe_roll(
        &mut self,
        incoming: usize,
        incoming_timestamp: i64,
        last_offset_delta: i32,
        now_ms: i64,
    ) -> Result<Option<Arc<File>>, LogError> {
        let segment_bytes = self.config.segment_bytes;
        let segment_ms = self.config.segment_ms;
        let next_offset = self.next_offset;
        let active = self.active();
        if active.is_empty() {
            return Ok(None);
        }
        let full = active.size() + incoming as u64 > segment_bytes;
        let waited = match active.first_batch_timestamp() {
            Some(t) if t >= 0 => incoming_timestamp.saturating_sub(t),
            _ => now_ms.saturating_sub(active.created_at_ms()),
        };
        let too_old = waited > segment_ms;
        let offsets_overflow = next_offset + last_offset_delta as i64 - active.base_offset() > i32::MAX as i64;
        if full || too_old || offsets_overflow {
            return self.roll(now_ms).map(Some);
        }
        Ok(None)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&mut self, now_ms: i64) -> Result<Arc<File>, LogError> {
        let next_offset = self.next_offset;
        let active = self.active();
        active.seal()?;
        let sealed = active.file().clone();
        if active.base_offset() == next_offset {
            // Nothing was ever written to it: reuse rather than clash on the name.
            active.reopen_for_append()?;
            return Ok(sealed);
        }
        let segment = LogSegment::create(&self.dir, next_offset, self.config.index_interval_bytes, now_ms)?;
        self.segments.insert(next_offset, segment);
        self.write_producer_snapshot(next_offset)?;
        Ok(sealed)
    }

    pub(super) fn write_producer_snapshot(&mut self, offset: i64) -> io::Result<()> {
        self.producers
            .write_snapshot(&self.dir.join(file_name(offset, ".snapshot")))?;
        // Keep the newest few snapshots: recovery needs the latest one only.
        let mut snapshots = list_snapshots(&self.dir)?;
        snapshots.sort_unstable();
        let excess = snapshots.len().saturating_sub(3);
        for old in &snapshots[..excess] {
            let _ = std::fs::remove_file(self.dir.join(file_name(*old, ".snapshot")));
        }
        Ok(())
    }

    /// Plans a read from `offset` of data below `max_offset` (the high
    /// watermark or last stable offset). None when there is nothing to read.
    pub fn plan_read(&mut self, offset: i64, max_offset: i64) -> Result<Option<ReadPlan>, LogError> {
        if self.deleted {
            return Err(LogError::Deleted);
        }
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.next_offset,
            });
        }
        if offset >= max_offset {
            return Ok(None);
        }
        let start = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(self.log_start_offset);
        let bounded = max_offset < self.next_offset;
        for (_, segment) in self.segments.range_mut(start..) {
            let mut end = segment.size();
            if let Some((position, _)) = segment.find_batch(offset, end)? {
                // Stop before the batch at `max_offset` when it is in this segment.
                if bounded {
                    if let Some((stop, _)) = segment.find_batch(max_offset, end)? {
                        end = stop;
                    }
                }
                if end <= position {
                    return Ok(None);
                }
                return Ok(Some(ReadPlan {
                    file: segment.file().clone(),
                    position,
                    end,
                }));
            }
        }
        Ok(None)
    }

    /// Reads the first batch holding a timestamp at or after `timestamp`
    /// (for lookups that must look at records, never on the fetch path).
    fn batch_at_or_after_timestamp(&mut self, timestamp: i64) -> Result<Option<Vec<u8>>, LogError> {
        let log_start = self.log_start_offset;
        for segment in self.segments.values_mut() {
            if segment.max_timestamp()?.is_some_and(|m| m.timestamp < timestamp) {
                continue;
            }
            let end = segment.size();
            if let Some((pos, h)) = segment.find_batch_by_timestamp(timestamp, end)? {
                if h.last_offset() >= log_start {
                    return Ok(Some(LogSegment::read_at(segment.file(), pos, h.total_size())?));
                }
            }
        }
        Ok(None)
    }

    /// The first record at or after `timestamp`: (offset, timestamp). Decodes
    /// the one batch that holds it, as Kafka does for ListOffsets.
    pub fn offset_for_timestamp(&mut self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        let Some(batch) = self.batch_at_or_after_timestamp(timestamp)? else {
            return Ok(None);
        };
        let log_start = self.log_start_offset;
        Ok(records_of(&batch)?
            .into_iter()
            .find(|(offset, ts)| *ts >= timestamp && *offset >= log_start))
    }

    /// The record with the greatest timestamp: (offset, timestamp).
    pub fn max_timestamp_record(&mut self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<(i64, i64)> = None; // (timestamp, batch last offset)
        for segment in self.segments.values_mut() {
            if let Some(m) = segment.max_timestamp()? {
                if best.is_none_or(|(ts, _)| m.timestamp > ts) {
                    best = Some((m.timestamp, m.offset));
                }
            }
        }
        let Some((timestamp, offset)) = best else {
            return Ok(None);
        };
        let Some(plan) = self.plan_read(offset.max(self.log_start_offset), self.next_offset)? else {
            return Ok(None);
        };
        let batch = plan.read(1, true)?;
        Ok(records_of(&batch)?
            .into_iter()
            .find(|(_, ts)| *ts == timestamp)
            .or(Some((offset, timestamp))))
    }

    /// Moves the log start offset forward (DeleteRecords) and drops segments
    /// that lie wholly before it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.deleted {
            return Err(LogError::Deleted);
        }
        if offset > self.high_watermark || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.delete_segments_below_log_start()?;
        }
        Ok(self.log_start_offset)
    }

    fn delete_segments_below_log_start(&mut self) -> io::Result<usize> {
        let mut deletable = Vec::new();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            // A segment ends where the next begins.
            if pair[1] <= self.log_start_offset {
                deletable.push(pair[0]);
            }
        }
        for base in &deletable {
            if let Some(segment) = self.segments.remove(base) {
                segment.delete()?;
            }
        }
        self.forget_aborted_before_first_segment();
        Ok(deletable.len())
    }

    /// Deletes whole segments that break retention.ms or retention.bytes, and
    /// moves the log start offset past them. Returns how many were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        if self.deleted || !self.config.delete {
            return Ok(0);
        }
        let mut doomed = 0usize;
        let retention_ms = self.config.retention_ms;
        let retention_bytes = self.config.retention_bytes;
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut size_over = if retention_bytes >= 0 {
            self.size_bytes() as i64 - retention_bytes
        } else {
            0
        };
        for (i, base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let segment = self.segments.get_mut(base).expect("listed above");
            if segment.is_empty() {
                if is_last {
                    break;
                }
                // Emptied by compaction: nothing in it to keep.
                doomed += 1;
                continue;
            }
            // Without any timestamp (no index entry), the file's age stands in, as in Kafka.
            let largest = segment
                .max_timestamp()?
                .map_or(segment.created_at_ms(), |m| m.timestamp);
            let expired = retention_ms >= 0 && now_ms - largest > retention_ms;
            let too_big = retention_bytes >= 0 && size_over - segment.size() as i64 >= 0;
            if !(expired || too_big) {
                break;
            }
            size_over -= segment.size() as i64;
            doomed += 1;
            if is_last {
                break;
            }
        }
        if doomed == 0 {
            return Ok(0);
        }
        if doomed == bases.len() {
            // Deleting the active segment: start a new, empty one first.
            self.roll(now_ms)?;
        }
        for base in &bases[..doomed] {
            if let Some(segment) = self.segments.remove(base) {
                segment.delete()?;
            }
        }
        let first = *self.segments.keys().next().expect("the active segment remains");
        self.log_start_offset = self.log_start_offset.max(first);
        self.forget_aborted_before_first_segment();
        Ok(doomed)
    }

    /// Index entries go with their segments (the marker's segment).
    fn forget_aborted_before_first_segment(&mut self) {
        if let Some(first) = self.segments.keys().next().copied() {
            self.aborted.retain(|a| a.last_offset >= first);
        }
    }

    /// The file to fsync for the flush policy, and marks the log as flushed.
    pub fn take_flush(&mut self, now_ms: i64) -> Arc<File> {
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        self.active().file().clone()
    }

    /// True when flush.ms has passed since the last flush with data waiting.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.unflushed_messages > 0 && now_ms - self.last_flush_ms >= self.config.flush_ms
    }

    /// Marks everything below `offset` as safely on disk.
    pub fn advance_recovery_point(&mut self, offset: i64) {
        self.recovery_point = self.recovery_point.max(offset);
    }

    /// Flushes everything and writes what a clean start-up needs.
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.deleted {
            return Ok(());
        }
        let next = self.next_offset;
        let active = self.active();
        active.flush()?;
        // Seal the indexes so that they are complete on disk; the active
        // segment is reopened for appends at the next start.
        active.seal()?;
        self.recovery_point = next;
        self.write_producer_snapshot(next)?;
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
}

/// The transaction side of a log, borrowed apart from its segments so that
/// start-up can replay markers while reading them.
pub(super) struct Transactions<'a> {
    pub producers: &'a mut ProducerState,
    pub aborted: &'a mut Vec<AbortedTxn>,
    pub dir: &'a Path,
    pub high_watermark: i64,
}

impl Transactions<'_> {
    /// Closes the marker's transaction; an aborted one goes into the index
    /// of the segment (`segment`) holding the marker.
    pub fn complete(&mut self, segment: i64, marker: &BatchHeader, kind: Option<ControlType>) -> Result<(), LogError> {
        let first = self.producers.complete_txn(marker.producer_id, 0);
        if kind != Some(ControlType::Abort) {
            return Ok(());
        }
        let marker_offset = marker.base_offset;
        if self.aborted.last().is_some_and(|a| a.last_offset >= marker_offset) {
            return Ok(()); // already indexed (replayed at start-up)
        }
        let entry = AbortedTxn {
            producer_id: marker.producer_id,
            first_offset: first.unwrap_or(marker_offset),
            last_offset: marker_offset,
            last_stable_offset: self
                .producers
                .first_unstable_offset()
                .map_or(self.high_watermark, |f| f.min(self.high_watermark)),
        };
        txn_index::append(self.dir, segment, &entry)?;
        self.aborted.push(entry);
        Ok(())
    }
}

/// (offset, timestamp) of each record in one stored batch.
fn records_of(batch: &[u8]) -> Result<Vec<(i64, i64)>, LogError> {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .map_err(|_| LogError::Batch(BatchError::Invalid("stored batch does not decode")))?;
    Ok(set.records.iter().map(|r| (r.offset, r.timestamp)).collect())
}

pub(super) fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if let Ok(offset) = stem.parse::<i64>() {
                out.push(offset);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::encode_batch;
    use crate::storage::loader::LogLoader;
    use kafka_protocol::records::Compression;

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    fn append(log: &mut Log, count: usize, ts: i64) -> AppendInfo {
        let mut batch = encode_batch(count, ts, Compression::None).to_vec();
        log.append(&mut batch, ts).unwrap()
    }

    /// Offsets of the batches a read returns.
    fn read_offsets(log: &mut Log, offset: i64, max: usize) -> Vec<i64> {
        let Some(plan) = log.plan_read(offset, log.high_watermark()).unwrap() else {
            return vec![];
        };
        let bytes = plan.read(max, true).unwrap();
        let mut out = vec![];
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::parse_and_verify(&bytes[pos..]).unwrap();
            out.push(h.base_offset);
            pos += h.total_size();
        }
        out
    }

    fn load(dir: &Path, cfg: LogConfig, clean: bool, recovery_point: i64) -> (Log, crate::storage::loader::LoadReport) {
        LogLoader {
            dir,
            config: cfg,
            clean_shutdown: clean,
            recovery_point,
            log_start_offset: 0,
            now_ms: 0,
        }
        .load()
        .unwrap()
    }

    /// A transactional batch of `count` records from producer `pid`.
    fn append_txn(log: &mut Log, pid: i64, seq: i32, count: usize) -> AppendInfo {
        let mut batch = encode_batch(count, 1000, Compression::None).to_vec();
        // Producer id, epoch 0, sequence and the transactional bit, then the CRC again.
        batch[43..51].copy_from_slice(&pid.to_be_bytes());
        batch[51..53].copy_from_slice(&0i16.to_be_bytes());
        batch[53..57].copy_from_slice(&seq.to_be_bytes());
        let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x10;
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(&mut batch, 1000).unwrap()
    }

    fn append_marker(log: &mut Log, pid: i64, kind: ControlType) -> AppendInfo {
        let mut batch = crate::storage::batch::control_batch(pid, 0, 0, kind, 1000);
        log.append(&mut batch, 1000).unwrap()
    }

    fn read_offsets_below(log: &mut Log, offset: i64, max_offset: i64) -> Vec<i64> {
        let Some(plan) = log.plan_read(offset, max_offset).unwrap() else {
            return vec![];
        };
        let bytes = plan.read(1 << 20, true).unwrap();
        let mut out = vec![];
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::parse_and_verify(&bytes[pos..]).unwrap();
            out.push(h.base_offset);
            pos += h.total_size();
        }
        out
    }

    #[test]
    fn open_transactions_hold_back_the_stable_offset_and_aborts_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
        append(&mut log, 2, 1000); // 0-1, plain
        append_txn(&mut log, 7, 0, 3); // 2-4, producer 7 (to be aborted)
        append(&mut log, 1, 1000); // 5, plain
        append_txn(&mut log, 8, 0, 2); // 6-7, producer 8 (to be committed)
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (8, 2));
        // read_committed stops before the open transaction.
        assert_eq!(read_offsets_below(&mut log, 0, 2), vec![0]);
        assert_eq!(append_marker(&mut log, 7, ControlType::Abort).base_offset, 8);
        assert_eq!(log.last_stable_offset(), 6);
        assert_eq!(read_offsets_below(&mut log, 0, 6), vec![0, 2, 5]);
        assert_eq!(append_marker(&mut log, 8, ControlType::Commit).base_offset, 9);
        assert_eq!(log.last_stable_offset(), 10);
        assert_eq!(log.aborted_transactions(0, 10), vec![(7, 2)]);
        assert_eq!(log.aborted_transactions(9, 10), vec![], "ended before the fetch offset");
        assert_eq!(log.aborted_transactions(0, 2), vec![], "begins after the fetch's end");
        // A new transaction of producer 7 starts afresh.
        append_txn(&mut log, 7, 3, 1); // 10
        assert_eq!(log.last_stable_offset(), 10);

        // Kill -9 (no close): the index and the open transaction come back.
        drop(log);
        let (mut log, _) = load(dir.path(), config(1 << 20), false, 0);
        assert_eq!(log.aborted_transactions(0, 11), vec![(7, 2)]);
        assert_eq!(log.last_stable_offset(), 10);
        assert_eq!(read_offsets_below(&mut log, 0, 10), vec![0, 2, 5, 6, 8, 9]);
        {
            // (In a copy: the abort after an unclean restart is indexed too.)
            let copy = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
            }
            let (mut other, _) = load(copy.path(), config(1 << 20), false, 0);
            append_marker(&mut other, 7, ControlType::Abort);
            assert_eq!(other.aborted_transactions(0, 12), vec![(7, 2), (7, 10)]);
        }
        // Clean close: the snapshot carries the open transaction.
        let mut log = log;
        log.close().unwrap();
        drop(log);
        let (mut log, _) = load(dir.path(), config(1 << 20), true, 11);
        assert_eq!(log.aborted_transactions(0, 11), vec![(7, 2)]);
        assert_eq!(log.last_stable_offset(), 10);
        // The transaction left open is aborted after the restart.
        assert_eq!(append_marker(&mut log, 7, ControlType::Abort).base_offset, 11);
        assert_eq!(log.aborted_transactions(0, 12), vec![(7, 2), (7, 10)]);
        assert_eq!(log.last_stable_offset(), 12);
    }

    #[test]
    fn append_assigns_offsets_and_reads_return_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
        assert_eq!(append(&mut log, 3, 1000).base_offset, 0);
        assert_eq!(append(&mut log, 2, 2000).base_offset, 3);
        assert_eq!(append(&mut log, 4, 3000).base_offset, 5);
        assert_eq!(log.log_end_offset(), 9);
        // From inside a batch: that whole batch comes back first.
        assert_eq!(read_offsets(&mut log, 4, 1 << 20), vec![3, 5]);
        assert_eq!(read_offsets(&mut log, 0, 1 << 20), vec![0, 3, 5]);
        // A tiny limit still returns the first batch whole.
        assert_eq!(read_offsets(&mut log, 0, 1), vec![0]);
        assert!(log.plan_read(9, 9).unwrap().is_none());
        assert!(matches!(log.plan_read(10, 9), Err(LogError::OffsetOutOfRange { .. })));
    }

    #[test]
    fn rolls_by_size_and_finds_offsets_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(400), 0).unwrap();
        for i in 0..20 {
            append(&mut log, 2, 1000 + i);
        }
        assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
        for base in log.segment_base_offsets() {
            assert!(dir.path().join(file_name(base, ".log")).exists());
            assert!(dir.path().join(file_name(base, ".index")).exists());
            assert!(dir.path().join(file_name(base, ".timeindex")).exists());
        }
        for target in [0, 1, 7, 22, 39] {
            let first = read_offsets(&mut log, target, 1)[0];
            assert!(first <= target && target < first + 2, "target {target} got {first}");
        }
        // Batch 9 holds offsets 18 and 19, stamped 1009 and 1010.
        assert_eq!(log.offset_for_timestamp(1010).unwrap(), Some((19, 1010)));
        assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
        assert_eq!(log.max_timestamp_record().unwrap(), Some((39, 1020)));
    }

    #[test]
    fn recovery_truncates_a_torn_tail_and_keeps_everything_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
        for _ in 0..10 {
            append(&mut log, 3, 1000);
        }
        drop(log);
        let path = dir.path().join(file_name(0, ".log"));
        let good_len = std::fs::metadata(&path).unwrap().len();
        // A crash mid-write: half a batch, then garbage.
        let mut half = encode_batch(3, 1000, Compression::None).to_vec();
        half.truncate(half.len() / 2);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&half);
        std::fs::write(&path, &bytes).unwrap();

        let (mut log, report) = load(dir.path(), config(1 << 20), false, 0);
        assert_eq!(report.truncated_bytes, half.len() as u64);
        assert!(report.truncation_reason.is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(log.log_end_offset(), 30);
        assert_eq!(read_offsets(&mut log, 27, 1 << 20), vec![27]);
        // Appends continue at the next offset.
        assert_eq!(append(&mut log, 1, 2000).base_offset, 30);

        // Random bytes (a bad CRC) are cut as well.
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        let mut next = encode_batch(2, 3000, Compression::None).to_vec();
        assign_offsets(&mut next, 31, 0, None);
        bytes.extend_from_slice(&next);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (log, report) = load(dir.path(), config(1 << 20), false, 0);
        assert!(report.truncation_reason.unwrap().contains("CRC"));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len as u64);
        assert_eq!(log.log_end_offset(), 31);
    }

    #[test]
    fn clean_restart_reads_only_the_tail_and_keeps_producer_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(600), 0).unwrap();
        for i in 0..30 {
            let mut batch = encode_batch(2, 1000 + i, Compression::None).to_vec();
            // Make it an idempotent producer's batch: producer id 42, epoch 0, sequence 2i.
            batch[43..51].copy_from_slice(&42i64.to_be_bytes());
            batch[51..53].copy_from_slice(&0i16.to_be_bytes());
            batch[53..57].copy_from_slice(&(2 * i as i32).to_be_bytes());
            let crc = crc32c::crc32c(&batch[21..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
            log.append(&mut batch, 0).unwrap();
        }
        let segments = log.segment_count();
        log.close().unwrap();
        drop(log);
        let (mut log, report) = load(dir.path(), config(600), true, 0);
        assert_eq!(report.recovered_segments, 0);
        assert_eq!(log.segment_count(), segments);
        assert_eq!(log.log_end_offset(), 60);
        assert_eq!(log.producers().entry(42).unwrap().batches.back().unwrap().last_seq, 59);
        assert_eq!(read_offsets(&mut log, 59, 1 << 20), vec![58]);
        // After a crash, only segments past the recovery point are scanned.
        drop(log);
        let (log, report) = load(dir.path(), config(600), false, 50);
        assert_eq!(report.recovered_segments, 1);
        assert_eq!(log.log_end_offset(), 60);
        assert_eq!(log.producers().entry(42).unwrap().batches.back().unwrap().last_seq, 59);
    }

    #[test]
    fn retention_deletes_whole_segments_and_moves_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(300);
        cfg.retention_ms = 10_000;
        let mut log = Log::create(dir.path(), cfg.clone(), 0).unwrap();
        for i in 0..20 {
            append(&mut log, 1, 1000 + i * 1000);
        }
        let before = log.segment_count();
        // At 25 s, batches stamped before 15 s are past retention.
        let deleted = log.apply_retention(25_000).unwrap();
        assert!(deleted > 0 && log.segment_count() == before - deleted);
        let start = log.log_start_offset();
        assert_eq!(start, log.segment_base_offsets()[0]);
        assert!(matches!(log.plan_read(0, 20), Err(LogError::OffsetOutOfRange { .. })));
        assert!(!read_offsets(&mut log, start, 1).is_empty());

        // Size-based: keep at most ~one segment.
        log.config.retention_ms = -1;
        log.config.retention_bytes = 300;
        log.apply_retention(25_000).unwrap();
        assert!(log.size_bytes() <= 600, "size {}", log.size_bytes());
        assert_eq!(log.log_end_offset(), 20);

        // Everything expired: the active segment goes too and a new one starts at the end.
        log.config.retention_ms = 1;
        log.apply_retention(1_000_000).unwrap();
        assert_eq!(log.log_start_offset(), 20);
        assert_eq!(append(&mut log, 1, 1_000_000).base_offset, 20);
    }

    #[test]
    fn rolls_when_the_first_batch_is_older_than_segment_ms() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(1 << 20);
        cfg.segment_ms = 1000;
        let mut log = Log::create(dir.path(), cfg, 0).unwrap();
        append(&mut log, 1, 10_000);
        append(&mut log, 1, 10_500);
        assert_eq!(log.segment_count(), 1);
        append(&mut log, 1, 11_001);
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    }

    #[test]
    fn refuses_timestamps_too_far_in_the_future() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
        let now = 1_000_000_000;
        let mut batch = encode_batch(1, now + 3_600_001, Compression::None).to_vec();
        assert!(matches!(
            log.append(&mut batch, now),
            Err(LogError::InvalidTimestamp { .. })
        ));
        let mut batch = encode_batch(1, now + 3_600_000, Compression::None).to_vec();
        assert!(log.append(&mut batch, now).is_ok());
    }

    #[test]
    fn delete_records_moves_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::create(dir.path(), config(300), 0).unwrap();
        for i in 0..10 {
            append(&mut log, 1, i);
        }
        assert_eq!(log.delete_records_before(6).unwrap(), 6);
        assert!(matches!(log.plan_read(5, 10), Err(LogError::OffsetOutOfRange { .. })));
        assert!(log.segment_base_offsets()[0] <= 6);
        assert!(matches!(
            log.delete_records_before(11),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn log_append_time_rewrites_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(1 << 20);
        cfg.log_append_time = true;
        let mut log = Log::create(dir.path(), cfg, 0).unwrap();
        let mut batch = encode_batch(2, 5, Compression::None).to_vec();
        let info = log.append(&mut batch, 777_000).unwrap();
        assert_eq!(info.log_append_time, Some(777_000));
        let plan = log.plan_read(0, 2).unwrap().unwrap();
        let stored = plan.read(1 << 20, true).unwrap();
        let h = BatchHeader::parse_and_verify(&stored).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 777_000);
    }
}
