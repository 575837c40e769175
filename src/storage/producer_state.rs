//! `ProducerState`: per-partition memory of idempotent producers (id, epoch,
//! and the last few batches' sequences), so that a retried batch is
//! acknowledged with its original offset instead of being stored twice.
//! It also knows each producer's open transaction (where it began), which
//! bounds the last stable offset. Memory only: `producer_snapshot` keeps it
//! across restarts.

use super::batch::BatchHeader;
use std::collections::{BTreeMap, HashMap, VecDeque};
use thiserror::Error;

/// Kafka keeps this many batches per producer for duplicate detection (the
/// client's max in-flight requests).
const BATCHES_KEPT: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProducerStateError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub last_timestamp: i64,
    /// Offset of the first batch of the producer's open transaction.
    pub current_txn_first_offset: Option<i64>,
    /// Epoch of the coordinator that wrote the producer's last marker.
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: 0,
            current_txn_first_offset: None,
            // No marker written yet, as Kafka reports it.
            coordinator_epoch: -1,
        }
    }
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// Already stored: answer with the original offsets.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (last_seq == i32::MAX && next_seq == 0)
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The state holding `entries` (as a snapshot restores it).
    pub fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        let mut state = ProducerState::default();
        for (id, entry) in entries {
            if let Some(first) = entry.current_txn_first_offset {
                state.ongoing.insert(first, id);
            }
            state.producers.insert(id, entry);
        }
        state
    }

    /// Checks a producer's batch against what is known, as Kafka's
    /// ProducerAppendInfo does. Batches without a producer id always append.
    pub fn check(&self, batch: &BatchHeader) -> Result<SequenceCheck, ProducerStateError> {
        // A marker from an older epoch than the producer's is stale (WriteTxnMarkers).
        if batch.is_control() {
            if let Some(entry) = self.producers.get(&batch.producer_id) {
                if batch.producer_epoch < entry.epoch {
                    return Err(ProducerStateError::InvalidEpoch {
                        producer_id: batch.producer_id,
                        epoch: batch.producer_epoch,
                        current: entry.epoch,
                    });
                }
            }
            return Ok(SequenceCheck::Append);
        }
        if !batch.has_producer_id() || batch.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown producer (new, or its state expired): any sequence is accepted.
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(ProducerStateError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.producer_epoch,
                current: entry.epoch,
            });
        }
        if batch.producer_epoch > entry.epoch {
            if batch.base_sequence != 0 {
                return Err(ProducerStateError::OutOfOrderSequence {
                    producer_id: batch.producer_id,
                    expected: 0,
                    got: batch.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_seq = batch.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        match entry.last_seq() {
            Some(last) if !in_sequence(last, batch.base_sequence) => Err(ProducerStateError::OutOfOrderSequence {
                producer_id: batch.producer_id,
                expected: last.wrapping_add(1),
                got: batch.base_sequence,
            }),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Remembers a stored batch (its header carries the assigned offsets).
    pub fn record(&mut self, batch: &BatchHeader) {
        if !batch.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = batch.producer_epoch;
        }
        entry.last_timestamp = batch.max_timestamp;
        if batch.is_transactional() && !batch.is_control() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(batch.base_offset);
            self.ongoing.insert(batch.base_offset, batch.producer_id);
        }
        if batch.base_sequence < 0 {
            return;
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            first_offset: batch.base_offset,
            last_offset: batch.last_offset(),
            timestamp: batch.max_timestamp,
        });
    }

    /// Closes the producer's open transaction when its marker is stored;
    /// returns where the transaction began (None if none was open).
    pub fn complete_txn(&mut self, producer_id: i64, coordinator_epoch: i32) -> Option<i64> {
        let entry = self.producers.get_mut(&producer_id)?;
        entry.coordinator_epoch = coordinator_epoch;
        let first = entry.current_txn_first_offset.take()?;
        self.ongoing.remove(&first);
        Some(first)
    }

    /// The first offset of the oldest open transaction: nothing at or after
    /// it is stable yet.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions: (producer id, first offset).
    pub fn open_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(first, pid)| (*pid, *first))
    }

    /// Forgets producers that have not written since `older_than_ms`, except
    /// those in the middle of a transaction.
    pub fn expire(&mut self, older_than_ms: i64) {
        self.producers
            .retain(|_, e| e.last_timestamp >= older_than_ms || e.current_txn_first_offset.is_some());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::producer_snapshot;

    pub fn batch(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 10,
            max_timestamp: 10,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut s = ProducerState::default();
        let b0 = batch(7, 0, 0, 3, 100);
        assert_eq!(s.check(&b0), Ok(SequenceCheck::Append));
        s.record(&b0);
        // Retry of the same batch: the original offsets come back.
        match s.check(&batch(7, 0, 0, 3, 0)).unwrap() {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (100, 102)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        // A gap.
        assert!(matches!(
            s.check(&batch(7, 0, 5, 1, 0)),
            Err(ProducerStateError::OutOfOrderSequence {
                expected: 3,
                got: 5,
                ..
            })
        ));
        assert_eq!(s.check(&batch(7, 0, 3, 1, 0)), Ok(SequenceCheck::Append));
        // A new epoch must restart at 0; an old one is fenced.
        s.record(&batch(7, 2, 0, 1, 103));
        assert!(matches!(
            s.check(&batch(7, 1, 1, 1, 0)),
            Err(ProducerStateError::InvalidEpoch { .. })
        ));
        assert!(matches!(
            s.check(&batch(7, 3, 4, 1, 0)),
            Err(ProducerStateError::OutOfOrderSequence { .. })
        ));
        assert_eq!(s.check(&batch(7, 3, 0, 1, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn open_transactions_bound_the_stable_offset_and_survive_snapshots() {
        let mut s = ProducerState::default();
        let mut t1 = batch(1, 0, 0, 2, 10);
        t1.attributes = 0x10;
        let mut t2 = batch(2, 0, 0, 1, 12);
        t2.attributes = 0x10;
        s.record(&t1);
        s.record(&batch(3, 0, 0, 1, 13)); // not transactional
        s.record(&t2);
        let mut t1_more = batch(1, 0, 2, 1, 14);
        t1_more.attributes = 0x10;
        s.record(&t1_more);
        assert_eq!(s.first_unstable_offset(), Some(10));
        let restored = producer_snapshot::decode(&producer_snapshot::encode(&s)).unwrap();
        assert_eq!(restored.first_unstable_offset(), Some(10));
        assert_eq!(s.complete_txn(1, 0), Some(10));
        assert_eq!(s.first_unstable_offset(), Some(12));
        assert_eq!(s.complete_txn(1, 0), None, "no transaction is open any more");
        // Idle producers with an open transaction are kept.
        s.expire(i64::MAX);
        assert_eq!(s.first_unstable_offset(), Some(12));
        assert!(s.entry(2).is_some() && s.entry(3).is_none());
    }
}
