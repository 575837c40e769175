//! What the cleaner asks of a log: its sealed segments as they are now, and
//! a swap of one for its cleaned copy, refused if it changed meanwhile.

use super::{Log, LogError};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// A sealed segment, described for the cleaner (which reads it outside the
/// log's lock: a sealed segment does not change until swapped or deleted).
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub base: i64,
    /// The offset after it: the next segment's base.
    pub end: i64,
    pub size: u64,
    pub file: Arc<File>,
    /// Its newest record's timestamp (the file's age when it has none).
    pub newest_timestamp: i64,
}

impl Log {
    /// The sealed segments, oldest first.
    pub fn sealed_segments(&mut self) -> Result<Vec<SealedSegment>, LogError> {
        let ends: Vec<i64> = self.segments.bases().skip(1).collect();
        let mut out = Vec::with_capacity(ends.len());
        for (segment, end) in self.segments.sealed_mut().zip(ends) {
            let newest_timestamp = segment
                .max_timestamp()?
                .map_or(segment.created_at_ms(), |m| m.timestamp);
            out.push(SealedSegment {
                base: segment.base_offset(),
                end,
                size: segment.size(),
                file: segment.file().clone(),
                newest_timestamp,
            });
        }
        Ok(out)
    }

    /// Where the part of the log not cleaned since start-up begins.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty_offset
    }

    /// Records that the log is clean below `offset`.
    pub fn mark_cleaned(&mut self, offset: i64) {
        self.first_dirty_offset = self.first_dirty_offset.max(offset);
    }

    /// Replaces the sealed segment at `base` with the cleaned copy staged in
    /// `staging`, unless the segment is no longer the `size` bytes it was
    /// when read (deleted by retention, DeleteRecords or the topic's
    /// deletion). True when swapped.
    pub fn swap_cleaned(&mut self, base: i64, size: u64, staging: &Path) -> Result<bool, LogError> {
        if self.deleted || base >= self.segments.active().base_offset() {
            return Ok(false);
        }
        let Some(old) = self.segments.get(base).filter(|s| s.size() == size) else {
            return Ok(false);
        };
        let cleaned = old.replace_with(staging)?;
        Ok(self.segments.replace_sealed(cleaned))
    }
}
