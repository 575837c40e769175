//! Rolling and durability. A roll seals the active segment and opens the
//! next one and nothing more: the fsyncs it calls for (the sealed segment,
//! its indexes, the directory, the producer snapshot) are planned under the
//! lock and run outside it (`Rolled`, `FlushPlan`), and only then does the
//! recovery point move past the sealed segment.

use super::{Log, LogError};
use crate::storage::batch::BatchHeader;
use crate::storage::producer_snapshot::Snapshot;
use crate::storage::segment::{LogSegment, SegmentFlush};
use std::io;
use std::path::PathBuf;

/// Directory entries created and not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnsyncedDirs {
    None,
    /// Segment files were created in the partition directory (a roll).
    Partition,
    /// The partition directory itself is new: its entry in the log directory too.
    NewLog,
}

/// What a roll leaves to do outside the log's lock.
#[derive(Debug, Clone)]
pub struct Rolled {
    /// Segments below this offset are sealed: flush them, then move the
    /// recovery point here.
    pub flush_below: i64,
    /// The producer state at `flush_below`.
    pub snapshot: Snapshot,
}

/// fsyncs to run outside the log's lock.
#[derive(Default)]
pub struct FlushPlan {
    segments: Vec<SegmentFlush>,
    dirs: Vec<PathBuf>,
}

impl FlushPlan {
    pub fn run(&self) -> io::Result<()> {
        for segment in &self.segments {
            segment.run()?;
        }
        for dir in &self.dirs {
            crate::storage::fsync_dir(dir)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.dirs.is_empty()
    }
}

impl Log {
    /// Rolls to a new segment if the active one is full, too old, or would
    /// overflow its relative offsets.
    pub(super) fn maybe_roll(
        &mut self,
        incoming: usize,
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<Option<Rolled>, LogError> {
        let active = self.segments.active();
        if active.is_empty() {
            return Ok(None);
        }
        let full = active.size() + incoming as u64 > self.config.segment_bytes;
        let waited = match active.first_batch_timestamp() {
            Some(t) if t >= 0 => header.max_timestamp.saturating_sub(t),
            _ => now_ms.saturating_sub(active.created_at_ms()),
        };
        let too_old = waited > self.config.segment_ms;
        let last_offset = self.next_offset + header.last_offset_delta as i64;
        let offsets_overflow = last_offset - active.base_offset() > i32::MAX as i64;
        if full || too_old || offsets_overflow {
            return self.roll(now_ms);
        }
        Ok(None)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    /// None when the active segment is empty (it stays active).
    pub fn roll(&mut self, now_ms: i64) -> Result<Option<Rolled>, LogError> {
        if self.segments.active().base_offset() == self.next_offset {
            return Ok(None);
        }
        self.segments.active_mut().seal()?;
        let next = LogSegment::create(&self.dir, self.next_offset, self.config.index_interval_bytes, now_ms)?;
        self.segments.push_active(next);
        if self.unsynced_dirs == UnsyncedDirs::None {
            self.unsynced_dirs = UnsyncedDirs::Partition;
        }
        Ok(Some(Rolled {
            flush_below: self.next_offset,
            snapshot: Snapshot::take(&self.producers, self.next_offset),
        }))
    }

    /// The fsyncs that make everything below `offset` durable: the segments
    /// from the recovery point on that hold offsets below it, and directory
    /// entries not yet synced.
    pub fn flush_plan(&mut self, offset: i64) -> FlushPlan {
        if self.deleted {
            return FlushPlan::default();
        }
        let from = self.recovery_point;
        let segments = self
            .segments
            .from_offset_mut(from)
            .filter(|s| s.base_offset() < offset)
            .map(|s| s.flush_handle())
            .collect();
        let dirs = match std::mem::replace(&mut self.unsynced_dirs, UnsyncedDirs::None) {
            UnsyncedDirs::None => vec![],
            UnsyncedDirs::Partition => vec![self.dir.clone()],
            UnsyncedDirs::NewLog => {
                let parent = self.dir.parent().map(PathBuf::from);
                std::iter::once(self.dir.clone()).chain(parent).collect()
            }
        };
        FlushPlan { segments, dirs }
    }

    /// The flush the flush policy asks for (all that is written), and marks
    /// the log as flushed.
    pub fn take_flush(&mut self, now_ms: i64) -> FlushPlan {
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        self.flush_plan(self.next_offset)
    }

    /// True when flush.ms has passed since the last flush with data waiting.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.unflushed_messages > 0 && now_ms - self.last_flush_ms >= self.config.flush_ms
    }

    /// Marks everything below `offset` as safely on disk.
    pub fn advance_recovery_point(&mut self, offset: i64) {
        self.recovery_point = self.recovery_point.max(offset);
    }

    /// Flushes everything and writes what a clean start-up needs: the
    /// active segment's indexes and a producer snapshot at the log end.
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.deleted {
            return Ok(());
        }
        // Sealed so that its indexes are whole on disk; the active segment
        // is reopened for appends at the next start.
        self.segments.active_mut().seal()?;
        let next = self.next_offset;
        self.flush_plan(next).run()?;
        self.recovery_point = next;
        Snapshot::take(&self.producers, next).write(&self.dir)?;
        Ok(())
    }
}
