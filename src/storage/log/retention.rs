//! Retention (retention.ms, retention.bytes) and DeleteRecords: the log
//! start offset moves forward and whole segments before it go. Under the
//! lock a segment's files are only renamed aside; they are unlinked later
//! (`take_deleted`), outside it.

use super::{Log, LogError};
use crate::storage::segment::DeletedSegment;

impl Log {
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
            self.epochs.truncate_from_start(offset)?;
            let below: Vec<i64> = self
                .segments
                .bases()
                .filter(|b| self.segments.end_of(*b).is_some_and(|end| end <= offset))
                .collect();
            self.delete_sealed(&below)?;
        }
        Ok(self.log_start_offset)
    }

    /// Deletes whole segments that break retention.ms or retention.bytes, and
    /// moves the log start offset past them. Returns how many were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        if self.deleted || !self.config.delete {
            return Ok(0);
        }
        let (retention_ms, retention_bytes) = (self.config.retention_ms, self.config.retention_bytes);
        let mut size_over = if retention_bytes >= 0 {
            self.size_bytes() as i64 - retention_bytes
        } else {
            0
        };
        let count = self.segments.len();
        let mut doomed = Vec::new();
        for (i, segment) in self.segments.iter_mut().enumerate() {
            let is_last = i + 1 == count;
            if segment.is_empty() {
                if is_last {
                    break;
                }
                // Emptied by compaction: nothing in it to keep.
                doomed.push(segment.base_offset());
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
            doomed.push(segment.base_offset());
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        if doomed.len() == count {
            // The active segment goes too: a new, empty one takes its place.
            // Its sealed predecessors are flushed by the next roll's flush;
            // they are being deleted anyway.
            let _ = self.roll(now_ms)?;
        }
        self.delete_sealed(&doomed)?;
        self.log_start_offset = self.log_start_offset.max(self.segments.first_base());
        self.epochs.truncate_from_start(self.log_start_offset)?;
        Ok(doomed.len())
    }

    /// Takes sealed segments out of the log; their files wait in `take_deleted`.
    fn delete_sealed(&mut self, bases: &[i64]) -> Result<(), LogError> {
        for base in bases {
            if let Some(segment) = self.segments.remove_sealed(*base) {
                self.deleted_segments.push(segment.mark_deleted()?);
            }
        }
        self.aborted.forget_before(self.segments.first_base());
        Ok(())
    }

    /// The files of segments deleted since the last call, to unlink outside
    /// the log's lock.
    pub fn take_deleted(&mut self) -> Vec<DeletedSegment> {
        std::mem::take(&mut self.deleted_segments)
    }
}
