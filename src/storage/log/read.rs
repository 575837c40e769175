//! Reads: a fetch's `ReadPlan` (which file, which bytes), worked out under
//! the log's lock and read outside it, and the timestamp lookups of
//! ListOffsets, which alone look inside a batch (the one that holds the
//! answer).

use super::{Log, LogError};
use crate::storage::batch::{BatchError, BatchHeader, BATCH_HEADER_LEN};
use crate::storage::record_stream::stream_records;
use crate::storage::segment::LogSegment;
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::sync::Arc;

/// Where to read a fetch's bytes (a file handle stays valid even if the
/// segment is deleted meanwhile).
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Arc<File>,
    position: u64,
    end: u64,
}

/// Whole batches of a plan as a place in its file, not read: a fetch
/// response sends them from the file as the socket takes them, so a client
/// slow to read holds a file handle, not the bytes.
#[derive(Debug, Clone)]
pub struct RecordRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
    /// The records of its batches, from their headers.
    pub records: u64,
    /// The offset after its last batch.
    pub next_offset: i64,
}

impl RecordRegion {
    /// The region's bytes, read now.
    pub fn read(&self) -> io::Result<Bytes> {
        let bytes = LogSegment::read_at(&self.file, self.position, self.len)?;
        if bytes.len() != self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the log was truncated under a read",
            ));
        }
        Ok(Bytes::from(bytes))
    }
}

/// Bytes of batch headers read at a time while finding a region's batches.
const HEADER_WINDOW: usize = 16 * 1024;

impl ReadPlan {
    /// Reads whole batches, at most `max_bytes` of them, or the first batch
    /// whole when `min_one` is set even if it is larger. File I/O: run it on
    /// threads that may block (see `storage::blocking`).
    pub fn read(&self, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        match self.region(max_bytes, min_one)? {
            Some(region) => region.read(),
            None => Ok(Bytes::new()),
        }
    }

    /// Where the batches `read` would return are, found from their headers
    /// alone (a window of headers at a time). None when there are none.
    pub fn region(&self, max_bytes: usize, min_one: bool) -> io::Result<Option<RecordRegion>> {
        let available = self.end - self.position;
        let (mut at, mut records, mut next_offset) = (0u64, 0u64, None);
        let mut window: Vec<u8> = Vec::new();
        let mut window_at = 0u64;
        while at + (BATCH_HEADER_LEN as u64) <= available {
            let in_window = at >= window_at && at + BATCH_HEADER_LEN as u64 <= window_at + window.len() as u64;
            if !in_window {
                let want = (available - at).min(HEADER_WINDOW as u64) as usize;
                window = LogSegment::read_at(&self.file, self.position + at, want)?;
                window_at = at;
            }
            let Ok(header) = BatchHeader::parse(&window[(at - window_at) as usize..]) else {
                break;
            };
            let size = header.total_size() as u64;
            let fits = at + size <= max_bytes as u64;
            if at + size > available || !(fits || (at == 0 && min_one)) {
                break;
            }
            records += header.records_count.max(0) as u64;
            next_offset = Some(header.next_offset());
            at += size;
            if !fits {
                break;
            }
        }
        Ok(next_offset.map(|next_offset| RecordRegion {
            file: self.file.clone(),
            position: self.position,
            len: at as usize,
            records,
            next_offset,
        }))
    }
}

impl Log {
    /// Plans a read from `offset` of data below `max_offset` (the high
    /// watermark or last stable offset). None when there is nothing to read.
    pub fn plan_read(&mut self, offset: i64, max_offset: i64) -> Result<Option<ReadPlan>, LogError> {
        if self.deleted {
            return Err(self.gone());
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
        let bounded = max_offset < self.next_offset;
        for segment in self.segments.from_offset_mut(offset) {
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

    /// Reads the first batch holding a timestamp at or after `timestamp`.
    fn batch_at_or_after_timestamp(&mut self, timestamp: i64) -> Result<Option<Bytes>, LogError> {
        let log_start = self.log_start_offset;
        for segment in self.segments.iter_mut() {
            if segment.max_timestamp()?.is_some_and(|m| m.timestamp < timestamp) {
                continue;
            }
            let end = segment.size();
            if let Some((pos, h)) = segment.find_batch_by_timestamp(timestamp, end)? {
                if h.last_offset() >= log_start {
                    let batch = LogSegment::read_at(segment.file(), pos, h.total_size())?;
                    return Ok(Some(Bytes::from(batch)));
                }
            }
        }
        Ok(None)
    }

    /// The first record at or after `timestamp`: (offset, timestamp), as
    /// Kafka answers ListOffsets.
    pub fn offset_for_timestamp(&mut self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        let Some(batch) = self.batch_at_or_after_timestamp(timestamp)? else {
            return Ok(None);
        };
        let log_start = self.log_start_offset;
        first_record_where(&batch, |offset, ts| ts >= timestamp && offset >= log_start)
    }

    /// The record with the greatest timestamp: (offset, timestamp).
    pub fn max_timestamp_record(&mut self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<(i64, i64)> = None; // (timestamp, batch last offset)
        for segment in self.segments.iter_mut() {
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
        Ok(first_record_where(&batch, |_, ts| ts == timestamp)?.or(Some((offset, timestamp))))
    }
}

/// (offset, timestamp) of the first record of the stored batch at the start
/// of `batch` that `wanted` picks, its records streamed (a compressed batch
/// is never decompressed whole). A LogAppendTime batch's records all carry
/// its max timestamp.
fn first_record_where(batch: &[u8], wanted: impl Fn(i64, i64) -> bool) -> Result<Option<(i64, i64)>, LogError> {
    let unreadable = || LogError::Batch(BatchError::Invalid("stored batch does not decode"));
    let header = BatchHeader::parse(batch)?;
    let mut records = stream_records(batch, &header).map_err(|_| unreadable())?;
    while let Some(record) = records.next_record(|_, _| Ok(())) {
        let record = record.map_err(|_| unreadable())?;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(record.timestamp_delta)
        };
        let offset = header.base_offset.saturating_add(record.offset_delta as i64);
        if wanted(offset, timestamp) {
            return Ok(Some((offset, timestamp)));
        }
    }
    Ok(None)
}
