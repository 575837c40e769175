//! Produce: validates each partition's batch header and CRC, then appends the
//! bytes as received with offsets assigned. Records are never decoded here.

use super::{log_error_code, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::quota::PRODUCER_BYTE_RATE;
use crate::replication::{Topic, TopicStats};
use crate::storage::batch::{validate_produced, BatchError};
use crate::storage::codec::recompress;
use crate::storage::now_ms;
use crate::storage::LogError;
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
    let mut responses = Vec::with_capacity(req.topic_data.len());
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
            let response = match (&topic, acks) {
                (_, a) if !(a == -1 || a == 0 || a == 1) => {
                    error_response(index, ResponseError::InvalidRequiredAcks.code(), None)
                }
                _ if !allowed => error_response(index, ResponseError::TopicAuthorizationFailed.code(), None),
                (None, _) => {
                    let code = if by_id {
                        ResponseError::UnknownTopicId.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    error_response(index, code, None)
                }
                (Some(topic), _) => {
                    let txn = TxnContext {
                        broker,
                        ctx,
                        transactional_id: req.transactional_id.as_ref().map(|t| t.as_str()),
                    };
                    append_partition(topic, data, acks, ctx.api_version, &txn).await
                }
            };
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses),
        );
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
    Some(
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms),
    )
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

/// Index of the first record without a key, which a compacted topic refuses.
/// Only compacted topics pay for decoding the records.
fn first_keyless_record(records: &bytes::Bytes) -> Option<i32> {
    let mut buf = records.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).ok()?;
    set.records.iter().position(|r| r.key.is_none()).map(|i| i as i32)
}

/// ZStandard batches need Produce v7 or later (KIP-110).
const ZSTD: i16 = 4;

/// What a transactional batch is checked against.
struct TxnContext<'a> {
    broker: &'a Broker,
    ctx: &'a RequestContext,
    transactional_id: Option<&'a str>,
}

impl TxnContext<'_> {
    /// A transactional batch needs Write on the request's TransactionalId
    /// and a partition added to the producer's open transaction.
    async fn check(&self, topic: &str, partition: i32, producer_id: i64, epoch: i16) -> Result<(), i16> {
        let Some(id) = self.transactional_id.filter(|id| {
            self.broker
                .authorize(self.ctx, operation::WRITE, resource::TRANSACTIONAL_ID, id)
        }) else {
            return Err(ResponseError::TransactionalIdAuthorizationFailed.code());
        };
        self.broker.txns.verify(id, producer_id, epoch, topic, partition).await
    }
}

async fn append_partition(
    topic: &Arc<Topic>,
    data: PartitionProduceData,
    acks: i16,
    version: i16,
    txn: &TxnContext<'_>,
) -> PartitionProduceResponse {
    let index = data.index;
    let Some(partition) = topic.partition(index) else {
        return error_response(index, ResponseError::UnknownTopicOrPartition.code(), None);
    };
    let Some(records) = data.records else {
        return error_response(
            index,
            ResponseError::InvalidRecord.code(),
            Some("produce request carries no records".into()),
        );
    };
    let header = match validate_produced(&records) {
        Ok(h) => h,
        Err(e) => {
            debug!(topic = %topic.name, partition = index, error = %e, "refused a batch");
            let mut r = error_response(index, log_error_code(&LogError::Batch(e.clone())), Some(e.to_string()));
            if matches!(e, BatchError::Invalid(_)) {
                r.record_errors = vec![BatchIndexAndErrorMessage::default()
                    .with_batch_index(0)
                    .with_batch_index_error_message(Some(StrBytes::from_string(e.to_string())))];
            }
            return r;
        }
    };
    if topic.log_config.compact {
        if let Some(record_index) = first_keyless_record(&records) {
            let message = format!(
                "Compacted topic cannot accept message without key in topic partition {}-{index}.",
                topic.name
            );
            let mut r = error_response(index, ResponseError::InvalidRecord.code(), Some(message.clone()));
            r.record_errors = vec![BatchIndexAndErrorMessage::default()
                .with_batch_index(record_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(message)))];
            return r;
        }
    }
    if header.compression() == ZSTD && version < 7 {
        return error_response(
            index,
            ResponseError::UnsupportedCompressionType.code(),
            Some("zstd batches need Produce v7 or later".into()),
        );
    }
    if header.is_transactional() {
        if let Err(code) = txn
            .check(&topic.name, index, header.producer_id, header.producer_epoch)
            .await
        {
            debug!(topic = %topic.name, partition = index, code, "refused a transactional batch");
            return error_response(index, code, None);
        }
    }
    // A single node is the only in-sync replica.
    if acks == -1 && topic.log_config.min_insync_replicas > 1 {
        return error_response(
            index,
            ResponseError::NotEnoughReplicas.code(),
            Some(format!(
                "min.insync.replicas is {} but only 1 replica is in sync",
                topic.log_config.min_insync_replicas
            )),
        );
    }
    // A topic with its own compression.type stores every batch in that codec.
    let stored = match topic.log_config.compression {
        Some(codec) if codec != header.compression() => match recompress(&records, &header, codec) {
            Ok(batch) => batch,
            Err(e) => {
                debug!(topic = %topic.name, partition = index, error = %e, "could not recompress a batch");
                return error_response(index, ResponseError::CorruptMessage.code(), Some(e.to_string()));
            }
        },
        _ => records.to_vec(),
    };
    match partition.append(stored).await {
        Ok(info) => {
            if !info.duplicate {
                TopicStats::add(&topic.stats.bytes_in, records.len() as u64);
                TopicStats::add(&topic.stats.records_in, header.records_count as u64);
            }
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                .with_log_start_offset(info.log_start_offset)
        }
        Err(e) => {
            debug!(topic = %topic.name, partition = index, error = %e, "append failed");
            error_response(index, log_error_code(&e), Some(e.to_string()))
        }
    }
}
