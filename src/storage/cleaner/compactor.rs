//! The cleaner's file work, outside the log's lock: mapping each key of the
//! dirty section to its latest offset, and rewriting segments without the
//! records that a later one of the same key replaces, small neighbours
//! merged into one (as Kafka groups them).
//!
//! Record bytes are copied, never re-encoded: each record is stored relative
//! to its batch's base offset and first timestamp, and a rebuilt batch keeps
//! those, its producer fields, max timestamp and last offset delta. So
//! offsets, producer sequences and the time index stay what they were; only
//! the record count, length and CRC change (and the compressed bytes,
//! recompressed with the batch's own codec).

use super::offset_map::{KeyHash, OffsetMap};
use crate::storage::batch::{rebuilt_batch, BatchHeader, BATCH_HEADER_LEN};
use crate::storage::codec_stream::{CappedEncoder, EncodeError};
use crate::storage::log::{LogError, SealedSegment};
use crate::storage::record_stream::{stream_records, CopyError, RecordHead};
use crate::storage::segment::LogSegment;
use crate::storage::txn_index::{self, AbortedTxn};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes read from a segment at a time (Kafka's log.cleaner.io.buffer.size order).
const READ_WINDOW: usize = 512 * 1024;

/// Aborted transactions by producer: (first offset, marker offset).
pub(super) struct Aborted(HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    pub fn new<'a>(txns: impl Iterator<Item = &'a AbortedTxn>) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        Aborted(by_producer)
    }

    /// Whether the data batch belongs to an aborted transaction.
    pub fn contains(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.0.get(&h.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, last)| first <= h.base_offset && h.base_offset <= last)
            })
    }
}

/// Which records a cleaning keeps.
pub(super) struct KeepRule<'a> {
    pub map: &'a OffsetMap,
    /// Records from here on were not mapped: kept as they are.
    pub end: i64,
    /// Deletes (null values) in batches older than this go.
    pub tombstone_horizon: i64,
}

impl KeepRule<'_> {
    fn keeps(&self, offset: i64, key: Option<KeyHash>, tombstone: bool, batch: &BatchHeader) -> bool {
        let Some(key) = key else { return true };
        if offset >= self.end {
            return true;
        }
        if self.map.get_hash(key).is_some_and(|latest| offset < latest) {
            return false;
        }
        // The key's latest record: a delete stays until delete.retention.ms.
        !(tombstone && batch.max_timestamp < self.tombstone_horizon)
    }
}

/// Maps the keys of `dirty` (the dirty segments, oldest first) from offset
/// `from`, until the map is full. Returns where the cleaning must stop: the
/// end of the last segment mapped whole, or, when not even the first fits,
/// the first offset not mapped (so that every round makes progress).
pub(super) fn build_offset_map(
    dirty: &[SealedSegment],
    from: i64,
    aborted: &Aborted,
    map: &mut OffsetMap,
) -> Result<i64, LogError> {
    for (i, segment) in dirty.iter().enumerate() {
        let mut stopped_at = None;
        for_each_batch(segment, |batch, header| {
            if stopped_at.is_some() || header.last_offset() < from || header.is_control() || aborted.contains(header) {
                return Ok(());
            }
            // A batch whose records cannot be read is kept whole (see `rewrite`).
            let Ok(mut records) = stream_records(batch, header) else {
                return Ok(());
            };
            while let Some(Ok(record)) = records.next_record(|key, len| map.hash_key(key, len)) {
                let offset = header.base_offset.saturating_add(record.offset_delta as i64);
                let Some(key) = record.key.filter(|_| offset >= from) else {
                    continue;
                };
                if !map.put_hash(key, offset) {
                    stopped_at = Some(offset);
                    break;
                }
            }
            Ok(())
        })?;
        if let Some(offset) = stopped_at {
            return Ok(if i == 0 { offset } else { segment.base });
        }
    }
    Ok(dirty.last().map_or(from, |s| s.end))
}

/// What rewriting one segment did.
pub(super) struct Rewritten {
    pub records_removed: u64,
    pub new_size: u64,
}

/// Writes the cleaned copy of `group` (consecutive sealed segments) into
/// `staging` as one segment, named by the first: log, indexes and the
/// aborted-transaction entries of the group (their markers stay), synced.
/// None, and nothing left in `staging`, when a lone segment would lose no
/// record, or a segment could not be read to its end.
pub(super) fn rewrite(
    group: &[SealedSegment],
    dir: &Path,
    staging: &Path,
    index_interval_bytes: u64,
    rule: &KeepRule,
    aborted: &Aborted,
) -> Result<Option<Rewritten>, LogError> {
    let Some(first) = group.first() else {
        return Ok(None);
    };
    let mut out = LogSegment::create(staging, first.base, index_interval_bytes, first.newest_timestamp)?;
    let mut removed = 0u64;
    let mut whole = true;
    for segment in group {
        whole &= for_each_batch(segment, |batch, header| {
            if header.is_control() {
                return Ok(out.append(batch, header)?);
            }
            if aborted.contains(header) {
                removed += header.records_count.max(0) as u64;
                return Ok(());
            }
            match filter_batch(batch, header, rule) {
                Ok(Filtered::All) => out.append(batch, header)?,
                Ok(Filtered::None) => removed += header.records_count.max(0) as u64,
                Ok(Filtered::Some { rebuilt, dropped }) => {
                    let new_header = BatchHeader::parse(&rebuilt)?;
                    out.append(&rebuilt, &new_header)?;
                    removed += dropped;
                }
                // Unreadable records: the batch stays as it is.
                Err(_) => out.append(batch, header)?,
            }
            Ok(())
        })?;
    }
    if !whole || (removed == 0 && group.len() == 1) {
        out.delete()?;
        return Ok(None);
    }
    for segment in group {
        for entry in txn_index::read(dir, segment.base)? {
            txn_index::append(staging, first.base, &entry)?;
        }
    }
    out.seal()?;
    out.flush_handle().run()?;
    Ok(Some(Rewritten {
        records_removed: removed,
        new_size: out.size(),
    }))
}

/// Consecutive segments to clean into one: as many as fit segment.bytes
/// (as they are now: they shrink as they are cleaned) and relative offsets.
pub(super) fn group_by_size(segments: &[SealedSegment], max_bytes: u64) -> Vec<&[SealedSegment]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let first = &segments[start];
        let mut size = first.size;
        let mut end = start + 1;
        while let Some(next) = segments.get(end) {
            let fits = size + next.size <= max_bytes;
            let offsets_fit = next.end - 1 - first.base <= i32::MAX as i64;
            if !(fits && offsets_fit) {
                break;
            }
            size += next.size;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

enum Filtered {
    All,
    None,
    Some { rebuilt: Vec<u8>, dropped: u64 },
}

#[derive(Debug, thiserror::Error)]
enum FilterError {
    #[error(transparent)]
    Records(#[from] crate::storage::records::RecordError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Copy(#[from] CopyError),
}

/// What a rebuilt batch's records may come to, compressed: a cleaned batch
/// is no larger than it was, but its codec's level may differ from the
/// producer's. Past this the batch stays as it is.
fn rebuilt_records_cap(batch: &[u8]) -> usize {
    batch.len().saturating_mul(2).max(64 * 1024)
}

/// The batch without the records `rule` drops. Records are streamed twice,
/// once to decide and once to copy the kept ones into the new batch, so a
/// batch that decompresses to gigabytes costs no more memory than its keys.
fn filter_batch(batch: &[u8], header: &BatchHeader, rule: &KeepRule) -> Result<Filtered, FilterError> {
    let keeps = |record: &RecordHead<KeyHash>| {
        let offset = header.base_offset.saturating_add(record.offset_delta as i64);
        rule.keeps(offset, record.key, !record.has_value, header)
    };
    let hash_key = |key: &mut dyn io::Read, len| rule.map.hash_key(key, len);
    let (mut total, mut kept) = (0u64, 0u64);
    let mut records = stream_records(batch, header)?;
    while let Some(record) = records.next_record(hash_key) {
        total += 1;
        kept += u64::from(keeps(&record?));
    }
    if kept == total {
        return Ok(Filtered::All);
    }
    if kept == 0 {
        return Ok(Filtered::None);
    }
    let max = rebuilt_records_cap(batch);
    let mut encoder = CappedEncoder::new(header.compression(), max).map_err(EncodeError::from)?;
    let mut records = stream_records(batch, header)?;
    while let Some(copied) = records.copy_record(&mut encoder, hash_key, keeps) {
        copied?;
    }
    let compressed = encoder.finish()?;
    let rebuilt = rebuilt_batch(&batch[..BATCH_HEADER_LEN], kept as i32, &compressed);
    Ok(Filtered::Some {
        rebuilt,
        dropped: total - kept,
    })
}

/// Calls `f` with each whole batch of the segment (as planned) and its
/// header, reading a window at a time. A torn or unreadable batch ends the
/// walk. True when the walk reached the segment's end.
fn for_each_batch(
    segment: &SealedSegment,
    mut f: impl FnMut(&[u8], &BatchHeader) -> Result<(), LogError>,
) -> Result<bool, LogError> {
    let mut window = Window::default();
    let mut position = 0u64;
    while position < segment.size {
        let Some(head) = window.get(segment, position, BATCH_HEADER_LEN)? else {
            break;
        };
        let Ok(header) = BatchHeader::parse(head) else { break };
        let Some(batch) = window.get(segment, position, header.total_size())? else {
            break;
        };
        f(batch, &header)?;
        position += header.total_size() as u64;
    }
    Ok(position == segment.size)
}

/// A window of a segment's bytes, refilled as a walk moves on.
#[derive(Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

impl Window {
    /// Bytes `[position, position + len)` of the segment, or None when they
    /// run past its planned size.
    fn get(&mut self, segment: &SealedSegment, position: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let end = position + len as u64;
        if end > segment.size {
            return Ok(None);
        }
        if position < self.start || end > self.start + self.bytes.len() as u64 {
            let want = (segment.size - position).min(len.max(READ_WINDOW) as u64) as usize;
            self.bytes.resize(want, 0);
            segment.file.read_exact_at(&mut self.bytes, position)?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        Ok(Some(&self.bytes[at..at + len]))
    }
}
