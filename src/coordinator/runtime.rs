//! `CoordinatorRuntime`: the shards of one coordinator, one per partition
//! of its internal topic. Operations on a shard run one at a time: the
//! operation computes its records and answer, the records are appended to
//! the partition (the append does its file work off the async threads) and,
//! when the operation asks, replayed into the shard. If an append fails, the
//! shard is reloaded from its log: its state goes back to what is durable.

use super::loader::{read_partition, Loaded};
use super::state_topic::{encode_batch, TxnProducer};
use crate::storage::batch::{control_batch, ControlType};
use crate::storage::{now_ms, Partition};
use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tracing::{info, warn};

/// A coordinator's state machine for one partition.
pub trait Shard: Send + 'static {
    /// A decoded record of the coordinator's topic.
    type Record: Send + 'static;

    /// Applies a record: when loading, and after writes that ask for it.
    /// `producer` is set for a record written in a transaction.
    fn replay(&mut self, record: &Self::Record, producer: Option<TxnProducer>, now: i64);
    /// A producer's transaction ended in this partition.
    fn replay_marker(&mut self, producer_id: i64, commit: bool, now: i64);
    fn encode(record: &Self::Record) -> (Bytes, Option<Bytes>);
    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self::Record, String>;
}

/// What an operation did (Kafka's CoordinatorResult).
pub struct CoordinatorResult<T, R> {
    pub records: Vec<R>,
    pub response: T,
    /// True: the records change the state when replayed. False: the
    /// operation changed the state itself and the records only persist it.
    pub replay: bool,
    /// Set when the records belong to this producer's transaction.
    pub producer: Option<TxnProducer>,
}

impl<T, R> CoordinatorResult<T, R> {
    /// An answer with nothing to write.
    pub fn answer(response: T) -> Self {
        CoordinatorResult {
            records: Vec::new(),
            response,
            replay: false,
            producer: None,
        }
    }

    /// Records that change the state once written.
    pub fn replayed(records: Vec<R>, response: T) -> Self {
        CoordinatorResult {
            records,
            response,
            replay: true,
            producer: None,
        }
    }

    /// Records that persist a change the operation already made.
    pub fn persisted(records: Vec<R>, response: T) -> Self {
        CoordinatorResult {
            records,
            response,
            replay: false,
            producer: None,
        }
    }
}

struct Slot<S> {
    partition: Arc<Partition>,
    shard: tokio::sync::Mutex<S>,
}

pub struct CoordinatorRuntime<S: Shard> {
    topic: &'static str,
    new_shard: Arc<dyn Fn() -> S + Send + Sync>,
    slots: RwLock<HashMap<i32, Arc<Slot<S>>>>,
    /// Partitions of the topic (0 while it does not exist).
    partitions: AtomicUsize,
}

impl<S: Shard> CoordinatorRuntime<S> {
    pub fn new(topic: &'static str, new_shard: impl Fn() -> S + Send + Sync + 'static) -> Self {
        CoordinatorRuntime {
            topic,
            new_shard: Arc::new(new_shard),
            slots: RwLock::new(HashMap::new()),
            partitions: AtomicUsize::new(0),
        }
    }

    pub fn topic(&self) -> &'static str {
        self.topic
    }

    /// How many partitions the topic has (0: it does not exist yet).
    pub fn partition_count(&self) -> usize {
        self.partitions.load(Ordering::Acquire)
    }

    /// The partitions whose shards are loaded, in order.
    pub fn loaded(&self) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        out.sort_unstable();
        out
    }

    fn slot(&self, index: i32) -> Result<Arc<Slot<S>>, i16> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .cloned()
            .ok_or(E::NotCoordinator.code())
    }

    /// Builds a shard by replaying a partition (blocking).
    fn load_shard(new_shard: &(dyn Fn() -> S + Send + Sync), partition: &Partition) -> (S, usize) {
        let mut shard = new_shard();
        let now = now_ms();
        let mut count = 0usize;
        read_partition(partition, |item| match item {
            Loaded::Record { key, value, producer } => match S::decode(&key, value.as_deref()) {
                Ok(record) => {
                    count += 1;
                    shard.replay(&record, producer, now);
                }
                Err(e) => warn!(topic = partition.topic(), partition = partition.index(), error = %e,
                    "skipping an unreadable record"),
            },
            Loaded::Marker { producer_id, commit } => shard.replay_marker(producer_id, commit, now),
        });
        (shard, count)
    }

    /// Loads the shards of these partitions (the topic has `count` in all):
    /// each is built by replaying its partition, off the async threads.
    pub async fn load(&self, partitions: Vec<Arc<Partition>>, count: usize) {
        for partition in partitions {
            let index = partition.index();
            if self.slot(index).is_ok() {
                continue;
            }
            let new_shard = self.new_shard.clone();
            let p = partition.clone();
            let loaded = tokio::task::spawn_blocking(move || Self::load_shard(new_shard.as_ref(), &p)).await;
            let (shard, records) = match loaded {
                Ok(l) => l,
                Err(e) => {
                    warn!(topic = self.topic, partition = index, error = %e, "could not load");
                    continue;
                }
            };
            if records > 0 {
                info!(
                    topic = self.topic,
                    partition = index,
                    records,
                    "loaded coordinator partition"
                );
            }
            let slot = Arc::new(Slot {
                partition,
                shard: tokio::sync::Mutex::new(shard),
            });
            self.slots
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(index, slot);
        }
        self.partitions.store(count, Ordering::Release);
    }

    /// Loads synchronously (start-up, already off the async threads).
    pub fn load_blocking(&self, partitions: &[Arc<Partition>], count: usize) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        for partition in partitions {
            let (shard, records) = Self::load_shard(self.new_shard.as_ref(), partition);
            if records > 0 {
                info!(
                    topic = self.topic,
                    partition = partition.index(),
                    records,
                    "loaded coordinator partition"
                );
            }
            slots.insert(
                partition.index(),
                Arc::new(Slot {
                    partition: partition.clone(),
                    shard: tokio::sync::Mutex::new(shard),
                }),
            );
        }
        self.partitions.store(count, Ordering::Release);
    }

    /// Drops the shards of partitions not in `keep` (leadership moved away).
    pub fn unload_except(&self, keep: &[i32]) {
        self.slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|index, _| keep.contains(index));
    }

    /// Drops every shard (the topic is gone, or leadership moved away).
    pub fn unload_all(&self) {
        self.slots.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.partitions.store(0, Ordering::Release);
    }

    /// Reads a shard's state.
    pub async fn read<T>(&self, index: i32, f: impl FnOnce(&S) -> T) -> Result<T, i16> {
        let slot = self.slot(index)?;
        let shard = slot.shard.lock().await;
        Ok(f(&shard))
    }

    /// Runs an operation on a shard and writes what it produced.
    pub async fn write<T>(
        &self,
        index: i32,
        op: impl FnOnce(&mut S) -> CoordinatorResult<T, S::Record>,
    ) -> Result<T, i16> {
        let slot = self.slot(index)?;
        let mut shard = slot.shard.lock().await;
        let result = op(&mut shard);
        if result.records.is_empty() {
            return Ok(result.response);
        }
        let now = now_ms();
        let encoded: Vec<(Bytes, Option<Bytes>)> = result.records.iter().map(S::encode).collect();
        let batch = encode_batch(&encoded, now, result.producer);
        self.append_committed(&slot, &mut shard, index, batch).await?;
        if result.replay {
            for record in &result.records {
                shard.replay(record, result.producer, now);
            }
        }
        Ok(result.response)
    }

    /// Writes a transaction marker into a shard's partition and applies it.
    pub async fn write_marker(&self, index: i32, producer: TxnProducer, commit: bool) -> Result<(), i16> {
        let slot = self.slot(index)?;
        let mut shard = slot.shard.lock().await;
        let kind = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let marker = control_batch(producer.producer_id, producer.producer_epoch, 0, kind, now_ms());
        self.append_committed(&slot, &mut shard, index, marker).await?;
        shard.replay_marker(producer.producer_id, commit, now_ms());
        Ok(())
    }

    /// Appends a batch to a shard's partition and waits until it is
    /// committed; a failed append puts the shard back to what its log holds.
    async fn append_committed(
        &self,
        slot: &Arc<Slot<S>>,
        shard: &mut S,
        index: i32,
        batch: Vec<u8>,
    ) -> Result<(), i16> {
        match slot.partition.append(batch).await {
            Ok(appended) => self.committed(slot, index, appended.last_offset).await,
            Err(e) => {
                warn!(topic = self.topic, partition = index, error = %e, "could not write; reloading the partition");
                self.reload(slot, shard).await;
                Err(E::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Waits until a write is on every in-sync replica (at once on a single
    /// node), as Kafka's coordinators write with acks=all. Not in time (the
    /// replicas are gone, or this broker no longer leads), the write is not
    /// applied and the client retries.
    async fn committed(&self, slot: &Arc<Slot<S>>, index: i32, last_offset: i64) -> Result<(), i16> {
        if slot
            .partition
            .wait_for_high_watermark(last_offset + 1, COMMIT_TIMEOUT)
            .await
        {
            return Ok(());
        }
        warn!(
            topic = self.topic,
            partition = index,
            offset = last_offset,
            "a write did not reach the in-sync replicas in time"
        );
        Err(E::CoordinatorNotAvailable.code())
    }

    /// Puts a shard back to what its log holds.
    async fn reload(&self, slot: &Arc<Slot<S>>, shard: &mut S) {
        let (new_shard, partition) = (self.new_shard.clone(), slot.partition.clone());
        match tokio::task::spawn_blocking(move || Self::load_shard(new_shard.as_ref(), &partition)).await {
            Ok((fresh, _)) => *shard = fresh,
            Err(e) => warn!(topic = self.topic, error = %e, "could not reload"),
        }
    }
}

/// Kafka's `offsets.commit.timeout.ms` default.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
