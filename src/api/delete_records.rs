//! DeleteRecords: moves a partition's log start offset forward; whole
//! segments before it are deleted.

use super::{log_error_code, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::storage::{blocking, Partition};
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::ResponseError;
use std::sync::Arc;

/// A partition to delete from and the offset asked, or the error code.
type Target = Result<(Arc<Partition>, i64), i16>;

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    // Resolved here; deleted in one call off the async threads (segment files go).
    let resolved: Vec<(TopicName, Vec<(i32, Target)>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.replicas.topic(&t.name);
            let allowed = broker.authorize(ctx, operation::DELETE, resource::TOPIC, &t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let target = match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        _ if !allowed => Err(ResponseError::TopicAuthorizationFailed.code()),
                        _ if super::leadership::not_led_here(broker, topic.as_ref(), p.partition_index).is_some() => {
                            Err(super::leadership::NOT_LEADER)
                        }
                        None => Err(ResponseError::UnknownTopicOrPartition.code()),
                        Some(partition) => Ok((partition.clone(), p.offset)),
                    };
                    (p.partition_index, target)
                })
                .collect();
            (t.name, partitions)
        })
        .collect();
    let shape: Vec<(TopicName, Vec<i32>)> = resolved
        .iter()
        .map(|(name, ps)| (name.clone(), ps.iter().map(|(i, _)| *i).collect()))
        .collect();
    let deleted = blocking(move || {
        resolved
            .into_iter()
            .map(|(name, partitions)| {
                let results = partitions
                    .into_iter()
                    .map(|(index, target)| {
                        let result = DeleteRecordsPartitionResult::default().with_partition_index(index);
                        // -1 asks to delete everything below the high watermark (the partition resolves it).
                        match target
                            .and_then(|(p, offset)| p.delete_records_before(offset).map_err(|e| log_error_code(&e)))
                        {
                            Ok(low) => result.with_low_watermark(low),
                            Err(code) => result.with_low_watermark(-1).with_error_code(code),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(name)
                    .with_partitions(results)
            })
            .collect()
    })
    .await;
    let topics = deleted.unwrap_or_else(|_| {
        // The task died: a storage error for each partition, not a hang.
        shape
            .into_iter()
            .map(|(name, indexes)| {
                let results = indexes
                    .into_iter()
                    .map(|i| {
                        DeleteRecordsPartitionResult::default()
                            .with_partition_index(i)
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::KafkaStorageError.code())
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(name)
                    .with_partitions(results)
            })
            .collect()
    });
    DeleteRecordsResponse::default().with_topics(topics)
}
