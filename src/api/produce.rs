//! Produce: validates each partition's batch (`LogValidator`), then appends
//! every valid batch of the request in one `storage::blocking` call, as
//! received with offsets assigned. Records are never decoded here.

use super::{log_error_code, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::quota::PRODUCER_BYTE_RATE;
use crate::replication::{Topic, TopicStats};
use crate::storage::batch::{BatchError, PendingBatch};
use crate::storage::{now_ms, AppendInfo, LogError, LogValidator, Partition, ValidationError};
use crate::txn::verification::{self, TxnOperation};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use tracing::debug;

/// Returns None for acks=0: the client expects no response.
pub async fn handle(broker: &Broker, ctx: &RequestContext, req: ProduceRequest) -> Option<ProduceResponse> {
    let by_id = ctx.api_version >= 13;
    let acks = req.acks;
    let produced: usize = req
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let txn = TxnContext {
        broker,
        ctx,
        transactional_id: req.transactional_id.as_ref().map(|t| t.as_str()),
    };
    let now = now_ms();
    let image = broker.image();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // The batches that passed every check, appended together below.
    let mut appends = Vec::new();
    let mut pending = Vec::new();
    for topic_data in req.topic_data {
        let topic = if by_id {
            broker.replicas.topic_by_id(topic_data.topic_id)
        } else {
            broker.replicas.topic(&topic_data.name)
        };
        let allowed = topic
            .as_ref()
            .is_none_or(|t| broker.authorize(ctx, operation::WRITE, resource::TOPIC, &t.name));
        if let Some(t) = &topic {
            TopicStats::add(&t.stats.produce_requests, 1);
        }
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let index = data.index;
            let checked = match (&topic, acks) {
                (_, a) if !(a == -1 || a == 0 || a == 1) => {
                    Checked::Refused(error_response(index, ResponseError::InvalidRequiredAcks.code(), None))
                }
                _ if !allowed => Checked::Refused(error_response(
                    index,
                    ResponseError::TopicAuthorizationFailed.code(),
                    None,
                )),
                (None, _) => {
                    let code = if by_id {
                        ResponseError::UnknownTopicId.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    Checked::Refused(error_response(index, code, None))
                }
                (Some(topic), _) if super::leadership::led_elsewhere(broker, &image, topic.id, index) => {
                    Checked::Refused(error_response(index, super::leadership::NOT_LEADER, None))
                }
                (Some(topic), _) => {
                    let replicas = image.topics.by_id(topic.id).and_then(|t| t.partition(index).cloned());
                    let in_sync = replicas.map(|p| (p.replicas.len(), p.isr));
                    check_partition(topic, data, acks, in_sync, ctx.api_version, now, &txn).await
                }
            };
            match checked {
                Checked::Valid(append) => {
                    pending.push((responses.len(), partition_responses.len(), append.received));
                    appends.push((append.partition, append.batch));
                    partition_responses.push(PartitionProduceResponse::default().with_index(index));
                }
                Checked::Refused(response) => partition_responses.push(response),
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    // One call off the async threads for the whole request.
    let results = Partition::append_batches(appends).await;
    let mut replicated = Vec::new();
    for ((t, p, received), result) in pending.into_iter().zip(results) {
        if let (Ok(info), -1) = (&result, acks) {
            if let Some(led) = broker
                .replicas
                .led(received.topic_id, responses[t].partition_responses[p].index)
            {
                replicated.push(super::replication_wait::Wait {
                    at: (t, p),
                    led,
                    last_offset: info.last_offset,
                    min_isr: received.min_isr,
                });
            }
        }
        let response = &mut responses[t].partition_responses[p];
        *response = appended(response.index, &received, result);
    }
    // acks=all: answered once every ISR member has the batch.
    for ((t, p), code) in super::replication_wait::acks_all(broker, replicated, req.timeout_ms).await {
        let response = &mut responses[t].partition_responses[p];
        *response = error_response(response.index, code, None);
    }
    let throttle_ms = broker.quotas.record(
        &broker.image().client_quotas,
        PRODUCER_BYTE_RATE,
        ctx.user(),
        ctx.client_id.as_deref().unwrap_or(""),
        produced as u64,
        now_ms(),
    );
    ctx.throttle(throttle_ms);
    if acks == 0 {
        return None;
    }
    let mut response = ProduceResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle_ms);
    super::leadership::fill_produce(&image, &ctx.listener, &mut response);
    Some(response)
}

fn error_response(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    // Kafka explains only record and timestamp refusals in the response; the
    // rest are logged here at debug.
    let explained = code == ResponseError::InvalidRecord.code() || code == ResponseError::InvalidTimestamp.code();
    let message = message.filter(|_| explained);
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// What a transactional batch is checked against.
struct TxnContext<'a> {
    broker: &'a Broker,
    ctx: &'a RequestContext,
    transactional_id: Option<&'a str>,
}

impl TxnContext<'_> {
    /// A transactional batch needs Write on the request's TransactionalId
    /// and its partition in the producer's open transaction: a TV2 client's
    /// (Produce v12+) is added there, an older client's must have been
    /// (KIP-890). As Kafka, only a producer's first batch of a transaction
    /// in the partition asks the coordinator.
    async fn check(
        &self,
        partition: &Partition,
        topic: &str,
        index: i32,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(), i16> {
        let Some(id) = self.transactional_id.filter(|id| {
            self.broker
                .authorize(self.ctx, operation::WRITE, resource::TRANSACTIONAL_ID, id)
        }) else {
            return Err(ResponseError::TransactionalIdAuthorizationFailed.code());
        };
        let ongoing = partition
            .log()
            .producers()
            .entry(producer_id)
            .is_some_and(|e| e.epoch == epoch && e.current_txn_first_offset.is_some());
        if ongoing {
            return Ok(());
        }
        let op = TxnOperation::for_produce(self.ctx.api_version, self.broker.transaction_v2());
        let codes = self
            .broker
            .txns
            .add_or_verify(
                &self.broker.marker_targets(),
                id,
                producer_id,
                epoch,
                &[(topic.to_string(), index)],
                op,
            )
            .await;
        match codes.first().copied().unwrap_or(0) {
            0 => Ok(()),
            code => Err(verification::for_produce(code, op)),
        }
    }
}

/// A partition's batch after the checks: to append, or refused.
enum Checked {
    Valid(Append),
    Refused(PartitionProduceResponse),
}

/// A batch that passed every check, to append.
struct Append {
    partition: Arc<Partition>,
    batch: PendingBatch,
    received: Received,
}

/// What the producer sent, for the topic's statistics.
struct Received {
    stats: Arc<TopicStats>,
    bytes: u64,
    records: u64,
    topic_id: uuid::Uuid,
    /// min.insync.replicas, capped at the replication factor.
    min_isr: usize,
}

/// Validates one partition's batch and checks what the broker requires of
/// it (transaction, in-sync replicas).
async fn check_partition(
    topic: &Arc<Topic>,
    data: PartitionProduceData,
    acks: i16,
    in_sync: Option<(usize, Vec<i32>)>,
    version: i16,
    now: i64,
    txn: &TxnContext<'_>,
) -> Checked {
    let index = data.index;
    let Some(partition) = topic.partition(index) else {
        return Checked::Refused(error_response(
            index,
            ResponseError::UnknownTopicOrPartition.code(),
            None,
        ));
    };
    let Some(records) = data.records else {
        return Checked::Refused(error_response(
            index,
            ResponseError::InvalidRecord.code(),
            Some("produce request carries no records".into()),
        ));
    };
    let validator = LogValidator {
        config: &topic.log_config,
        api_version: version,
        now_ms: now,
    };
    let valid = match validator.validate(&records) {
        Ok(valid) => valid,
        Err(e) => {
            debug!(topic = %topic.name, partition = index, error = %e, "refused a batch");
            return Checked::Refused(refused(&topic.name, index, &e));
        }
    };
    let header = valid.header;
    if header.is_transactional() {
        if let Err(code) = txn
            .check(partition, &topic.name, index, header.producer_id, header.producer_epoch)
            .await
        {
            debug!(topic = %topic.name, partition = index, code, "refused a transactional batch");
            return Checked::Refused(error_response(index, code, None));
        }
    }
    // As Kafka's appendRecordsToLeader: min.insync.replicas counts up to the
    // replication factor (a single replica satisfies any), refused before the append.
    let min_isr = |replicas: usize| (topic.log_config.min_insync_replicas.max(1) as usize).min(replicas.max(1));
    let effective_min_isr = in_sync.as_ref().map_or(1, |(replicas, _)| min_isr(*replicas));
    if let Some((replicas, isr)) = in_sync.filter(|_| acks == -1) {
        let min_isr = min_isr(replicas);
        if isr.len() < min_isr {
            let members: Vec<String> = isr.iter().map(i32::to_string).collect();
            return Checked::Refused(error_response(
                index,
                ResponseError::NotEnoughReplicas.code(),
                Some(format!(
                    "The size of the current ISR Set({}) is insufficient to satisfy the min.isr requirement \
                     of {min_isr} for partition {}-{index}",
                    members.join(", "),
                    topic.name
                )),
            ));
        }
    }
    Checked::Valid(Append {
        partition: partition.clone(),
        batch: valid.batch,
        received: Received {
            stats: topic.stats.clone(),
            bytes: records.len() as u64,
            records: header.records_count as u64,
            topic_id: topic.id,
            min_isr: effective_min_isr,
        },
    })
}

/// The answer for a batch the validator refused, as Kafka words it.
fn refused(topic: &str, index: i32, e: &ValidationError) -> PartitionProduceResponse {
    let record_error = |batch_index: i32, message: &str| {
        vec![BatchIndexAndErrorMessage::default()
            .with_batch_index(batch_index)
            .with_batch_index_error_message(Some(StrBytes::from_string(message.to_string())))]
    };
    let message = e.to_string();
    match e {
        ValidationError::Batch(b) => {
            let mut r = error_response(
                index,
                log_error_code(&LogError::Batch(b.clone())),
                Some(message.clone()),
            );
            if matches!(b, BatchError::Invalid(_)) {
                r.record_errors = record_error(0, &message);
            }
            r
        }
        ValidationError::KeylessRecords { record_indexes } => {
            // Kafka names every invalid record, and sums them up (the first three) at the partition.
            let message =
                format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}.");
            let shown: Vec<String> = record_indexes
                .iter()
                .take(3)
                .map(|i| format!("RecordError(batchIndex={i}, message='{message}')"))
                .collect();
            let summary = format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                record_indexes.len(),
                shown.join(", ")
            );
            let mut r = error_response(index, ResponseError::InvalidRecord.code(), Some(summary));
            r.record_errors = record_indexes.iter().flat_map(|i| record_error(*i, &message)).collect();
            r
        }
        ValidationError::ZstdNeedsV7 => {
            error_response(index, ResponseError::UnsupportedCompressionType.code(), Some(message))
        }
        ValidationError::Recompression(_) => error_response(index, ResponseError::CorruptMessage.code(), Some(message)),
        ValidationError::MessageTooLarge { .. } => {
            error_response(index, ResponseError::MessageTooLarge.code(), Some(message))
        }
        ValidationError::InvalidTimestamp { .. } => {
            error_response(index, ResponseError::InvalidTimestamp.code(), Some(message))
        }
    }
}

/// The answer for an appended batch.
fn appended(index: i32, received: &Received, result: Result<AppendInfo, LogError>) -> PartitionProduceResponse {
    match result {
        Ok(info) => {
            if !info.duplicate {
                TopicStats::add(&received.stats.bytes_in, received.bytes);
                TopicStats::add(&received.stats.records_in, received.records);
            }
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                .with_log_start_offset(info.log_start_offset)
        }
        Err(e) => {
            debug!(partition = index, error = %e, "append failed");
            error_response(index, log_error_code(&e), Some(e.to_string()))
        }
    }
}
