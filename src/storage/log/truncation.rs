//! Truncation of a follower's log (Kafka's `truncateTo`): what lies past the
//! point where its history and the leader's agree goes — whole batches, so
//! the log may end a little before the point asked for (the follower fetches
//! it again). Segments, indexes, producer state, aborted transactions and
//! the leader epoch cache are left as if the removed batches had never been
//! written.

use super::{Log, LogError};
use crate::storage::loader::load_producer_state;
use crate::storage::producer_state::ProducerState;
use crate::storage::segment::LogSegment;
use crate::storage::txn_index::{self, AbortedTxns};

impl Log {
    /// Removes every batch holding an offset at or after `offset`; returns
    /// the new log end offset. At or past the log end no batch goes, but
    /// epochs starting at `offset` or later still do: a broker that became
    /// leader and appended nothing before losing leadership has an epoch
    /// entry at its log end that the new leader never had (Kafka's
    /// `truncateTo` does the same), and keeping it diverges forever.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.deleted {
            return Err(LogError::Deleted);
        }
        if offset >= self.next_offset {
            self.epochs.truncate_from_end(offset)?;
            return Ok(self.next_offset);
        }
        let offset = offset.max(self.log_start_offset);
        let keep = self.segments.floor_base(offset).unwrap_or(self.segments.first_base());
        // Later segments go whole; the one holding `offset` becomes the active one.
        let later: Vec<i64> = self.segments.bases().filter(|b| *b > keep).collect();
        if self.segments.active().base_offset() != keep {
            if let Some(kept) = self.segments.remove_sealed(keep) {
                let previous = self.segments.replace_active(kept);
                self.deleted_segments.push(previous.mark_deleted()?);
            }
        }
        for base in later {
            if let Some(segment) = self.segments.remove_sealed(base) {
                self.deleted_segments.push(segment.mark_deleted()?);
            }
        }
        let active = self.segments.active_mut();
        active.reopen_for_append()?;
        let (mut position, mut end_offset, size) = (0u64, active.base_offset(), active.size());
        while let Some(header) = active.read_header_at(position, size)? {
            if header.last_offset() >= offset {
                break;
            }
            position += header.total_size() as u64;
            end_offset = header.next_offset();
        }
        active.truncate_to(position, end_offset)?;
        // Indexes and timestamps rebuilt from what is left (truncation is rare).
        active.scan(usize::MAX, true)?;

        self.next_offset = end_offset;
        self.high_watermark = self.high_watermark.min(end_offset);
        self.recovery_point = self.recovery_point.min(end_offset);
        self.first_dirty_offset = self.first_dirty_offset.min(end_offset);
        // The kept segment's aborted-transaction index loses the entries past the end.
        let entries = txn_index::read(&self.dir, keep)?;
        txn_index::delete(&self.dir, keep)?;
        for entry in entries.iter().filter(|a| a.last_offset < end_offset) {
            txn_index::append(&self.dir, keep, entry)?;
        }
        let mut aborted = AbortedTxns::load(&self.dir, self.segments.bases(), end_offset)?;
        self.producers = load_producer_state(
            &self.dir,
            &mut self.segments,
            &mut aborted,
            self.log_start_offset,
            end_offset,
        )?;
        self.aborted = aborted;
        self.epochs.truncate_from_end(end_offset)?;
        Ok(end_offset)
    }
}

impl Log {
    /// Empties the log and starts it at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose whole log lies before
    /// the leader's log start offset. `offset` must be past every offset
    /// this log holds.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        if self.deleted {
            return Err(LogError::Deleted);
        }
        if offset < self.next_offset {
            return Err(LogError::UnexpectedAppendOffset {
                first: offset,
                log_end: self.next_offset,
            });
        }
        let fresh = LogSegment::create(&self.dir, offset, self.config.index_interval_bytes, now_ms)?;
        let sealed: Vec<i64> = self
            .segments
            .bases()
            .filter(|b| *b != self.segments.active().base_offset())
            .collect();
        for base in sealed {
            if let Some(segment) = self.segments.remove_sealed(base) {
                self.deleted_segments.push(segment.mark_deleted()?);
            }
        }
        let previous = self.segments.replace_active(fresh);
        self.deleted_segments.push(previous.mark_deleted()?);
        self.log_start_offset = offset;
        self.next_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.first_dirty_offset = offset;
        self.producers = ProducerState::default();
        self.aborted = AbortedTxns::empty(&self.dir);
        self.epochs.truncate_from_end(i64::MIN)?;
        Ok(())
    }
}
