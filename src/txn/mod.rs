//! The transaction coordinator: transactional ids and their producer ids and
//! epochs, open transactions and the partitions they write, kept in
//! `__transaction_state` — each partition a `Transactions` shard run by the
//! coordinator runtime. Ending a transaction writes a commit or abort marker
//! into each of its partitions (through the group coordinator for
//! `__consumer_offsets`, whose offsets then take effect or not).

pub mod coordinator;
pub mod ending;
pub mod markers;
pub mod producer_ids;
pub mod records;
pub mod verification;

use crate::config::TransactionConfig;
use crate::coordinator::state_topic::{ensure_state_topic, new_state_topic};
use crate::coordinator::{partition_for, CoordinatorResult, CoordinatorRuntime};
use crate::group::GroupCoordinator;
use crate::metadata::Controller;
use crate::replication::ReplicaManager;
use crate::storage::now_ms;
use coordinator::{InitPlan, Transactions, TxnRecord};
use ending::{EndPlan, EndTxn};
use kafka_protocol::ResponseError as E;
use producer_ids::ProducerIdManager;
use records::{TransactionVersion, TxnMetadata, TxnState};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The coordinator epoch written into markers: one node, one epoch.
pub const COORDINATOR_EPOCH: i32 = 0;

/// Not a Kafka error code: an operation that needs a new producer id asks
/// for one to be reserved (outside the shard) and is run again.
const NEEDS_PRODUCER_ID: i16 = i16::MIN;

/// Where markers go: data partitions and the group coordinator's.
pub struct MarkerTargets<'a> {
    pub replicas: &'a ReplicaManager,
    pub groups: &'a GroupCoordinator,
    /// Where each partition's leader is (in a cluster, markers go there).
    pub metadata: &'a crate::metadata::MetadataCache,
    pub node_id: i32,
    pub clustered: bool,
}

/// A transaction as DescribeTransactions and ListTransactions show it.
pub struct TxnDescription {
    pub transactional_id: String,
    pub metadata: TxnMetadata,
}

fn record(id: &str, metadata: TxnMetadata) -> TxnRecord {
    TxnRecord {
        transactional_id: id.to_string(),
        metadata: Some(metadata),
    }
}

/// What InitProducerId does after its write.
enum InitStep {
    Done(i64, i16),
    AbortFirst(TxnMetadata),
}

pub struct TransactionCoordinator {
    runtime: CoordinatorRuntime<Transactions>,
    controller: Arc<Controller>,
    producer_ids: Arc<ProducerIdManager>,
    config: TransactionConfig,
}

impl TransactionCoordinator {
    pub fn new(
        config: &TransactionConfig,
        controller: Arc<Controller>,
        producer_ids: Arc<ProducerIdManager>,
    ) -> TransactionCoordinator {
        let max_timeout_ms = config.max_timeout_ms;
        TransactionCoordinator {
            runtime: CoordinatorRuntime::new(TRANSACTION_STATE_TOPIC, move || Transactions::new(max_timeout_ms)),
            controller,
            producer_ids,
            config: config.clone(),
        }
    }

    pub fn runtime(&self) -> &CoordinatorRuntime<Transactions> {
        &self.runtime
    }

    /// Creates `__transaction_state` if needed (FindCoordinator does, as in Kafka).
    pub async fn ensure_topic(&self) -> Result<(), i16> {
        ensure_state_topic(&self.runtime, &self.controller, || {
            let mut topic = new_state_topic(
                TRANSACTION_STATE_TOPIC,
                self.config.state_log_partitions,
                self.config.state_log_replication_factor,
                self.config.state_log_segment_bytes,
            );
            topic
                .configs
                .insert("min.insync.replicas".into(), self.config.state_log_min_isr.to_string());
            topic
        })
        .await
    }

    fn partition_of(&self, id: &str) -> Option<i32> {
        match self.runtime.partition_count() {
            0 => None,
            n => Some(partition_for(id, n) as i32),
        }
    }

    async fn write<T>(
        &self,
        id: &str,
        op: impl FnOnce(&mut Transactions) -> CoordinatorResult<T, TxnRecord>,
    ) -> Result<T, i16> {
        self.ensure_topic().await?;
        let index = self.partition_of(id).ok_or(E::CoordinatorNotAvailable.code())?;
        self.runtime.write(index, op).await
    }

    async fn read<T>(&self, id: &str, f: impl FnOnce(&Transactions) -> T) -> Option<T> {
        let index = self.partition_of(id)?;
        self.runtime.read(index, f).await.ok()
    }

    /// Runs `op` with a producer id source; if it needs a new id, one is
    /// reserved and `op` runs again with it.
    async fn write_with_ids<T>(
        &self,
        id: &str,
        op: impl Fn(&mut Transactions, &mut dyn FnMut() -> Result<i64, i16>) -> CoordinatorResult<Result<T, i16>, TxnRecord>,
    ) -> Result<T, i16> {
        let mut spare: Option<i64> = None;
        loop {
            let offered = spare;
            let result = self
                .write(id, |t| {
                    let mut source = || offered.ok_or(NEEDS_PRODUCER_ID);
                    op(t, &mut source)
                })
                .await?;
            match result {
                Err(NEEDS_PRODUCER_ID) if spare.is_none() => spare = Some(self.producer_ids.next().await?),
                other => return other,
            }
        }
    }

    /// InitProducerId for a transactional id: the producer id and a new
    /// epoch; an open transaction of an older producer is aborted first.
    pub async fn init_producer_id(
        &self,
        targets: &MarkerTargets<'_>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        loop {
            let step = self
                .write_with_ids(id, |t, new_id| {
                    match t.prepare_init(id, timeout_ms, expected, now_ms(), new_id) {
                        Err(code) => CoordinatorResult::answer(Err(code)),
                        Ok(InitPlan::Repeat(pid, epoch)) => CoordinatorResult::answer(Ok(InitStep::Done(pid, epoch))),
                        Ok(InitPlan::Ready(next)) => {
                            t.note_previous(id);
                            let answer = InitStep::Done(next.producer_id, next.producer_epoch);
                            CoordinatorResult::replayed(vec![record(id, next)], Ok(answer))
                        }
                        Ok(InitPlan::AbortFirst(prepare)) => CoordinatorResult::replayed(
                            vec![record(id, prepare.clone())],
                            Ok(InitStep::AbortFirst(prepare)),
                        ),
                    }
                })
                .await?;
            match step {
                InitStep::Done(pid, epoch) => return Ok((pid, epoch)),
                InitStep::AbortFirst(prepared) => {
                    info!(transactional_id = %id, "aborting the open transaction of a fenced producer");
                    self.finish(targets, id, &prepared).await?;
                }
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn, and the partitions a TV2
    /// client writes to (added by their leaders, `client_version` 2).
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        client_version: TransactionVersion,
    ) -> Result<(), i16> {
        self.write(id, |t| {
            match t.prepare_add_partitions(id, producer_id, epoch, partitions, client_version, now_ms()) {
                Ok(Some(next)) => CoordinatorResult::replayed(vec![record(id, next)], Ok(())),
                Ok(None) => CoordinatorResult::answer(Ok(())),
                Err(code) => CoordinatorResult::answer(Err(code)),
            }
        })
        .await?
    }

    /// EndTxn: writes the markers and completes the transaction; the
    /// producer id and epoch the client goes on with (new ones with TV2).
    pub async fn end_txn(
        &self,
        targets: &MarkerTargets<'_>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        client_version: TransactionVersion,
    ) -> Result<(i64, i16), i16> {
        let plan = self
            .write_with_ids(id, |t, new_id| {
                let end = EndTxn {
                    producer_id,
                    epoch,
                    commit,
                    client_version,
                };
                match t.prepare_end(id, end, now_ms(), new_id) {
                    Ok(EndPlan::Done(pid, epoch)) => CoordinatorResult::answer(Ok(EndPlan::Done(pid, epoch))),
                    Ok(EndPlan::Markers(next)) => {
                        CoordinatorResult::replayed(vec![record(id, next.clone())], Ok(EndPlan::Markers(next)))
                    }
                    Err(code) => CoordinatorResult::answer(Err(code)),
                }
            })
            .await?;
        match plan {
            EndPlan::Done(pid, epoch) => Ok((pid, epoch)),
            EndPlan::Markers(prepared) => self.finish(targets, id, &prepared).await,
        }
    }

    /// Writes the markers of a prepared transaction, then records it
    /// complete; the producer id and epoch after it.
    async fn finish(&self, targets: &MarkerTargets<'_>, id: &str, prepared: &TxnMetadata) -> Result<(i64, i16), i16> {
        let commit = prepared.state == TxnState::PrepareCommit;
        write_markers(targets, prepared, commit).await;
        self.write(id, |t| match t.prepare_complete(id, now_ms()) {
            Some(done) => {
                let answer = (done.producer_id, done.producer_epoch);
                CoordinatorResult::replayed(vec![record(id, done)], answer)
            }
            // Completed meanwhile (the timers): as it stands.
            None => CoordinatorResult::answer(t.get(id).map_or((prepared.producer_id, prepared.producer_epoch), |m| {
                (m.producer_id, m.producer_epoch)
            })),
        })
        .await
    }

    /// Whether this node coordinates the id (its `__transaction_state`
    /// partition is loaded here).
    pub fn hosts(&self, id: &str) -> bool {
        self.partition_of(id)
            .is_some_and(|index| self.runtime.loaded().contains(&index))
    }

    /// A partition leader's check that partitions are in the producer's
    /// transaction (see `Transactions::verify_partitions`).
    pub async fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let index = self.partition_of(id).ok_or(E::CoordinatorNotAvailable.code())?;
        self.runtime
            .read(index, |t| t.verify_partitions(id, producer_id, epoch, partitions))
            .await
            .map_err(|_| E::NotCoordinator.code())?
    }

    pub async fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.read(id, |t| t.get(id).cloned()).await.flatten()
    }

    pub async fn list(&self) -> Vec<TxnDescription> {
        let mut out = Vec::new();
        for index in self.runtime.loaded() {
            let listed = self
                .runtime
                .read(index, |t| {
                    t.all()
                        .map(|(id, m)| TxnDescription {
                            transactional_id: id.clone(),
                            metadata: m.clone(),
                        })
                        .collect::<Vec<_>>()
                })
                .await;
            out.extend(listed.unwrap_or_default());
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Completes transactions left half-way by the previous run (markers
    /// may be missing), then aborts timed-out transactions and forgets
    /// expired ids, until shutdown.
    pub async fn run_timers(&self, targets: &MarkerTargets<'_>, shutdown: &CancellationToken) {
        for txn in self.list().await {
            let m = &txn.metadata;
            if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                let id = &txn.transactional_id;
                info!(transactional_id = %id, state = m.state.name(), "completing a transaction");
                if let Err(code) = self.finish(targets, id, m).await {
                    warn!(transactional_id = %id, code, "could not complete a transaction");
                }
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
            self.abort_timed_out(targets).await;
            if last_expiry.elapsed() >= expire_every {
                last_expiry = std::time::Instant::now();
                self.forget_expired().await;
            }
        }
    }

    async fn abort_timed_out(&self, targets: &MarkerTargets<'_>) {
        for index in self.runtime.loaded() {
            let ids = self
                .runtime
                .read(index, |t| t.timed_out(now_ms()))
                .await
                .unwrap_or_default();
            for id in ids {
                let prepared = self
                    .write_with_ids(&id, |t, new_id| match t.prepare_timeout_abort(&id, now_ms(), new_id) {
                        Ok(Some(next)) => CoordinatorResult::replayed(vec![record(&id, next.clone())], Ok(Some(next))),
                        Ok(None) => CoordinatorResult::answer(Ok(None)),
                        // Also asks for a new producer id when the epoch is used up.
                        Err(code) => CoordinatorResult::answer(Err(code)),
                    })
                    .await;
                let Ok(Some(prepared)) = prepared else { continue };
                info!(transactional_id = %id, "aborting a transaction past its timeout");
                if let Err(code) = self.finish(targets, &id, &prepared).await {
                    warn!(transactional_id = %id, code, "could not abort a timed-out transaction");
                }
            }
        }
    }

    async fn forget_expired(&self) {
        let expiration_ms = self.config.id_expiration_ms;
        for index in self.runtime.loaded() {
            let forgotten = self
                .runtime
                .write(index, |t| {
                    let records: Vec<TxnRecord> = t
                        .expired(now_ms(), expiration_ms)
                        .into_iter()
                        .map(|id| TxnRecord {
                            transactional_id: id,
                            metadata: None,
                        })
                        .collect();
                    let count = records.len();
                    CoordinatorResult::replayed(records, count)
                })
                .await;
            if let Ok(n @ 1..) = forgotten {
                info!(
                    transactional_ids = n,
                    partition = index,
                    "forgot expired transactional ids"
                );
            }
        }
    }
}

/// Writes a marker to every partition of the transaction (see `markers`).
/// Offsets committed in the transaction take effect (or not) as their
/// `__consumer_offsets` partition gets its marker.
async fn write_markers(targets: &MarkerTargets<'_>, txn: &TxnMetadata, commit: bool) {
    let partitions: Vec<(String, i32)> = txn.partitions.iter().cloned().collect();
    let marker = markers::Marker {
        producer_id: txn.producer_id,
        producer_epoch: txn.producer_epoch,
        commit,
        transaction_version: txn.client_version,
    };
    markers::write_all(targets, &partitions, marker).await;
}
