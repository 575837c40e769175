//! Leadership: ElectLeaders (on a cluster of one the only replica already
//! leads) and OffsetForLeaderEpoch (from each log's leader epoch cache).

use super::{leader_epoch_error, RequestContext};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::metadata::controller::elections::ElectionType;
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
    // v0 has no election type: preferred.
    let Some(election) = ElectionType::from_code(if ctx.api_version >= 1 { req.election_type } else { 0 }) else {
        return ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code());
    };
    // Null asks for every partition.
    let wanted = req
        .topic_partitions
        .map(|list| list.into_iter().map(|t| (t.topic.to_string(), t.partitions)).collect());
    let elected = match broker.controller.elect_leaders(election, wanted).await {
        Ok(elected) => elected,
        Err(e) => return ElectLeadersResponse::default().with_error_code(e.code()),
    };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for e in elected {
        let (code, message) = e.error.map_or((0, None), |(c, m)| (c, Some(StrBytes::from_string(m))));
        let partition = PartitionResult::default()
            .with_partition_id(e.partition)
            .with_error_code(code)
            .with_error_message(message);
        match results.iter_mut().find(|r| r.topic.as_str() == e.topic) {
            Some(r) => r.partition_result.push(partition),
            None => results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(e.topic)))
                    .with_partition_result(vec![partition]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
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
                    if let Some(code) = super::leadership::not_led_here(broker, topic.as_ref(), p.partition) {
                        return answer.with_error_code(code);
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
