//! DeleteRecords: moves a partition's log start offset forward; whole
//! segments before it are deleted.

use super::{log_error_code, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use kafka_protocol::ResponseError;

/// -1 asks to delete everything below the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.replicas.topic(&t.name);
            let allowed = broker.authorize(ctx, operation::DELETE, resource::TOPIC, &t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    if !allowed {
                        return result
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                        return result
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let mut log = partition.log();
                    let offset = if p.offset == HIGH_WATERMARK {
                        log.high_watermark()
                    } else {
                        p.offset
                    };
                    match log.delete_records_before(offset) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(e) => result.with_low_watermark(-1).with_error_code(log_error_code(&e)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
