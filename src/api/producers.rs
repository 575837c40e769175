//! Producer ids: InitProducerId (for idempotent producers a fresh id, epoch
//! 0; for transactional ids the transaction coordinator's id and a new
//! epoch), and DescribeProducers, the producer state each partition keeps.

use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use kafka_protocol::ResponseError;

pub async fn handle_init_producer_id(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match req.transactional_id.as_ref().map(|t| t.as_str()) {
        None => {}
        Some("") => return response.with_error_code(ResponseError::InvalidRequest.code()),
        Some(id) if !broker.authorize(ctx, operation::WRITE, resource::TRANSACTIONAL_ID, id) => {
            return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
        }
        Some(id) => {
            // KIP-360: a producer that knows its id and epoch names them.
            let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
            return match broker
                .txns
                .init_producer_id(&broker.marker_targets(), id, req.transaction_timeout_ms, expected)
                .await
            {
                Ok((pid, epoch)) => response.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
                // Older clients know fencing as INVALID_PRODUCER_EPOCH.
                Err(code) if code == ResponseError::ProducerFenced.code() && ctx.api_version < 4 => {
                    response.with_error_code(ResponseError::InvalidProducerEpoch.code())
                }
                Err(code) => response.with_error_code(code),
            };
        }
    }
    // KIP-679: IdempotentWrite on the cluster, or Write on some topic.
    if !broker.authorize_cluster(ctx, operation::IDEMPOTENT_WRITE)
        && !broker.authorize_any(ctx, operation::WRITE, resource::TOPIC)
    {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // Kafka gives an idempotent producer a new id on every call, even when it
    // names its previous one.
    match broker.producer_ids.next().await {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(code) => response.with_error_code(code),
    }
}

pub async fn handle_describe_producers(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.replicas.topic(&t.name);
            let allowed = broker.authorize(ctx, operation::READ, resource::TOPIC, &t.name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|index| {
                    let answer = PartitionResponse::default().with_partition_index(*index);
                    if !allowed {
                        return answer.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(*index)) else {
                        return answer.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let log = partition.log();
                    let active = log
                        .producers()
                        .entries()
                        .map(|(id, entry)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(*id))
                                .with_producer_epoch(entry.epoch as i32)
                                .with_last_sequence(entry.batches.back().map_or(-1, |b| b.last_seq))
                                .with_last_timestamp(entry.last_timestamp)
                                .with_coordinator_epoch(entry.coordinator_epoch)
                                .with_current_txn_start_offset(entry.current_txn_first_offset.unwrap_or(-1))
                        })
                        .collect();
                    answer.with_active_producers(active)
                })
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
