//! Leadership and replica placement: ElectLeaders (on a cluster of one the
//! only replica already leads), ListPartitionReassignments (none ever run)
//! and OffsetForLeaderEpoch (from each log's leader epoch cache).

use super::{leader_epoch_error, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub async fn handle_elect_leaders(
    broker: &Broker,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    if !broker.authorize_cluster(ctx, operation::ALTER) {
        let response = ElectLeadersResponse::default();
        return if ctx.api_version >= 1 {
            response.with_error_code(ResponseError::ClusterAuthorizationFailed.code())
        } else {
            response
        };
    }
    // Null asks for every partition.
    let wanted: Vec<(TopicName, Vec<i32>)> = match req.topic_partitions {
        Some(list) => list.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => broker
            .replicas
            .topics()
            .iter()
            .map(|t| {
                (
                    TopicName(StrBytes::from_string(t.name.clone())),
                    (0..t.partitions.len() as i32).collect(),
                )
            })
            .collect(),
    };
    let results = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let topic = broker.replicas.topic(&name);
            let partition_result = partitions
                .into_iter()
                .map(|p| {
                    let exists = topic.as_ref().is_some_and(|t| t.partition(p).is_some());
                    let (code, message) = if exists {
                        (
                            ResponseError::ElectionNotNeeded.code(),
                            "Leader election not needed for topic partition.",
                        )
                    } else {
                        (
                            ResponseError::UnknownTopicOrPartition.code(),
                            "The partition does not exist.",
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_static_str(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(name)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

pub async fn handle_list_partition_reassignments(
    broker: &Broker,
    ctx: &RequestContext,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !broker.authorize_cluster(ctx, operation::DESCRIBE) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")));
    }
    ListPartitionReassignmentsResponse::default()
}

pub async fn handle_offset_for_leader_epoch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.replicas.topic(&t.topic);
            let allowed = broker.authorize(ctx, operation::DESCRIBE, resource::TOPIC, &t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        return answer.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        return answer.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let offsets = partition.offsets();
                    if let Some(code) = leader_epoch_error(p.current_leader_epoch, offsets.leader_epoch) {
                        return answer.with_error_code(code);
                    }
                    // The current epoch ends at the log end (even before its first
                    // append); earlier ones where the leader epoch cache says.
                    let (epoch, end) = if p.leader_epoch == offsets.leader_epoch {
                        (offsets.leader_epoch, offsets.log_end_offset)
                    } else {
                        partition.log().end_offset_for_epoch(p.leader_epoch)
                    };
                    answer.with_leader_epoch(epoch).with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
