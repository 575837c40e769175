//! Writing a transaction's markers (Kafka's TransactionMarkerChannelManager):
//! each partition's marker goes to its leader — appended here when this
//! broker leads it (through the group coordinator for `__consumer_offsets`),
//! else sent in a WriteTxnMarkers request to the leader, grouped per
//! leader. A marker counts once it is committed (on every in-sync replica);
//! partitions whose leader moved or could not be reached are tried again
//! until every one is done, deleted, or `MARKER_DEADLINE` passes.

use super::{MarkerTargets, COORDINATOR_EPOCH};
use crate::coordinator::TxnProducer;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::image::MetadataImage;
use crate::storage::batch::{control_batch, ControlType};
use crate::storage::{now_ms, Partition};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest,
};
use kafka_protocol::messages::{ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// How long markers are retried before the coordinator gives up on them.
const MARKER_DEADLINE: Duration = Duration::from_secs(120);
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long one marker may wait for its in-sync replicas.
const MARKER_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// WriteTxnMarkers v2 (KIP-1228: the marker names its transaction version),
/// as Kafka 4.4's coordinator sends it.
const WRITE_TXN_MARKERS_VERSION: i16 = 2;

/// One marker to write: the producer, commit or abort, and the transaction
/// version it ends (with 2 its epoch is already the bumped one).
#[derive(Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub transaction_version: i16,
}

impl Marker {
    fn batch(&self) -> Vec<u8> {
        let kind = if self.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        control_batch(self.producer_id, self.producer_epoch, COORDINATOR_EPOCH, kind, now_ms())
    }
}

/// Appends a marker batch to a partition led here and waits until it is
/// committed; an error code if it is not.
pub async fn append_committed(partition: &Arc<Partition>, batch: Vec<u8>) -> Result<(), i16> {
    let appended = partition
        .append(batch)
        .await
        .map_err(|e| crate::api::log_error_code(&e))?;
    if partition
        .wait_for_high_watermark(appended.last_offset + 1, MARKER_COMMIT_TIMEOUT)
        .await
    {
        Ok(())
    } else {
        Err(kafka_protocol::ResponseError::NotEnoughReplicas.code())
    }
}

/// Whether a transaction version 2 marker would end a transaction it does
/// not belong to (KIP-1228): its epoch is the bumped one, so a producer
/// already writing with that epoch has begun the next transaction. Kafka
/// refuses it (INVALID_PRODUCER_EPOCH); the same marker with no
/// transaction open is a retry, written again. Older epochs the log itself
/// refuses.
pub fn is_stale_v2_marker(
    partition: &Partition,
    producer_id: i64,
    producer_epoch: i16,
    transaction_version: i16,
) -> bool {
    if transaction_version < 2 || producer_epoch == i16::MAX {
        return false;
    }
    partition
        .log()
        .producers()
        .entry(producer_id)
        .is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some())
}

/// Writes `marker` to every partition of `partitions`.
pub async fn write_all(targets: &MarkerTargets<'_>, partitions: &[(String, i32)], marker: Marker) {
    let deadline = tokio::time::Instant::now() + MARKER_DEADLINE;
    let mut pending: Vec<(String, i32)> = partitions.to_vec();
    loop {
        let image = targets.metadata.image();
        // A partition deleted meanwhile needs no marker.
        pending.retain(|(t, i)| image.topics.get(t).is_some_and(|t| t.partition(*i).is_some()) || !targets.clustered);
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut failed = Vec::new();
        for (topic, index) in pending {
            let leader = image
                .topics
                .get(&topic)
                .and_then(|t| t.partition(index))
                .map(|p| p.leader);
            match leader {
                Some(l) if targets.clustered && l != targets.node_id => {
                    remote.entry(l).or_default().push((topic, index))
                }
                _ => {
                    if let Err(code) = write_here(targets, &topic, index, &marker).await {
                        debug!(%topic, partition = index, code, "transaction marker not written yet");
                        failed.push((topic, index));
                    }
                }
            }
        }
        for (leader, partitions) in remote {
            failed.extend(send(targets, &image, leader, partitions, &marker).await);
        }
        if failed.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(partitions = ?failed, producer_id = marker.producer_id, "transaction markers not written; giving up");
            return;
        }
        pending = failed;
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// A marker for a partition this broker leads (or, on a single node, hosts).
async fn write_here(targets: &MarkerTargets<'_>, topic: &str, index: i32, marker: &Marker) -> Result<(), i16> {
    let producer = TxnProducer {
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
    };
    if topic == OFFSETS_TOPIC {
        return targets
            .groups
            .complete_transaction(index, producer, marker.commit)
            .await;
    }
    let Some(partition) = targets.replicas.partition(topic, index) else {
        // Not hosted (deleted, or a single node's failed disk): nothing to write.
        return if targets.clustered {
            Err(kafka_protocol::ResponseError::NotLeaderOrFollower.code())
        } else {
            Ok(())
        };
    };
    if is_stale_v2_marker(
        &partition,
        marker.producer_id,
        marker.producer_epoch,
        marker.transaction_version,
    ) {
        warn!(%topic, partition = index, producer_id = marker.producer_id, "a stale transaction marker not written");
        return Ok(());
    }
    append_committed(&partition, marker.batch()).await
}

/// WriteTxnMarkers to `leader`; returns the partitions still without a marker.
async fn send(
    targets: &MarkerTargets<'_>,
    image: &MetadataImage,
    leader: i32,
    partitions: Vec<(String, i32)>,
    marker: &Marker,
) -> Vec<(String, i32)> {
    let Some(address) = targets.replicas.inter_broker_address(image, leader) else {
        return partitions;
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, i) in &partitions {
        by_topic.entry(t).or_default().push(*i);
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(COORDINATOR_EPOCH)
        .with_transaction_version(marker.transaction_version.clamp(0, i8::MAX as i16) as i8)
        .with_topics(topics)]);
    let client_id = format!("txn-markers-{}", targets.node_id);
    let answer = targets.replicas.connections.send(
        &address,
        &client_id,
        &request,
        WRITE_TXN_MARKERS_VERSION,
        REQUEST_TIMEOUT,
    );
    let response = match answer.await {
        Ok(r) => r,
        Err(e) => {
            debug!(leader, error = %e, "WriteTxnMarkers not answered");
            return partitions;
        }
    };
    let mut failed = Vec::new();
    for result in response.markers {
        for t in result.topics {
            for p in t.partitions {
                if p.error_code == kafka_protocol::ResponseError::InvalidProducerEpoch.code() {
                    // The producer has moved on (a stale marker): Kafka stops there too.
                    warn!(topic = %t.name.as_str(), partition = p.partition_index, leader,
                        "a stale transaction marker not written");
                } else if p.error_code != 0 {
                    debug!(topic = %t.name.as_str(), partition = p.partition_index, code = p.error_code,
                        leader, "WriteTxnMarkers refused a marker");
                    failed.push((t.name.to_string(), p.partition_index));
                }
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topic::LogConfig;
    use crate::storage::batch::tests::{encode_records, record};
    use crate::storage::Log;
    use kafka_protocol::records::{Compression, Record};

    fn transactional(producer_id: i64, producer_epoch: i16) -> Vec<u8> {
        let r = Record {
            transactional: true,
            producer_id,
            producer_epoch,
            sequence: 0,
            ..record(0, None, Some("v"))
        };
        encode_records(&[r], Compression::None).to_vec()
    }

    #[test]
    fn a_version_2_marker_with_the_epoch_of_an_open_transaction_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(dir.path(), LogConfig::default(), now_ms()).unwrap();
        let partition = Arc::new(Partition::new("t", 0, log, Arc::new(tokio::sync::Notify::new())));
        // Producer 7 writes with epoch 3: its next transaction has begun.
        partition.append_now(&mut transactional(7, 3)).unwrap();
        assert!(is_stale_v2_marker(&partition, 7, 3, 2));
        assert!(
            !is_stale_v2_marker(&partition, 7, 3, 1),
            "version 1 ends with the same epoch"
        );
        assert!(!is_stale_v2_marker(&partition, 7, 4, 2));
        assert!(!is_stale_v2_marker(&partition, 8, 3, 2));
        let mut marker = control_batch(7, 4, 0, ControlType::Commit, now_ms());
        partition.append_now(&mut marker).unwrap();
        assert!(!is_stale_v2_marker(&partition, 7, 4, 2), "a retry: nothing open");
    }
}
