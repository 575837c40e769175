//! The share coordinator's APIs (KIP-932), which brokers send one another:
//! InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState,
//! DeleteShareGroupState and ReadShareGroupStateSummary, each answered by
//! the shard of `__share_group_state` holding the key (NOT_COORDINATOR on a
//! broker that does not lead it). CLUSTER_ACTION on the cluster, as Kafka.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use crate::share::state::records::StateKey;
use crate::share::state::shard::StateWrite;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::future::Future;
use uuid::Uuid;

/// The error every partition of a request gets, if any: not allowed.
fn refused(broker: &Broker, ctx: &RequestContext) -> Option<i16> {
    (!broker.authorize_cluster(ctx, operation::CLUSTER_ACTION)).then_some(E::ClusterAuthorizationFailed.code())
}

/// Answers each partition of each topic of a request in turn.
async fn each_partition<P, R, F: Future<Output = R>>(
    topics: impl IntoIterator<Item = (Uuid, Vec<P>)>,
    mut answer: impl FnMut(Uuid, P) -> F,
) -> Vec<(Uuid, Vec<R>)> {
    let mut out = Vec::new();
    for (topic_id, partitions) in topics {
        let mut results = Vec::with_capacity(partitions.len());
        for p in partitions {
            results.push(answer(topic_id, p).await);
        }
        out.push((topic_id, results));
    }
    out
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
    let group = &req.group_id;
    let topics = req.topics.into_iter().map(|t| (t.topic_id, t.partitions));
    let results = each_partition(topics, |topic_id, p| async move {
        let code = match denied {
            Some(code) => code,
            None if !known(broker, topic_id, p.partition) => E::UnknownTopicOrPartition.code(),
            None => {
                let key = key(group, topic_id, p.partition);
                broker
                    .share_states
                    .initialize(&key, p.state_epoch, p.start_offset)
                    .await
            }
        };
        PartitionResult::default()
            .with_partition(p.partition)
            .with_error_code(code)
            .with_error_message(message(code, "Initialize"))
    })
    .await;
    InitializeShareGroupStateResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, ps)| InitializeStateResult::default().with_topic_id(id).with_partitions(ps))
            .collect(),
    )
}

pub async fn handle_read(
    broker: &Broker,
    ctx: &RequestContext,
    req: ReadShareGroupStateRequest,
) -> ReadShareGroupStateResponse {
    use read_share_group_state_response::{PartitionResult, ReadStateResult};
    if req.group_id.is_empty() {
        // Kafka answers a request without a group with no results.
        return ReadShareGroupStateResponse::default();
    }
    let denied = refused(broker, ctx);
    let group = &req.group_id;
    let topics = req.topics.into_iter().map(|t| (t.topic_id, t.partitions));
    let results = each_partition(topics, |topic_id, p| async move {
        let base = PartitionResult::default().with_partition(p.partition);
        let result = match denied {
            Some(code) => Err(code),
            // Kafka: an unknown partition has no state, so it is uninitialized.
            None => {
                let key = key(group, topic_id, p.partition);
                broker.share_states.read(&key, p.leader_epoch).await
            }
        };
        match result {
            Ok(read) => base
                .with_state_epoch(read.state_epoch)
                .with_start_offset(read.start_offset)
                .with_state_batches(read.batches.iter().map(Into::into).collect()),
            Err(code) => base.with_error_code(code).with_error_message(message(code, "Read")),
        }
    })
    .await;
    ReadShareGroupStateResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, ps)| ReadStateResult::default().with_topic_id(id).with_partitions(ps))
            .collect(),
    )
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
    let group = &req.group_id;
    let topics = req.topics.into_iter().map(|t| (t.topic_id, t.partitions));
    let results = each_partition(topics, |topic_id, p| async move {
        let code = match denied {
            Some(code) => code,
            None => {
                let write = StateWrite {
                    state_epoch: p.state_epoch,
                    leader_epoch: p.leader_epoch,
                    start_offset: p.start_offset,
                    delivery_complete_count: p.delivery_complete_count,
                    batches: p.state_batches.iter().map(Into::into).collect(),
                };
                broker
                    .share_states
                    .write(&key(group, topic_id, p.partition), write)
                    .await
            }
        };
        PartitionResult::default()
            .with_partition(p.partition)
            .with_error_code(code)
            .with_error_message(message(code, "Write"))
    })
    .await;
    WriteShareGroupStateResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, ps)| WriteStateResult::default().with_topic_id(id).with_partitions(ps))
            .collect(),
    )
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
    let group = &req.group_id;
    let topics = req.topics.into_iter().map(|t| (t.topic_id, t.partitions));
    let results = each_partition(topics, |topic_id, p| async move {
        let code = match denied {
            Some(code) => code,
            None => broker.share_states.delete(&key(group, topic_id, p.partition)).await,
        };
        PartitionResult::default()
            .with_partition(p.partition)
            .with_error_code(code)
            .with_error_message(message(code, "Delete"))
    })
    .await;
    DeleteShareGroupStateResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, ps)| DeleteStateResult::default().with_topic_id(id).with_partitions(ps))
            .collect(),
    )
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
    let group = &req.group_id;
    let topics = req.topics.into_iter().map(|t| (t.topic_id, t.partitions));
    let results = each_partition(topics, |topic_id, p| async move {
        let base = PartitionResult::default().with_partition(p.partition);
        let result = match denied {
            Some(code) => Err(code),
            None if !known(broker, topic_id, p.partition) => Err(E::UnknownTopicOrPartition.code()),
            None => broker.share_states.summary(&key(group, topic_id, p.partition)).await,
        };
        match result {
            Ok(s) => base
                .with_state_epoch(s.state_epoch)
                .with_leader_epoch(s.leader_epoch)
                .with_start_offset(s.start_offset)
                .with_delivery_complete_count(s.delivery_complete_count),
            Err(code) => base
                .with_error_code(code)
                .with_error_message(message(code, "Read summary"))
                .with_start_offset(-1),
        }
    })
    .await;
    ReadShareGroupStateSummaryResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, ps)| ReadStateSummaryResult::default().with_topic_id(id).with_partitions(ps))
            .collect(),
    )
}
