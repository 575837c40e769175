//! A share-partition's state as the share coordinator keeps it: written
//! when acknowledgements change it, read back when a leader takes over.

use super::{RecordState, SharePartition, Span};
use crate::share::state::batches::{self, StateBatch};

/// A share-partition's state as written to the share coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedState {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
}

impl SharePartition {
    /// A share-partition as its written state left it: records that were
    /// out with a consumer are available again, with their delivery counts.
    pub fn from_state(
        start_offset: i64,
        batches: &[StateBatch],
        state_epoch: i32,
        leader_epoch: i32,
    ) -> SharePartition {
        let mut p = SharePartition::new(start_offset);
        p.acknowledged = true;
        p.state_epoch = state_epoch;
        p.leader_epoch = leader_epoch;
        let mut next = start_offset;
        for b in batches {
            let first = b.first.max(next);
            if b.last < first {
                continue;
            }
            if first > next {
                // Records between written batches were never delivered.
                p.spans.insert(next, Span::available(first - 1, 0));
            }
            let state = match b.state {
                batches::ACKNOWLEDGED => RecordState::Acknowledged,
                batches::ARCHIVED => RecordState::Archived,
                _ => RecordState::Available,
            };
            p.spans.insert(
                first,
                Span {
                    state,
                    ..Span::available(b.last, b.count.max(0))
                },
            );
            next = b.last + 1;
        }
        p.end_offset = next;
        p.tidy();
        p
    }

    /// The state to write, if it changed since last written (then it counts
    /// as written: a failed write must call `mark_dirty`).
    pub fn take_changes(&mut self) -> Option<PersistedState> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let batches = self
            .spans
            .iter()
            .filter(|(_, s)| s.delivery_count > 0 || s.state != RecordState::Available)
            .map(|(first, s)| StateBatch {
                first: *first,
                last: s.last,
                state: match s.state {
                    RecordState::Acknowledged => batches::ACKNOWLEDGED,
                    RecordState::Archived => batches::ARCHIVED,
                    // Records out with a consumer come back if this leader goes.
                    RecordState::Available | RecordState::Acquired => batches::AVAILABLE,
                },
                count: s.delivery_count,
            })
            .collect();
        Some(PersistedState {
            state_epoch: self.state_epoch,
            leader_epoch: self.leader_epoch,
            start_offset: self.start_offset,
            delivery_complete_count: self.done_above_start().min(i32::MAX as i64) as i32,
            batches,
        })
    }
}
