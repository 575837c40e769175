//! A partition leader's question to the transaction coordinator before it
//! writes a producer's first transactional batch (Kafka's
//! AddPartitionsToTxnManager, KIP-890): a transaction version 2 client's
//! partition is added to its transaction; an older client's is checked to
//! be in it. The coordinator is this node, or another broker asked with
//! AddPartitionsToTxn v5 (the broker-to-broker form). Answers come back per
//! partition, mapped as Kafka maps them for the writer's request version.

use super::records::TV_2;
use super::{MarkerTargets, TransactionCoordinator, TRANSACTION_STATE_TOPIC};
use crate::coordinator::partition_for;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::debug;

/// AddPartitionsToTxn v5: batched, with verifyOnly (KIP-890).
const ADD_PARTITIONS_VERSION: i16 = 5;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A TV2 add that meets the end of the previous transaction (its markers
/// still going out) is tried again for a moment, as Kafka does
/// (`add.partitions.to.txn.retry.backoff.ms`, `...backoff.max.ms`).
const CONCURRENT_RETRY_BACKOFF: Duration = Duration::from_millis(20);
const CONCURRENT_RETRY_MAX: Duration = Duration::from_millis(100);

/// What the writer's request version lets the leader do and answer
/// (Kafka's TransactionSupportedOperation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOperation {
    /// Produce v10 and older, TxnOffsetCommit v3 and older: check only, and
    /// "not added" is INVALID_TXN_STATE.
    DefaultError,
    /// Produce v11, TxnOffsetCommit v4: check only; the client knows
    /// TRANSACTION_ABORTABLE.
    GenericErrorSupported,
    /// Produce v12+, TxnOffsetCommit v5+ (transaction version 2): add.
    AddPartition,
}

impl TxnOperation {
    /// `tv2`: the cluster has finalized transaction version 2 (below it,
    /// new requests only check, as Kafka's).
    pub fn for_produce(version: i16, tv2: bool) -> TxnOperation {
        match version {
            12.. if tv2 => TxnOperation::AddPartition,
            11.. => TxnOperation::GenericErrorSupported,
            _ => TxnOperation::DefaultError,
        }
    }

    pub fn for_txn_offset_commit(version: i16, tv2: bool) -> TxnOperation {
        match version {
            5.. if tv2 => TxnOperation::AddPartition,
            4.. => TxnOperation::GenericErrorSupported,
            _ => TxnOperation::DefaultError,
        }
    }

    pub fn adds(self) -> bool {
        self == TxnOperation::AddPartition
    }
}

/// The coordinator's answer for one partition as the leader passes it on:
/// a fenced producer is told INVALID_PRODUCER_EPOCH, and an old client
/// INVALID_TXN_STATE for a partition not in its transaction.
pub fn mapped(code: i16, op: TxnOperation) -> i16 {
    if code == E::ProducerFenced.code() {
        E::InvalidProducerEpoch.code()
    } else if code == E::TransactionAbortable.code() && op == TxnOperation::DefaultError {
        E::InvalidTxnState.code()
    } else {
        code
    }
}

/// What a Produce answers for a failed check (Kafka's ReplicaManager):
/// coordinator trouble becomes NOT_ENOUGH_REPLICAS, which every client
/// retries without looking for a new leader.
pub fn for_produce(code: i16, op: TxnOperation) -> i16 {
    let unavailable = [
        E::NetworkException.code(),
        E::CoordinatorLoadInProgress.code(),
        E::CoordinatorNotAvailable.code(),
        E::NotCoordinator.code(),
    ];
    if unavailable.contains(&code) || (code == E::ConcurrentTransactions.code() && !op.adds()) {
        E::NotEnoughReplicas.code()
    } else {
        code
    }
}

impl TransactionCoordinator {
    /// Adds (`op` AddPartition) or checks `partitions` in the producer's
    /// transaction at its coordinator; an error code per partition, 0 where
    /// the write may go ahead.
    pub async fn add_or_verify(
        &self,
        targets: &MarkerTargets<'_>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        op: TxnOperation,
    ) -> Vec<i16> {
        let started = tokio::time::Instant::now();
        loop {
            let answer = self.ask(targets, id, producer_id, epoch, partitions, op).await;
            let concurrent = |a: &Result<Vec<i16>, i16>| match a {
                Err(code) => *code == E::ConcurrentTransactions.code(),
                Ok(codes) => codes.contains(&E::ConcurrentTransactions.code()),
            };
            if op.adds() && concurrent(&answer) && started.elapsed() < CONCURRENT_RETRY_MAX {
                tokio::time::sleep(CONCURRENT_RETRY_BACKOFF).await;
                continue;
            }
            let codes = answer.unwrap_or_else(|code| vec![code; partitions.len()]);
            return codes.into_iter().map(|code| mapped(code, op)).collect();
        }
    }

    /// One question to the coordinator, wherever it is.
    async fn ask(
        &self,
        targets: &MarkerTargets<'_>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        op: TxnOperation,
    ) -> Result<Vec<i16>, i16> {
        if id.is_empty() {
            return Err(E::InvalidRequest.code());
        }
        if self.hosts(id) {
            return if op.adds() {
                self.add_partitions(id, producer_id, epoch, partitions, TV_2)
                    .await
                    .map(|()| vec![0; partitions.len()])
            } else {
                self.verify_partitions(id, producer_id, epoch, partitions).await
            };
        }
        if !targets.clustered {
            return Err(E::CoordinatorNotAvailable.code());
        }
        remote(targets, id, producer_id, epoch, partitions, op).await
    }
}

/// AddPartitionsToTxn v5 to the leader of the id's `__transaction_state`
/// partition.
async fn remote(
    targets: &MarkerTargets<'_>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    op: TxnOperation,
) -> Result<Vec<i16>, i16> {
    let image = targets.metadata.image();
    let state_topic = image
        .topics
        .get(TRANSACTION_STATE_TOPIC)
        .ok_or(E::CoordinatorNotAvailable.code())?;
    let index = partition_for(id, state_topic.partitions.len()) as i32;
    let leader = state_topic
        .partition(index)
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or(E::CoordinatorNotAvailable.code())?;
    if leader == targets.node_id {
        // Led here but not loaded yet.
        return Err(E::CoordinatorLoadInProgress.code());
    }
    let address = targets
        .replicas
        .inter_broker_address(&image, leader)
        .ok_or(E::CoordinatorNotAvailable.code())?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                .with_partitions(ps)
        })
        .collect();
    let request =
        AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(!op.adds())
            .with_topics(topics)]);
    let client_id = format!("add-partitions-to-txn-{}", targets.node_id);
    let answer =
        targets
            .replicas
            .connections
            .send(&address, &client_id, &request, ADD_PARTITIONS_VERSION, REQUEST_TIMEOUT);
    let response = match answer.await {
        Ok(r) => r,
        Err(e) => {
            debug!(leader, error = %e, "AddPartitionsToTxn not answered");
            return Err(E::NetworkException.code());
        }
    };
    if response.error_code != 0 {
        // Kafka: a coordinator that refuses this broker leaves the write unverified.
        return Err(if response.error_code == E::ClusterAuthorizationFailed.code() {
            E::InvalidTxnState.code()
        } else {
            response.error_code
        });
    }
    let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for result in response
        .results_by_transaction
        .iter()
        .filter(|r| r.transactional_id.as_str() == id)
    {
        for t in &result.topic_results {
            for p in &t.results_by_partition {
                codes.insert((t.name.to_string(), p.partition_index), p.partition_error_code);
            }
        }
    }
    Ok(partitions.iter().map(|p| codes.get(p).copied().unwrap_or(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_kafka_maps_them_per_request_version() {
        let abortable = E::TransactionAbortable.code();
        assert_eq!(
            mapped(abortable, TxnOperation::for_produce(9, true)),
            E::InvalidTxnState.code()
        );
        assert_eq!(mapped(abortable, TxnOperation::for_produce(11, true)), abortable);
        assert_eq!(
            mapped(E::ProducerFenced.code(), TxnOperation::for_produce(13, true)),
            E::InvalidProducerEpoch.code()
        );
        let concurrent = E::ConcurrentTransactions.code();
        assert_eq!(
            for_produce(concurrent, TxnOperation::for_produce(10, true)),
            E::NotEnoughReplicas.code()
        );
        assert_eq!(for_produce(concurrent, TxnOperation::for_produce(12, true)), concurrent);
        assert_eq!(
            for_produce(E::NotCoordinator.code(), TxnOperation::for_produce(13, true)),
            E::NotEnoughReplicas.code()
        );
        assert_eq!(TxnOperation::for_txn_offset_commit(5, true), TxnOperation::AddPartition);
        assert_eq!(TxnOperation::for_txn_offset_commit(3, true), TxnOperation::DefaultError);
        // Transaction version 2 not finalized: new versions only check.
        assert_eq!(
            TxnOperation::for_produce(12, false),
            TxnOperation::GenericErrorSupported
        );
        assert_eq!(
            TxnOperation::for_txn_offset_commit(5, false),
            TxnOperation::GenericErrorSupported
        );
    }
}
