//! A follower's writes (Kafka's `appendAsFollower`): the leader's batches
//! stored as they are — the offsets, leader epochs and timestamps the leader
//! gave them — checked (CRC, offsets moving forward) but never re-validated
//! or renumbered. The producer state, aborted transactions and leader epoch
//! cache follow the batches as on the leader. The high watermark is the
//! leader's, given by the fetcher.

use super::{Log, LogError, Rolled};
use crate::storage::batch::{BatchHeader, BATCH_HEADER_LEN};

/// What a follower append stored.
#[derive(Debug, Default)]
pub struct FollowerAppend {
    /// First and last offsets stored; None when the records held no whole batch.
    pub offsets: Option<(i64, i64)>,
    pub records: i64,
    /// Segments the appends rolled: to finish in the background, as a leader's.
    pub rolled: Vec<Rolled>,
    /// The flush policy asks for an fsync.
    pub needs_flush: bool,
}

impl Log {
    /// Stores the batches of a fetch response. A partial batch at the end (a
    /// fetch cut at its size limit) is left for the next fetch. A batch below
    /// the log end, or one that fails its CRC, stops the append with an error
    /// and stores nothing of it (what came before it stays).
    pub fn append_as_follower(&mut self, mut records: &[u8], now_ms: i64) -> Result<FollowerAppend, LogError> {
        if self.deleted {
            return Err(LogError::Deleted);
        }
        let mut out = FollowerAppend::default();
        while records.len() >= BATCH_HEADER_LEN {
            let Some((_, size)) = BatchHeader::peek_offset_and_size(records) else {
                break;
            };
            if records.len() < size {
                break;
            }
            let (batch, rest) = records.split_at(size);
            records = rest;
            let header = BatchHeader::parse_and_verify(batch)?;
            if header.base_offset < self.next_offset {
                return Err(LogError::UnexpectedAppendOffset {
                    first: header.base_offset,
                    log_end: self.next_offset,
                });
            }
            // Offsets a compacted leader no longer has: the log end moves past them.
            self.next_offset = header.base_offset;
            if let Some(rolled) = self.maybe_roll(size, &header, now_ms)? {
                out.rolled.push(rolled);
            }
            let (head, body) = batch.split_at(BATCH_HEADER_LEN);
            self.store(head, body, &header)?;
            self.epochs.assign(header.partition_leader_epoch, header.base_offset)?;
            out.records += header.records_count as i64;
            let first = out.offsets.map_or(header.base_offset, |(f, _)| f);
            out.offsets = Some((first, header.last_offset()));
        }
        out.needs_flush = self.unflushed_messages >= self.config.flush_messages;
        Ok(out)
    }

    /// The leader's high watermark, as far as this replica has the log.
    pub fn update_high_watermark(&mut self, leader_high_watermark: i64) {
        self.high_watermark = leader_high_watermark.clamp(self.log_start_offset, self.next_offset);
    }
}
