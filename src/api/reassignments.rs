//! Partition reassignment (KIP-455): AlterPartitionReassignments starts,
//! changes or cancels the move of each partition's replicas (run by the
//! active controller), ListPartitionReassignments shows those in progress.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use crate::metadata::controller::reassignments::{self, Reassign};
use crate::metadata::controller::ControllerError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub async fn handle_alter_partition_reassignments(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change);
    if !broker.authorize_cluster(ctx, operation::ALTER) {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")));
    }
    // v1 (KIP-860) may forbid changing a partition's replication factor.
    let image = broker.image();
    let mut wanted = Vec::new();
    let mut refused: Vec<(String, i32, ControllerError)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            if let (false, Some(target)) = (req.allow_replication_factor_change, &target) {
                let current = image
                    .topics
                    .get(t.name.as_str())
                    .and_then(|topic| topic.partition(p.partition_index))
                    .map(|reg| reg.replicas.len() + reg.adding_replicas.len() - reg.removing_replicas.len());
                if let Some(current) = current.filter(|c| *c != target.len()) {
                    refused.push((
                        t.name.to_string(),
                        p.partition_index,
                        ControllerError::InvalidReplicationFactor(format!(
                            "The replication factor is changed from {current} to {}",
                            target.len()
                        )),
                    ));
                    continue;
                }
            }
            wanted.push(Reassign {
                topic: t.name.to_string(),
                partition: p.partition_index,
                target,
            });
        }
    }
    let asked: Vec<(String, i32)> = wanted.iter().map(|r| (r.topic.clone(), r.partition)).collect();
    let outcomes = match broker.controller.alter_partition_reassignments(wanted).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            return response
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
        }
    };
    let mut results: Vec<(String, i32, Result<(), ControllerError>)> = asked
        .into_iter()
        .zip(outcomes)
        .map(|((topic, partition), outcome)| (topic, partition, outcome))
        .collect();
    results.extend(refused.into_iter().map(|(t, p, e)| (t, p, Err(e))));
    // Answered in the request's order, topic by topic.
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for t in &req.topics {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let outcome = results
                    .iter()
                    .position(|(topic, index, _)| topic == t.name.as_str() && *index == p.partition_index)
                    .map(|i| results.swap_remove(i).2)
                    .unwrap_or(Ok(()));
                let (code, message) = match outcome {
                    Ok(()) => (0, None),
                    Err(e) => (e.code(), Some(StrBytes::from_string(e.to_string()))),
                };
                ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    response.with_responses(responses)
}

pub async fn handle_list_partition_reassignments(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !broker.authorize_cluster(ctx, operation::DESCRIBE) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")));
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    // Forwarded here: the active controller's image, which has every change it answered.
    let image = if broker.controller.is_active() {
        broker.controller.image().await
    } else {
        broker.image()
    };
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for o in reassignments::ongoing(&image, wanted.as_deref()) {
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(o.partition)
            .with_replicas(o.replicas.into_iter().map(Into::into).collect())
            .with_adding_replicas(o.adding.into_iter().map(Into::into).collect())
            .with_removing_replicas(o.removing.into_iter().map(Into::into).collect());
        match topics.iter_mut().find(|t| t.name.as_str() == o.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(o.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
