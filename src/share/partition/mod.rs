//! One share-partition (KIP-932): for one share group and one partition,
//! which records are out with a consumer (acquired, under a time lock), which
//! are done (acknowledged or archived), and how often each was delivered.
//! Kafka's SharePartition. State is kept per span of offsets, split only
//! where members acknowledge part of what they were given, so a batch of 500
//! records is one entry until someone treats its records differently.

mod persisted;

pub use persisted::PersistedState;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

/// Kafka's acknowledge types (ShareFetch / ShareAcknowledge).
pub const GAP: i8 = 0;
pub const ACCEPT: i8 = 1;
pub const RELEASE: i8 = 2;
pub const REJECT: i8 = 3;
pub const RENEW: i8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    last: i64,
    state: RecordState,
    delivery_count: i16,
    member: Option<Arc<str>>,
    lock_deadline: i64,
}

impl Span {
    fn available(last: i64, delivery_count: i16) -> Span {
        Span {
            last,
            state: RecordState::Available,
            delivery_count,
            member: None,
            lock_deadline: 0,
        }
    }
}

/// Records given to a member, as ShareFetch reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRange {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

/// A batch as read from the log: its offsets, and whether it is a control
/// batch (transaction markers are never delivered).
#[derive(Debug, Clone, Copy)]
pub struct LogBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub is_control: bool,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// Not records this member holds (Kafka's INVALID_RECORD_STATE).
    InvalidRecordState,
    /// Malformed: types that do not fit the range, an unknown type.
    InvalidRequest,
}

/// The limits a share group sets for its records.
#[derive(Debug, Clone, Copy)]
pub struct ShareLimits {
    pub delivery_count_limit: i16,
    pub record_lock_ms: i64,
    /// share.partition.max.record.locks: records in flight at most.
    pub max_in_flight: i64,
}

#[derive(Debug)]
pub struct SharePartition {
    /// Kafka's SPSO: every record below is done with.
    start_offset: i64,
    /// One past the last record any fetch has looked at (SPEO + 1).
    end_offset: i64,
    /// Covers [start_offset, end_offset) without gaps, keyed by first offset.
    spans: BTreeMap<i64, Span>,
    /// Whether any acknowledgement has been taken: Kafka persists (and
    /// describes) a share-partition's state only from then on.
    acknowledged: bool,
    /// Changed since its state was last written.
    dirty: bool,
    /// The epochs its state is written under (fencing older writers).
    pub state_epoch: i32,
    pub leader_epoch: i32,
}

impl SharePartition {
    pub fn new(start_offset: i64) -> SharePartition {
        SharePartition {
            start_offset,
            end_offset: start_offset,
            spans: BTreeMap::new(),
            acknowledged: false,
            dirty: false,
            state_epoch: 0,
            leader_epoch: -1,
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether the state has been written (see `acknowledged`).
    pub fn is_acknowledged(&self) -> bool {
        self.acknowledged
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Records fetched but not yet done with (acknowledged or archived).
    pub fn in_flight(&self) -> i64 {
        self.count(|s| matches!(s, RecordState::Available | RecordState::Acquired))
    }

    /// Records done with above the start offset (for the lag Kafka reports).
    pub fn done_above_start(&self) -> i64 {
        self.count(|s| matches!(s, RecordState::Acknowledged | RecordState::Archived))
    }

    fn count(&self, counted: impl Fn(RecordState) -> bool) -> i64 {
        self.spans
            .iter()
            .filter(|(_, s)| counted(s.state))
            .map(|(first, s)| s.last - first + 1)
            .sum()
    }

    /// Where the next fetch reads from: the first record that may be given out.
    pub fn next_fetch_offset(&self) -> i64 {
        self.spans
            .iter()
            .find(|(_, s)| s.state == RecordState::Available)
            .map_or(self.end_offset, |(first, _)| *first)
    }

    /// The earliest time a lock ends, if any record is acquired.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.spans
            .values()
            .filter(|s| s.state == RecordState::Acquired)
            .map(|s| s.lock_deadline)
            .min()
    }

    /// The log lost records below `log_start` (retention, DeleteRecords):
    /// they can no longer be delivered.
    pub fn move_start_to(&mut self, log_start: i64) {
        if log_start <= self.start_offset {
            return;
        }
        self.split_at(log_start);
        self.spans.retain(|first, _| *first >= log_start);
        self.start_offset = log_start;
        self.end_offset = self.end_offset.max(log_start);
        self.dirty |= self.acknowledged;
    }

    /// Sets the start offset anew (AlterShareGroupOffsets, an empty group):
    /// everything in flight is forgotten.
    pub fn reset_to(&mut self, offset: i64) {
        self.acknowledged = true;
        self.dirty = true;
        self.spans.clear();
        self.start_offset = offset;
        self.end_offset = offset;
    }

    /// Acquired records whose lock has run out become available again, or
    /// archived once delivered as often as allowed. True if any changed.
    pub fn expire_locks(&mut self, now: i64, limits: &ShareLimits) -> bool {
        let mut changed = false;
        for span in self.spans.values_mut() {
            if span.state == RecordState::Acquired && span.lock_deadline <= now {
                release(span, limits);
                changed = true;
            }
        }
        if changed {
            self.dirty |= self.acknowledged;
            self.tidy();
        }
        changed
    }

    /// Gives `member` the available records of `batches` (read from the log
    /// at `next_fetch_offset`), up to about `max_records`: whole batches, as
    /// Kafka aligns acquisition to batch boundaries.
    pub fn acquire(
        &mut self,
        member: &str,
        batches: &[LogBatch],
        max_records: i64,
        limits: &ShareLimits,
        now: i64,
    ) -> Vec<AcquiredRange> {
        let member: Arc<str> = Arc::from(member);
        let deadline = now + limits.record_lock_ms;
        let mut out: Vec<AcquiredRange> = Vec::new();
        let mut count = 0i64;
        for batch in batches {
            if count >= max_records {
                break;
            }
            let first = batch.base_offset.max(self.start_offset);
            if batch.last_offset < first {
                continue;
            }
            // Records seen before: only the available ones are given out.
            let seen_last = batch.last_offset.min(self.end_offset - 1);
            if first <= seen_last {
                self.split_at(first);
                self.split_at(seen_last + 1);
                let keys: Vec<i64> = self.spans.range(first..=seen_last).map(|(k, _)| *k).collect();
                for k in keys {
                    let Some(span) = self.spans.get_mut(&k) else {
                        continue;
                    };
                    if span.state != RecordState::Available {
                        continue;
                    }
                    if batch.is_control {
                        span.state = RecordState::Archived;
                        continue;
                    }
                    span.state = RecordState::Acquired;
                    span.delivery_count = span.delivery_count.saturating_add(1);
                    span.member = Some(member.clone());
                    span.lock_deadline = deadline;
                    count += take(&mut out, k, span.last, span.delivery_count);
                }
            }
            // Records never seen: acquired at their first delivery, within the
            // limit of records in flight.
            let new_first = first.max(self.end_offset);
            if new_first > batch.last_offset {
                continue;
            }
            if batch.is_control {
                self.spans.insert(
                    new_first,
                    Span {
                        last: batch.last_offset,
                        state: RecordState::Archived,
                        delivery_count: 0,
                        member: None,
                        lock_deadline: 0,
                    },
                );
                self.end_offset = batch.last_offset + 1;
                continue;
            }
            if self.in_flight() >= limits.max_in_flight {
                break;
            }
            self.spans.insert(
                new_first,
                Span {
                    last: batch.last_offset,
                    state: RecordState::Acquired,
                    delivery_count: 1,
                    member: Some(member.clone()),
                    lock_deadline: deadline,
                },
            );
            self.end_offset = batch.last_offset + 1;
            count += take(&mut out, new_first, batch.last_offset, 1);
        }
        self.tidy();
        out
    }

    /// Applies one acknowledgement batch of `member`: one type for the whole
    /// range, or one per offset. All of it or none.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        limits: &ShareLimits,
        now: i64,
    ) -> Result<(), AckError> {
        let width = last - first + 1;
        if width <= 0 || types.is_empty() || (types.len() != 1 && types.len() as i64 != width) {
            return Err(AckError::InvalidRequest);
        }
        if types.iter().any(|t| !(GAP..=RENEW).contains(t)) {
            return Err(AckError::InvalidRequest);
        }
        if first < self.start_offset || last >= self.end_offset {
            return Err(AckError::InvalidRecordState);
        }
        let containing = self.spans.range(..=first).next_back().filter(|(_, s)| s.last >= first);
        for (_, span) in containing.into_iter().chain(self.spans.range(first + 1..=last)) {
            if span.state != RecordState::Acquired || span.member.as_deref() != Some(member) {
                return Err(AckError::InvalidRecordState);
            }
        }
        let type_at = |offset: i64| {
            if types.len() == 1 {
                types[0]
            } else {
                types[(offset - first) as usize]
            }
        };
        // Runs of one type, each applied to its own spans.
        let mut run_start = first;
        while run_start <= last {
            let kind = type_at(run_start);
            let mut run_end = run_start;
            while run_end < last && type_at(run_end + 1) == kind {
                run_end += 1;
            }
            self.split_at(run_start);
            self.split_at(run_end + 1);
            for (_, span) in self.spans.range_mut(run_start..=run_end) {
                match kind {
                    ACCEPT => span.state = RecordState::Acknowledged,
                    GAP | REJECT => span.state = RecordState::Archived,
                    RELEASE => release(span, limits),
                    _ => span.lock_deadline = now + limits.record_lock_ms,
                }
                if span.state != RecordState::Acquired {
                    span.member = None;
                }
            }
            run_start = run_end + 1;
        }
        self.acknowledged = true;
        self.dirty = true;
        self.tidy();
        Ok(())
    }

    /// Everything `member` holds goes back (it left, or closed its session).
    pub fn release_member(&mut self, member: &str, limits: &ShareLimits) -> bool {
        let mut changed = false;
        for span in self.spans.values_mut() {
            if span.state == RecordState::Acquired && span.member.as_deref() == Some(member) {
                release(span, limits);
                changed = true;
            }
        }
        if changed {
            self.dirty |= self.acknowledged;
            self.tidy();
        }
        changed
    }

    /// Makes `offset` the first of a span (if it falls inside one).
    fn split_at(&mut self, offset: i64) {
        let Some((&first, span)) = self.spans.range(..offset).next_back() else {
            return;
        };
        if span.last < offset {
            return;
        }
        let mut tail = span.clone();
        if let Some(head) = self.spans.get_mut(&first) {
            head.last = offset - 1;
        }
        tail.last = tail.last.max(offset);
        self.spans.insert(offset, tail);
    }

    /// Moves the start past records done with, and joins neighbours alike.
    fn tidy(&mut self) {
        while let Some(entry) = self.spans.first_entry() {
            if !matches!(entry.get().state, RecordState::Acknowledged | RecordState::Archived) {
                break;
            }
            let (_, span) = entry.remove_entry();
            self.start_offset = span.last + 1;
        }
        if self.spans.is_empty() {
            self.start_offset = self.end_offset.max(self.start_offset);
            return;
        }
        let mut merged: BTreeMap<i64, Span> = BTreeMap::new();
        for (first, span) in std::mem::take(&mut self.spans) {
            if let Some((_, prev)) = merged.iter_mut().next_back() {
                if prev.last + 1 == first
                    && prev.state == span.state
                    && prev.delivery_count == span.delivery_count
                    && prev.member == span.member
                    && prev.lock_deadline == span.lock_deadline
                {
                    prev.last = span.last;
                    continue;
                }
            }
            merged.insert(first, span);
        }
        self.spans = merged;
    }
}

/// Adds acquired records to a response's list, joining neighbours; how many.
fn take(out: &mut Vec<AcquiredRange>, first: i64, last: i64, delivery_count: i16) -> i64 {
    match out.last_mut() {
        Some(prev) if prev.last + 1 == first && prev.delivery_count == delivery_count => prev.last = last,
        _ => out.push(AcquiredRange {
            first,
            last,
            delivery_count,
        }),
    }
    last - first + 1
}

/// An acquired span given back: available again, or archived once it has
/// been delivered as often as the group allows.
fn release(span: &mut Span, limits: &ShareLimits) {
    span.state = if span.delivery_count >= limits.delivery_count_limit {
        RecordState::Archived
    } else {
        RecordState::Available
    };
    span.member = None;
    span.lock_deadline = 0;
}

#[cfg(test)]
mod tests;
