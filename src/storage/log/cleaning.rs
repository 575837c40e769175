//! What the cleaner asks of a log: its sealed segments as they are now, and
//! a swap of some for their cleaned copy, refused if they changed meanwhile.

use super::{Log, LogError};
use crate::storage::segment::LogSegment;
use crate::storage::swap;
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

    /// Replaces the sealed segments `old` ((base, size) as the cleaner read
    /// them) with the cleaned segment staged in `staging` under the first
    /// one's base (see `swap`), unless one of them is no longer what was read
    /// (deleted by retention, DeleteRecords or the topic's deletion). True
    /// when replaced.
    pub fn swap_cleaned(&mut self, old: &[(i64, u64)], staging: &Path) -> Result<bool, LogError> {
        let active = self.segments.active().base_offset();
        let unchanged = old
            .iter()
            .all(|&(base, size)| base < active && self.segments.get(base).is_some_and(|s| s.size() == size));
        let Some(&(first, _)) = old.first().filter(|_| unchanged && !self.deleted) else {
            return Ok(false);
        };
        // Opened before the renames: its descriptor follows the file.
        let mut cleaned = LogSegment::open(staging, first, self.config.index_interval_bytes)?;
        let bases: Vec<i64> = old.iter().map(|(base, _)| *base).collect();
        let deleted = swap::replace_segments(&self.dir, staging, &bases)?;
        self.deleted_segments.extend(deleted);
        for base in &bases {
            self.segments.remove_sealed(*base);
        }
        cleaned.moved_to(&self.dir);
        self.segments.insert_sealed(cleaned);
        Ok(true)
    }
}
