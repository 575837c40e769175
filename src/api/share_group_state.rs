//! The share coordinator's APIs (KIP-932), which brokers send one another:
//! InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState,
//! DeleteShareGroupState and ReadShareGroupStateSummary, each answered by
//! the shard of `__share_group_state` holding the key (NOT_COORDINATOR on a
//! broker that does not lead it). CLUSTER_ACTION on the cluster, as Kafka.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use crate::share::state::batches::StateBatch;
use crate::share::state::records::StateKey;
use crate::share::state::shard::StateWrite;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use uuid::Uuid;

/// The error every partition of a request gets, if any: not allowed.
fn refused(broker: &Broker, ctx: &RequestContext) -> Option<(i16, Option<StrBytes>)> {
    (!broker.authorize_cluster(ctx, operation::CLUSTER_ACTION)).then_some((E::ClusterAuthorizationFailed.code(), None))
}

fn key(group: &StrBytes, topic_id: Uuid, partition: i32) -> StateKey {
    StateKey {
        group: group.to_string(),
        topic_id,
        partition,
    }
}

/// Whether the partition exists (reads and writes of others are refused).
fn known(broker: &Broker, topic_id: Uuid, partition: i32) -> bool {
    broker
        .image()
        .topics
        .by_id(topic_id)
        .is_some_and(|t| t.partition(partition).is_some())
}

/// Kafka's messages for what these APIs answer (`op`: "Read", "Write").
fn message(code: i16, op: &str) -> Option<StrBytes> {
    let text = match E::try_from_code(code)? {
        E::InvalidRequest => {
            return Some(StrBytes::from_string(format!(
                "{op} operation on uninitialized share partition not allowed."
            )))
        }
        E::FencedStateEpoch => "The coordinator rejected the request because the state epoch did not match.",
        E::FencedLeaderEpoch => "The leader epoch in the request is older than the epoch on the broker.",
        E::NotCoordinator => "This is not the correct coordinator.",
        E::CoordinatorNotAvailable => "The coordinator is not available.",
        E::CoordinatorLoadInProgress => "The coordinator is loading and hence can't process requests.",
        E::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        _ => return None,
    };
    Some(StrBytes::from_static_str(text))
}

pub async fn handle_initialize(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitializeShareGroupStateRequest,
) -> InitializeShareGroupStateResponse {
    use initialize_share_group_state_response::{InitializeStateResult, PartitionResult};
    if req.group_id.is_empty() {
        // Kafka answers a request without a group with no results.
        return InitializeShareGroupStateResponse::default();
    }
    let denied = refused(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let (code, text) = match &denied {
                Some((code, text)) => (*code, text.clone()),
                None if !known(broker, t.topic_id, p.partition) => (E::UnknownTopicOrPartition.code(), None),
                None => {
                    let key = key(&req.group_id, t.topic_id, p.partition);
                    let code = broker
                        .share_states
                        .initialize(&key, p.state_epoch, p.start_offset)
                        .await;
                    (code, None)
                }
            };
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_error_message(text.or_else(|| message(code, "Initialize"))),
            );
        }
        results.push(
            InitializeStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    InitializeShareGroupStateResponse::default().with_results(results)
}

pub async fn handle_read(
    broker: &Broker,
    ctx: &RequestContext,
    req: ReadShareGroupStateRequest,
) -> ReadShareGroupStateResponse {
    use read_share_group_state_response::{PartitionResult, ReadStateResult, StateBatch as WireBatch};
    if req.group_id.is_empty() {
        // Kafka answers a request without a group with no results.
        return ReadShareGroupStateResponse::default();
    }
    let denied = refused(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = PartitionResult::default().with_partition(p.partition);
            let result = match &denied {
                Some((code, text)) => Err((*code, text.clone())),
                // Kafka: an unknown partition has no state, so it is uninitialized.
                None => broker
                    .share_states
                    .read(&key(&req.group_id, t.topic_id, p.partition), p.leader_epoch)
                    .await
                    .map_err(|code| (code, None)),
            };
            partitions.push(match result {
                Ok(read) => base
                    .with_state_epoch(read.state_epoch)
                    .with_start_offset(read.start_offset)
                    .with_state_batches(
                        read.batches
                            .iter()
                            .map(|b| {
                                WireBatch::default()
                                    .with_first_offset(b.first)
                                    .with_last_offset(b.last)
                                    .with_delivery_state(b.state)
                                    .with_delivery_count(b.count)
                            })
                            .collect(),
                    ),
                Err((code, text)) => base
                    .with_error_code(code)
                    .with_error_message(text.or_else(|| message(code, "Read"))),
            });
        }
        results.push(
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateResponse::default().with_results(results)
}

pub async fn handle_write(
    broker: &Broker,
    ctx: &RequestContext,
    req: WriteShareGroupStateRequest,
) -> WriteShareGroupStateResponse {
    use write_share_group_state_response::{PartitionResult, WriteStateResult};
    if req.group_id.is_empty() {
        // Kafka answers a request without a group with no results.
        return WriteShareGroupStateResponse::default();
    }
    let denied = refused(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let (code, text) = match &denied {
                Some((code, text)) => (*code, text.clone()),
                None => {
                    let write = StateWrite {
                        state_epoch: p.state_epoch,
                        leader_epoch: p.leader_epoch,
                        start_offset: p.start_offset,
                        delivery_complete_count: p.delivery_complete_count,
                        batches: p
                            .state_batches
                            .iter()
                            .map(|b| StateBatch {
                                first: b.first_offset,
                                last: b.last_offset,
                                state: b.delivery_state,
                                count: b.delivery_count,
                            })
                            .collect(),
                    };
                    let key = key(&req.group_id, t.topic_id, p.partition);
                    (broker.share_states.write(&key, write).await, None)
                }
            };
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_error_message(text.or_else(|| message(code, "Write"))),
            );
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    WriteShareGroupStateResponse::default().with_results(results)
}

pub async fn handle_delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteShareGroupStateRequest,
) -> DeleteShareGroupStateResponse {
    use delete_share_group_state_response::{DeleteStateResult, PartitionResult};
    if req.group_id.is_empty() {
        // Kafka answers a request without a group with no results.
        return DeleteShareGroupStateResponse::default();
    }
    let denied = refused(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let (code, text) = match &denied {
                Some((code, text)) => (*code, text.clone()),
                None => {
                    let key = key(&req.group_id, t.topic_id, p.partition);
                    (broker.share_states.delete(&key).await, None)
                }
            };
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_error_message(text.or_else(|| message(code, "Delete"))),
            );
        }
        results.push(
            DeleteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    DeleteShareGroupStateResponse::default().with_results(results)
}

pub async fn handle_summary(
    broker: &Broker,
    ctx: &RequestContext,
    req: ReadShareGroupStateSummaryRequest,
) -> ReadShareGroupStateSummaryResponse {
    use read_share_group_state_summary_response::{PartitionResult, ReadStateSummaryResult};
    if req.group_id.is_empty() {
        // Kafka answers a request without a group with no results.
        return ReadShareGroupStateSummaryResponse::default();
    }
    let denied = refused(broker, ctx);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = PartitionResult::default().with_partition(p.partition);
            let result = match &denied {
                Some((code, text)) => Err((*code, text.clone())),
                None if !known(broker, t.topic_id, p.partition) => Err((E::UnknownTopicOrPartition.code(), None)),
                None => broker
                    .share_states
                    .summary(&key(&req.group_id, t.topic_id, p.partition))
                    .await
                    .map_err(|code| (code, None)),
            };
            partitions.push(match result {
                Ok(s) => base
                    .with_state_epoch(s.state_epoch)
                    .with_leader_epoch(s.leader_epoch)
                    .with_start_offset(s.start_offset)
                    .with_delivery_complete_count(s.delivery_complete_count),
                Err((code, text)) => base
                    .with_error_code(code)
                    .with_error_message(text.or_else(|| message(code, "Read summary")))
                    .with_start_offset(-1),
            });
        }
        results.push(
            ReadStateSummaryResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateSummaryResponse::default().with_results(results)
}
