//! The transaction coordinator: transactional ids and their producer ids and
//! epochs, open transactions and the partitions they write, kept durable in
//! `__transaction_state`. Ending a transaction writes a commit or abort
//! marker into each of its partitions (and tells the group coordinator, for
//! offsets committed in it).
//!
//! `coordinator` holds the state machine; this module persists its changes,
//! writes markers outside the lock, and runs the timeout and expiry timers.

pub mod coordinator;
pub mod records;

use crate::cluster::Cluster;
use crate::config::TransactionConfig;
use crate::group::GroupCoordinator;
use crate::state_topic::{partition_for, StateTopic};
use crate::storage::batch::{control_batch, ControlType};
use crate::storage::now_ms;
use bytes::Bytes;
use coordinator::{EndPlan, InitPlan, Transactions};
use kafka_protocol::ResponseError as E;
use records::{TxnMetadata, TxnState};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
const OFFSETS_TOPIC: &str = crate::group::store::OFFSETS_TOPIC;

/// The coordinator epoch written into markers: one node, one epoch.
const COORDINATOR_EPOCH: i32 = 0;

struct State {
    txns: Transactions,
    topic: Option<StateTopic>,
}

pub struct TransactionCoordinator {
    state: Mutex<State>,
    config: TransactionConfig,
}

/// A transaction as DescribeTransactions and ListTransactions show it.
pub struct TxnDescription {
    pub transactional_id: String,
    pub metadata: TxnMetadata,
}

impl TransactionCoordinator {
    /// Loads every transactional id from `__transaction_state`.
    pub fn open(cluster: &Cluster, config: &TransactionConfig) -> TransactionCoordinator {
        let mut txns = Transactions::new(config.max_timeout_ms);
        let topic = StateTopic::existing(cluster, TRANSACTION_STATE_TOPIC, config.state_log_segment_bytes);
        if let Some(t) = &topic {
            let mut latest: HashMap<String, TxnMetadata> = HashMap::new();
            t.scan(|_, r| {
                let Some(id) = r.key.as_deref().and_then(|k| records::decode_key(k).ok()) else {
                    return;
                };
                match r.value.as_deref().map(records::decode_value) {
                    Some(Ok(m)) => {
                        latest.insert(id, m);
                    }
                    None => {
                        latest.remove(&id);
                    }
                    Some(Err(e)) => warn!(transactional_id = %id, error = %e, "skipping an unreadable record"),
                }
            });
            info!(transactional_ids = latest.len(), "loaded transactions");
            txns.load(latest);
        }
        TransactionCoordinator {
            state: Mutex::new(State { txns, topic }),
            config: config.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `__transaction_state` if needed (FindCoordinator does, as in Kafka).
    pub fn ensure_topic(&self, cluster: &Cluster) -> Result<(), i16> {
        let mut state = self.lock();
        self.topic_of(&mut state, cluster).map(|_| ())
    }

    fn topic_of<'a>(&self, state: &'a mut State, cluster: &Cluster) -> Result<&'a mut StateTopic, i16> {
        if state.topic.is_none() {
            let created = StateTopic::create(
                cluster,
                TRANSACTION_STATE_TOPIC,
                self.config.state_log_partitions,
                self.config.state_log_segment_bytes,
            )
            .map_err(|e| {
                warn!(error = %e, "could not create __transaction_state");
                E::CoordinatorNotAvailable.code()
            })?;
            state.topic = Some(created);
        }
        state.topic.as_mut().ok_or(E::CoordinatorNotAvailable.code())
    }

    /// Writes the new metadata of `id` and applies it.
    fn persist(&self, state: &mut State, cluster: &Cluster, id: &str, metadata: TxnMetadata) -> Result<(), i16> {
        self.write_record(state, cluster, id, Some(records::encode_value(&metadata)))?;
        state.txns.apply(id, metadata);
        Ok(())
    }

    fn write_record(&self, state: &mut State, cluster: &Cluster, id: &str, value: Option<Bytes>) -> Result<(), i16> {
        let topic = self.topic_of(state, cluster)?;
        let index = partition_for(id, topic.partition_count());
        topic
            .append(index, &[(records::encode_key(id), value)], None)
            .map_err(|e| {
                warn!(transactional_id = %id, error = %e, "could not write to __transaction_state");
                E::CoordinatorNotAvailable.code()
            })?;
        Ok(())
    }

    /// Compacts `__transaction_state` partitions that grew past their threshold.
    fn maybe_rewrite(&self, state: &mut State, touched: &HashSet<usize>) {
        let State { txns, topic } = state;
        if let Some(topic) = topic.as_mut() {
            let count = topic.partition_count();
            topic.maybe_rewrite(touched, |index| live_records(txns, index, count));
        }
    }

    /// InitProducerId for a transactional id: the producer id and a new
    /// epoch; an open transaction of an older producer is aborted first.
    pub async fn init_producer_id(
        &self,
        cluster: &Cluster,
        groups: &GroupCoordinator,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        loop {
            let abort = {
                let mut state = self.lock();
                let mut new_id = || {
                    cluster.allocate_producer_id().map_err(|e| {
                        warn!(error = %e, "could not reserve producer ids");
                        E::KafkaStorageError.code()
                    })
                };
                match state
                    .txns
                    .prepare_init(id, timeout_ms, expected, now_ms(), &mut new_id)?
                {
                    InitPlan::Repeat(pid, epoch) => return Ok((pid, epoch)),
                    InitPlan::Ready(next) => {
                        let answer = (next.producer_id, next.producer_epoch);
                        state.txns.note_previous(id);
                        self.persist(&mut state, cluster, id, next)?;
                        self.compact(&mut state, id);
                        return Ok(answer);
                    }
                    InitPlan::AbortFirst(prepare) => {
                        self.persist(&mut state, cluster, id, prepare.clone())?;
                        prepare
                    }
                }
            };
            info!(transactional_id = %id, "aborting the open transaction of a fenced producer");
            self.finish(cluster, groups, id, &abort).await?;
        }
    }

    fn compact(&self, state: &mut State, id: &str) {
        if let Some(count) = state.topic.as_ref().map(StateTopic::partition_count) {
            self.maybe_rewrite(state, &HashSet::from([partition_for(id, count)]));
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub fn add_partitions(
        &self,
        cluster: &Cluster,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), i16> {
        let mut state = self.lock();
        if let Some(next) = state
            .txns
            .prepare_add_partitions(id, producer_id, epoch, partitions, now_ms())?
        {
            self.persist(&mut state, cluster, id, next)?;
            self.compact(&mut state, id);
        }
        Ok(())
    }

    /// EndTxn: writes the markers and completes the transaction.
    pub async fn end_txn(
        &self,
        cluster: &Cluster,
        groups: &GroupCoordinator,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), i16> {
        let prepared = {
            let mut state = self.lock();
            match state.txns.prepare_end(id, producer_id, epoch, commit, now_ms())? {
                EndPlan::Done => return Ok(()),
                EndPlan::Markers(next) => {
                    self.persist(&mut state, cluster, id, next.clone())?;
                    next
                }
            }
        };
        self.finish(cluster, groups, id, &prepared).await
    }

    /// Writes the markers of a prepared transaction, then records it complete.
    async fn finish(
        &self,
        cluster: &Cluster,
        groups: &GroupCoordinator,
        id: &str,
        prepared: &TxnMetadata,
    ) -> Result<(), i16> {
        let kind = if prepared.state == TxnState::PrepareCommit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        write_markers(cluster, groups, prepared, kind).await;
        let mut state = self.lock();
        if let Some(done) = state.txns.prepare_complete(id, now_ms()) {
            self.persist(&mut state, cluster, id, done)?;
            self.compact(&mut state, id);
        }
        Ok(())
    }

    /// Whether a transactional Produce may write to this partition.
    pub fn verify(&self, id: &str, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> Result<(), i16> {
        self.lock().txns.verify(id, producer_id, epoch, topic, partition)
    }

    pub fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.lock().txns.get(id).cloned()
    }

    pub fn list(&self) -> Vec<TxnDescription> {
        let state = self.lock();
        let mut out: Vec<TxnDescription> = state
            .txns
            .all()
            .map(|(id, m)| TxnDescription {
                transactional_id: id.clone(),
                metadata: m.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Completes transactions left half-way by the previous run (markers
    /// may be missing), then aborts timed-out transactions and forgets
    /// expired ids, until shutdown.
    pub async fn run_timers(&self, cluster: &Cluster, groups: &GroupCoordinator, shutdown: &CancellationToken) {
        let unfinished: Vec<(String, TxnMetadata)> = {
            let state = self.lock();
            state
                .txns
                .all()
                .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect()
        };
        for (id, prepared) in unfinished {
            info!(transactional_id = %id, state = prepared.state.name(), "completing a transaction");
            if let Err(code) = self.finish(cluster, groups, &id, &prepared).await {
                warn!(transactional_id = %id, code, "could not complete a transaction");
            }
        }
        let abort_every = Duration::from_millis(self.config.abort_timed_out_interval_ms);
        let expire_every = Duration::from_millis(self.config.remove_expired_interval_ms);
        let mut last_expiry = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(abort_every) => {}
            }
            self.abort_timed_out(cluster, groups).await;
            if last_expiry.elapsed() >= expire_every {
                last_expiry = std::time::Instant::now();
                self.forget_expired(cluster);
            }
        }
    }

    async fn abort_timed_out(&self, cluster: &Cluster, groups: &GroupCoordinator) {
        let ids = self.lock().txns.timed_out(now_ms());
        for id in ids {
            let prepared = {
                let mut state = self.lock();
                let mut new_id = || cluster.allocate_producer_id().map_err(|_| E::KafkaStorageError.code());
                let Some(next) = state.txns.prepare_timeout_abort(&id, now_ms(), &mut new_id) else {
                    continue;
                };
                if self.persist(&mut state, cluster, &id, next.clone()).is_err() {
                    continue;
                }
                next
            };
            info!(transactional_id = %id, "aborting a transaction past its timeout");
            if let Err(code) = self.finish(cluster, groups, &id, &prepared).await {
                warn!(transactional_id = %id, code, "could not abort a timed-out transaction");
            }
        }
    }

    fn forget_expired(&self, cluster: &Cluster) {
        let mut state = self.lock();
        for id in state.txns.expired(now_ms(), self.config.id_expiration_ms) {
            if self.write_record(&mut state, cluster, &id, None).is_ok() {
                state.txns.remove(&id);
                info!(transactional_id = %id, "forgot an expired transactional id");
            }
        }
    }
}

/// The records of one `__transaction_state` partition, for rewriting it.
fn live_records(txns: &Transactions, index: usize, partitions: usize) -> Vec<(Bytes, Bytes)> {
    txns.all()
        .filter(|(id, _)| partition_for(id, partitions) == index)
        .map(|(id, m)| (records::encode_key(id), records::encode_value(m)))
        .collect()
}

/// Appends a marker to every partition of the transaction. A partition
/// deleted meanwhile is skipped. Offsets committed in the transaction take
/// effect (or not) once their `__consumer_offsets` marker is in.
async fn write_markers(cluster: &Cluster, groups: &GroupCoordinator, txn: &TxnMetadata, kind: ControlType) {
    let mut offsets_written = false;
    for (topic, index) in &txn.partitions {
        let Some(partition) = cluster.topic(topic).and_then(|t| t.partition(*index).cloned()) else {
            continue;
        };
        let marker = control_batch(txn.producer_id, txn.producer_epoch, COORDINATOR_EPOCH, kind, now_ms());
        match partition.append(marker).await {
            Ok(_) => offsets_written |= topic == OFFSETS_TOPIC,
            Err(e) => warn!(%topic, partition = index, error = %e, "could not write a transaction marker"),
        }
    }
    if offsets_written || txn.partitions.iter().any(|(t, _)| t == OFFSETS_TOPIC) {
        groups.complete_txn(txn.producer_id, kind == ControlType::Commit);
    }
}
