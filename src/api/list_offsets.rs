//! ListOffsets: earliest, latest, max timestamp, and the first offset at or
//! after a timestamp (through the time index).

use super::{leader_epoch_error, log_error_code, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::storage::{blocking, Partition};
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::ResponseError;
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// v11 (KIP-1023): the earliest offset not yet copied to remote storage.
const EARLIEST_PENDING_UPLOAD: i64 = -6;
const READ_COMMITTED: i8 = 1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // Leader epochs exist from v4; earlier versions must carry the default.
    let with_epochs = ctx.api_version >= 4;
    let read_committed = req.isolation_level == READ_COMMITTED;
    // Resolved here; looked up in one call off the async threads (the time
    // index and the batches are files).
    let resolved: Vec<(TopicName, Vec<Answer>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.replicas.topic(&t.name);
            let allowed = broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, &t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let refused = |code: i16| {
                        Answer::Ready(
                            answer
                                .clone()
                                .with_error_code(code)
                                .with_timestamp(-1)
                                .with_offset(-1)
                                .with_leader_epoch(-1),
                        )
                    };
                    if !allowed {
                        return refused(ResponseError::TopicAuthorizationFailed.code());
                    }
                    if let Some(code) = super::leadership::not_led_here(broker, topic.as_ref(), p.partition_index) {
                        return refused(code);
                    }
                    match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        None => refused(ResponseError::UnknownTopicOrPartition.code()),
                        Some(partition) => Answer::Lookup {
                            partition: partition.clone(),
                            timestamp: p.timestamp,
                            epoch: p.current_leader_epoch,
                            answer,
                        },
                    }
                })
                .collect();
            (t.name, partitions)
        })
        .collect();
    let shape: Vec<(TopicName, Vec<i32>)> = resolved
        .iter()
        .map(|(name, answers)| (name.clone(), answers.iter().map(Answer::partition_index).collect()))
        .collect();
    let looked_up = blocking(move || {
        resolved
            .into_iter()
            .map(|(name, answers)| {
                let partitions = answers
                    .into_iter()
                    .map(|a| match a {
                        Answer::Ready(answer) => answer,
                        Answer::Lookup {
                            partition,
                            timestamp,
                            epoch,
                            answer,
                        } => {
                            let a = lookup(&partition, timestamp, epoch, read_committed, answer);
                            if with_epochs {
                                a
                            } else {
                                a.with_leader_epoch(-1)
                            }
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    match looked_up {
        Ok(topics) => ListOffsetsResponse::default().with_topics(topics),
        // The lookup task died: a storage error for each partition, not a hang.
        Err(_) => ListOffsetsResponse::default().with_topics(
            shape
                .into_iter()
                .map(|(name, indexes)| {
                    let partitions = indexes
                        .into_iter()
                        .map(|i| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(i)
                                .with_error_code(ResponseError::KafkaStorageError.code())
                                .with_timestamp(-1)
                                .with_offset(-1)
                                .with_leader_epoch(-1)
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(name)
                        .with_partitions(partitions)
                })
                .collect(),
        ),
    }
}

/// A partition's answer, or what to look up for it.
enum Answer {
    Ready(ListOffsetsPartitionResponse),
    Lookup {
        partition: Arc<Partition>,
        timestamp: i64,
        epoch: i32,
        answer: ListOffsetsPartitionResponse,
    },
}

impl Answer {
    fn partition_index(&self) -> i32 {
        match self {
            Answer::Ready(a) | Answer::Lookup { answer: a, .. } => a.partition_index,
        }
    }
}

fn lookup(
    partition: &Partition,
    timestamp: i64,
    requested_epoch: i32,
    read_committed: bool,
    answer: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    let mut log = partition.log();
    let epoch = log.leader_epoch();
    let not_found = |a: ListOffsetsPartitionResponse| a.with_timestamp(-1).with_offset(-1).with_leader_epoch(-1);
    if let Some(code) = leader_epoch_error(requested_epoch, epoch) {
        return not_found(answer).with_error_code(code);
    }
    let at = |a: ListOffsetsPartitionResponse, offset: i64| {
        a.with_timestamp(-1).with_offset(offset).with_leader_epoch(epoch)
    };
    // read_committed sees up to the last stable offset only.
    let visible_end = if read_committed {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    match timestamp {
        LATEST => at(answer, visible_end),
        EARLIEST | EARLIEST_LOCAL => at(answer, log.log_start_offset()),
        // Nothing is tiered: there is no tiered offset, nor one waiting for upload.
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => not_found(answer),
        MAX_TIMESTAMP => match log.max_timestamp_record() {
            Ok(Some((offset, ts))) => answer.with_timestamp(ts).with_offset(offset).with_leader_epoch(epoch),
            Ok(None) => not_found(answer),
            Err(e) => not_found(answer).with_error_code(log_error_code(&e)),
        },
        ts if ts >= 0 => match log.offset_for_timestamp(ts) {
            Ok(Some((offset, found))) if offset < visible_end => answer
                .with_timestamp(found)
                .with_offset(offset)
                .with_leader_epoch(epoch),
            Ok(_) => not_found(answer),
            Err(e) => not_found(answer).with_error_code(log_error_code(&e)),
        },
        _ => not_found(answer).with_error_code(ResponseError::InvalidRequest.code()),
    }
}
