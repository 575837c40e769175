//! One partition of `__share_group_state` (Kafka's ShareCoordinatorShard):
//! the delivery state of each share-partition whose key lives there, with
//! the epochs that fence stale writers. Every write is stored as a whole
//! snapshot, so that compaction keeps exactly the latest state of each key
//! (Kafka writes updates between snapshots and prunes the topic itself).

use super::batches::{combine, StateBatch};
use super::records::{Snapshot, StateKey, StateRecord, StateValue};
use crate::coordinator::{CoordinatorResult, Shard, TxnProducer};
use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use std::collections::HashMap;

/// Not yet given a start offset (Kafka's UNINITIALIZED_START_OFFSET).
pub const UNINITIALIZED: i64 = -1;

/// A write of a share-partition's state (WriteShareGroupState).
#[derive(Debug, Clone)]
pub struct StateWrite {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    /// -1: unchanged.
    pub start_offset: i64,
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
}

/// A share-partition's state as read (ReadShareGroupState); start offset
/// -1 and no batches while it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRead {
    pub state_epoch: i32,
    pub start_offset: i64,
    pub batches: Vec<StateBatch>,
}

/// ReadShareGroupStateSummary's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSummary {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub delivery_complete_count: i32,
}

pub struct ShareStates {
    states: HashMap<StateKey, Snapshot>,
}

impl Default for ShareStates {
    fn default() -> Self {
        Self::new()
    }
}

impl ShareStates {
    pub fn new() -> ShareStates {
        ShareStates { states: HashMap::new() }
    }

    fn snapshot(key: &StateKey, value: Snapshot) -> StateRecord {
        StateRecord {
            key: key.clone(),
            value: StateValue::Snapshot(value),
        }
    }

    /// InitializeShareGroupState: a start offset under a new state epoch;
    /// whatever was in flight is forgotten.
    pub fn initialize(
        &mut self,
        key: &StateKey,
        state_epoch: i32,
        start_offset: i64,
        now: i64,
    ) -> CoordinatorResult<i16, StateRecord> {
        let current = self.states.get(key);
        if current.is_some_and(|c| c.state_epoch > state_epoch) {
            return CoordinatorResult::answer(E::FencedStateEpoch.code());
        }
        let value = Snapshot {
            snapshot_epoch: current.map_or(0, |c| c.snapshot_epoch + 1),
            state_epoch,
            leader_epoch: 0,
            start_offset,
            delivery_complete_count: 0,
            create_timestamp: now,
            write_timestamp: now,
            batches: Vec::new(),
        };
        CoordinatorResult::replayed(vec![Self::snapshot(key, value)], 0)
    }

    /// WriteShareGroupState: batches combined with those written before.
    pub fn write(&mut self, key: &StateKey, write: StateWrite, now: i64) -> CoordinatorResult<i16, StateRecord> {
        let Some(c) = self.states.get(key) else {
            return CoordinatorResult::answer(E::InvalidRequest.code());
        };
        if c.leader_epoch > write.leader_epoch {
            return CoordinatorResult::answer(E::FencedLeaderEpoch.code());
        }
        if c.state_epoch > write.state_epoch {
            return CoordinatorResult::answer(E::FencedStateEpoch.code());
        }
        let current = Some(c);
        let keep = |new: i64, old: Option<i64>| if new == -1 { old.unwrap_or(-1) } else { new };
        let start_offset = keep(write.start_offset, current.map(|c| c.start_offset));
        let value = Snapshot {
            snapshot_epoch: current.map_or(0, |c| c.snapshot_epoch + 1),
            state_epoch: keep(write.state_epoch.into(), current.map(|c| c.state_epoch.into())) as i32,
            leader_epoch: keep(write.leader_epoch.into(), current.map(|c| c.leader_epoch.into())) as i32,
            start_offset,
            delivery_complete_count: write.delivery_complete_count,
            create_timestamp: current.map_or(now, |c| c.create_timestamp),
            write_timestamp: now,
            batches: combine(current.map_or(&[][..], |c| &c.batches), &write.batches, start_offset),
        };
        CoordinatorResult::replayed(vec![Self::snapshot(key, value)], 0)
    }

    /// ReadShareGroupState by a (new) leader: its epoch is recorded, so that
    /// an older leader can no longer write.
    pub fn read(
        &mut self,
        key: &StateKey,
        leader_epoch: i32,
        now: i64,
    ) -> CoordinatorResult<Result<StateRead, i16>, StateRecord> {
        let Some(current) = self.states.get(key) else {
            // Kafka: state is initialized (by the group coordinator) before use.
            return CoordinatorResult::answer(Err(E::InvalidRequest.code()));
        };
        if current.leader_epoch > leader_epoch {
            return CoordinatorResult::answer(Err(E::FencedLeaderEpoch.code()));
        }
        let read = StateRead {
            state_epoch: current.state_epoch,
            start_offset: current.start_offset,
            batches: current.batches.clone(),
        };
        if current.leader_epoch == leader_epoch {
            return CoordinatorResult::answer(Ok(read));
        }
        let value = Snapshot {
            snapshot_epoch: current.snapshot_epoch + 1,
            leader_epoch,
            write_timestamp: now,
            ..current.clone()
        };
        CoordinatorResult::replayed(vec![Self::snapshot(key, value)], Ok(read))
    }

    /// ReadShareGroupStateSummary (describing a group's offsets).
    pub fn summary(&self, key: &StateKey) -> StateSummary {
        self.states.get(key).map_or(
            StateSummary {
                state_epoch: 0,
                leader_epoch: 0,
                start_offset: UNINITIALIZED,
                delivery_complete_count: -1,
            },
            |s| StateSummary {
                state_epoch: s.state_epoch,
                leader_epoch: s.leader_epoch,
                start_offset: s.start_offset,
                delivery_complete_count: s.delivery_complete_count,
            },
        )
    }

    /// DeleteShareGroupState: the key's tombstone (nothing if it has no state).
    pub fn delete(&mut self, key: &StateKey) -> CoordinatorResult<i16, StateRecord> {
        if !self.states.contains_key(key) {
            return CoordinatorResult::answer(0);
        }
        let tombstone = StateRecord {
            key: key.clone(),
            value: StateValue::Deleted,
        };
        CoordinatorResult::replayed(vec![tombstone], 0)
    }

    /// The keys with state of a group (for describing it on one node).
    pub fn keys_of(&self, group: &str) -> Vec<StateKey> {
        self.states.keys().filter(|k| k.group == group).cloned().collect()
    }
}

impl Shard for ShareStates {
    type Record = StateRecord;

    fn replay(&mut self, record: &StateRecord, _producer: Option<TxnProducer>, _now: i64) {
        match &record.value {
            StateValue::Snapshot(s) => {
                self.states.insert(record.key.clone(), s.clone());
            }
            // Written by Kafka between snapshots: folded into the last one.
            StateValue::Update(u) => {
                if let Some(s) = self.states.get_mut(&record.key) {
                    if u.start_offset != -1 {
                        s.start_offset = u.start_offset;
                    }
                    if u.leader_epoch != -1 {
                        s.leader_epoch = u.leader_epoch;
                    }
                    s.delivery_complete_count = u.delivery_complete_count;
                    s.batches = combine(&s.batches, &u.batches, s.start_offset);
                }
            }
            StateValue::Deleted => {
                self.states.remove(&record.key);
            }
        }
    }

    fn replay_marker(&mut self, _producer_id: i64, _commit: bool, _now: i64) {}

    fn encode(record: &StateRecord) -> (Bytes, Option<Bytes>) {
        record.encode()
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<StateRecord, String> {
        StateRecord::decode(key, value).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::batches::{ACKNOWLEDGED, AVAILABLE};
    use super::*;
    use uuid::Uuid;

    fn key() -> StateKey {
        StateKey {
            group: "g".into(),
            topic_id: Uuid::from_u128(1),
            partition: 0,
        }
    }

    /// Runs an operation as the runtime does: records replayed when asked.
    fn run<T>(shard: &mut ShareStates, op: impl FnOnce(&mut ShareStates) -> CoordinatorResult<T, StateRecord>) -> T {
        let result = op(shard);
        if result.replay {
            for r in &result.records {
                shard.replay(r, None, 0);
            }
        }
        result.response
    }

    fn write(state_epoch: i32, leader_epoch: i32, start: i64, batches: Vec<StateBatch>) -> StateWrite {
        StateWrite {
            state_epoch,
            leader_epoch,
            start_offset: start,
            delivery_complete_count: -1,
            batches,
        }
    }

    #[test]
    fn writes_combine_and_a_new_leader_fences_the_old() {
        let mut s = ShareStates::new();
        let acked = StateBatch {
            first: 5,
            last: 9,
            state: ACKNOWLEDGED,
            count: 1,
        };
        let available = StateBatch {
            first: 10,
            last: 12,
            state: AVAILABLE,
            count: 1,
        };
        // Kafka's order: initialized first, then read and written.
        assert_eq!(run(&mut s, |s| s.read(&key(), 3, 0)), Err(E::InvalidRequest.code()));
        assert_eq!(
            run(&mut s, |s| s.write(&key(), write(0, 3, 5, vec![acked]), 1)),
            E::InvalidRequest.code()
        );
        assert_eq!(run(&mut s, |s| s.initialize(&key(), 0, UNINITIALIZED, 0)), 0);
        assert_eq!(run(&mut s, |s| s.write(&key(), write(0, 3, 5, vec![acked]), 1)), 0);
        assert_eq!(run(&mut s, |s| s.write(&key(), write(0, 3, -1, vec![available]), 2)), 0);
        let read = run(&mut s, |s| s.read(&key(), 4, 3));
        assert_eq!(
            read,
            Ok(StateRead {
                state_epoch: 0,
                start_offset: 5,
                batches: vec![acked, available]
            })
        );
        // Leader 3 is gone: its writes are refused; a new state epoch fences all before it.
        assert_eq!(
            run(&mut s, |s| s.write(&key(), write(0, 3, 10, vec![]), 4)),
            E::FencedLeaderEpoch.code()
        );
        assert_eq!(run(&mut s, |s| s.initialize(&key(), 1, 20, 5)), 0);
        assert_eq!(
            run(&mut s, |s| s.write(&key(), write(0, 4, 21, vec![]), 6)),
            E::FencedStateEpoch.code()
        );
        assert_eq!(s.summary(&key()).start_offset, 20);
        assert_eq!(run(&mut s, |s| s.delete(&key())), 0);
        assert_eq!(s.summary(&key()).start_offset, UNINITIALIZED);
    }
}
