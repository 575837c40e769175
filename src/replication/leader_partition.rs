//! A partition this broker leads while other replicas share it (Kafka's
//! Partition at the leader): its `LeaderState` fed by appends and by the
//! followers' fetches, the high watermark moved on the partition as the ISR
//! catches up, and the ISR changes to ask of the controller.

use super::leader_state::{AcksAll, LeaderState};
use crate::metadata::image::PartitionRegistration;
use crate::storage::partition::AppendObserver;
use crate::storage::{now_ms, Partition};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// An ISR change for the controller (Kafka's AlterPartition), made against
/// the partition epoch the leader knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

struct Inner {
    state: LeaderState,
    partition_epoch: i32,
    /// An ISR change is with the controller: no other is sent until the
    /// metadata answers it (a new partition epoch).
    change_pending: bool,
}

pub struct LeaderPartition {
    pub topic_id: Uuid,
    pub index: i32,
    pub leader_epoch: i32,
    inner: Mutex<Inner>,
}

impl LeaderPartition {
    /// Becomes leader in `leader_epoch` of a partition whose log is `partition`'s.
    pub fn new(
        topic_id: Uuid,
        partition: &Partition,
        node_id: i32,
        registration: &PartitionRegistration,
        max_lag_ms: i64,
    ) -> LeaderPartition {
        let (end, hw) = {
            let log = partition.log();
            (log.log_end_offset(), log.high_watermark())
        };
        let PartitionRegistration {
            replicas,
            isr,
            leader_epoch,
            partition_epoch,
            ..
        } = registration;
        let (leader_epoch, partition_epoch) = (*leader_epoch, *partition_epoch);
        let mut state = LeaderState::new(node_id, replicas, isr, end, hw, now_ms(), max_lag_ms);
        // Alone in the ISR, everything it has is committed now.
        let advanced = state.on_leader_append(end, now_ms());
        let leader = LeaderPartition {
            topic_id,
            index: partition.index(),
            leader_epoch,
            inner: Mutex::new(Inner {
                state,
                partition_epoch,
                change_pending: false,
            }),
        };
        if let Some(hw) = advanced {
            partition.set_high_watermark(hw);
        }
        leader
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn partition_epoch(&self) -> i32 {
        self.inner().partition_epoch
    }

    pub fn isr(&self) -> Vec<i32> {
        self.inner().state.isr().iter().copied().collect()
    }

    /// The controller committed a new ISR or replica set (a new partition
    /// epoch in the same leader epoch: a reassignment adds replicas so).
    pub fn committed(&self, partition: &Partition, registration: &PartitionRegistration) {
        let (isr, partition_epoch) = (&registration.isr, registration.partition_epoch);
        let end = partition.log().log_end_offset();
        let advanced = {
            let mut inner = self.inner();
            inner.state.set_replicas(&registration.replicas);
            inner.state.set_isr(isr);
            inner.partition_epoch = partition_epoch;
            inner.change_pending = false;
            // A smaller ISR may let the high watermark move.
            inner.state.on_leader_append(end, now_ms())
        };
        if let Some(hw) = advanced {
            partition.set_high_watermark(hw);
        }
    }

    /// An ISR change could not be made: another may be tried.
    pub fn isr_change_failed(&self) {
        self.inner().change_pending = false;
    }

    /// A follower fetched from `fetch_offset`. Moves the high watermark if
    /// it can, and returns the ISR change to ask for when the follower has
    /// caught up and is outside the ISR. Only replicas `eligible` says may
    /// join are asked for (KIP-841: the controller refuses fenced ones, and
    /// a leader that asked anyway would ask again at every fetch).
    pub fn follower_fetched(
        &self,
        partition: &Partition,
        follower: i32,
        fetch_offset: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        let end = partition.log().log_end_offset();
        let now = now_ms();
        let (advanced, change) = {
            let mut inner = self.inner();
            let advanced = inner.state.on_follower_fetch(follower, fetch_offset, end, now);
            let mut joining = inner.state.ready_to_join();
            joining.retain(|id| eligible(*id));
            let change = if joining.is_empty() || inner.change_pending {
                None
            } else {
                let mut isr: Vec<i32> = inner.state.isr().iter().copied().chain(joining).collect();
                isr.sort_unstable();
                Some(self.change(&mut inner, isr))
            };
            (advanced, change)
        };
        if let Some(hw) = advanced {
            partition.set_high_watermark(hw);
        }
        change
    }

    /// The ISR members that fell behind past `replica.lag.time.max.ms`: the
    /// change that drops them, if any (Kafka's maybeShrinkIsr).
    pub fn shrink(&self, partition: &Partition) -> Option<IsrChange> {
        let end = partition.log().log_end_offset();
        let mut inner = self.inner();
        if inner.change_pending {
            return None;
        }
        let out = inner.state.out_of_sync(end, now_ms());
        if out.is_empty() {
            return None;
        }
        let isr: Vec<i32> = inner.state.isr().iter().copied().filter(|r| !out.contains(r)).collect();
        Some(self.change(&mut inner, isr))
    }

    fn change(&self, inner: &mut Inner, new_isr: Vec<i32>) -> IsrChange {
        inner.change_pending = true;
        IsrChange {
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: self.leader_epoch,
            partition_epoch: inner.partition_epoch,
            new_isr,
        }
    }

    /// Whether an acks=all write ending at `last_offset` is done.
    pub fn acks_all(&self, last_offset: i64, min_isr: usize) -> AcksAll {
        self.inner().state.acks_all(last_offset, min_isr)
    }

    pub fn isr_len(&self) -> usize {
        self.inner().state.isr().len()
    }

    /// The ISR followers that hold `fetch_offset`, as (id, log end offset,
    /// ms since last caught up): where a consumer may be sent to read
    /// (Kafka's findPreferredReadReplica skips the others, which may lag).
    pub fn read_candidates(&self, fetch_offset: i64) -> Vec<(i32, i64, i64)> {
        let now = now_ms();
        let inner = self.inner();
        inner
            .state
            .isr()
            .iter()
            .filter_map(|id| inner.state.follower(*id).map(|f| (*id, f)))
            .filter(|(_, f)| f.log_end_offset >= fetch_offset)
            .map(|(id, f)| (id, f.log_end_offset, now - f.last_caught_up_ms))
            .collect()
    }
}

impl AppendObserver for LeaderPartition {
    fn appended(&self, partition: &Partition, log_end_offset: i64) {
        let advanced = self.inner().state.on_leader_append(log_end_offset, now_ms());
        if let Some(hw) = advanced {
            partition.set_high_watermark(hw);
        }
    }
}
