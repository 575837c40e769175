//! FindCoordinator: on a single node, this node coordinates every group and
//! every transactional id (creating `__transaction_state` on first use, as
//! Kafka does); in a cluster, the leader of the key's partition of
//! `__consumer_offsets` or `__transaction_state` does.

use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::coordinator::state_topic::partition_for;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::MetadataImage;
use crate::share::state::SHARE_STATE_TOPIC;
use crate::txn::TRANSACTION_STATE_TOPIC;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;
/// A share-partition's state ("group:topicId:partition"): brokers ask it.
const SHARE: i8 = 2;

pub async fn handle_find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let endpoint = broker.endpoint_for(&ctx.listener);
    let node = BrokerId(broker.node_id());
    // As Kafka, the first lookup of a transaction coordinator creates its topic.
    let clustered = broker.controller.is_clustered();
    let txn_topic = if req.key_type == TRANSACTION {
        broker.txns.ensure_topic().await
    } else if req.key_type == SHARE {
        broker.share_states.ensure_topic().await
    } else if clustered {
        // In a cluster the group's coordinator is its partition's leader: the topic must exist.
        broker.groups.ensure_topic().await
    } else {
        Ok(())
    };
    let image = broker.image();
    let answer = |key: StrBytes| {
        let c = Coordinator::default().with_key(key.clone());
        if req.key_type == GROUP && !broker.authorize(ctx, operation::DESCRIBE, resource::GROUP, &key) {
            return c
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1)
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                .with_error_message(Some(StrBytes::from_static_str("Group authorization failed.")));
        }
        // Describe on the TransactionalId comes before the (missing) coordinator.
        if req.key_type == TRANSACTION && !broker.authorize(ctx, operation::DESCRIBE, resource::TRANSACTIONAL_ID, &key)
        {
            return c
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1)
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "Transactional Id authorization failed.",
                )));
        }
        if req.key_type == SHARE && !broker.authorize_cluster(ctx, operation::CLUSTER_ACTION) {
            return c
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1)
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        }
        let unavailable = |code: i16| {
            c.clone()
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1)
                .with_error_code(code)
        };
        let topic = match req.key_type {
            GROUP => OFFSETS_TOPIC,
            TRANSACTION => TRANSACTION_STATE_TOPIC,
            SHARE if is_share_key(&key) => SHARE_STATE_TOPIC,
            _ => return unavailable(ResponseError::InvalidRequest.code()),
        };
        if let (TRANSACTION | SHARE, Err(code)) | (GROUP, Err(code)) = (req.key_type, txn_topic) {
            if req.key_type != GROUP || clustered {
                return unavailable(code);
            }
        }
        if clustered {
            return match coordinator_endpoint(&image, topic, &key, &ctx.listener) {
                Some((id, host, port)) => c.clone().with_node_id(BrokerId(id)).with_host(host).with_port(port),
                None => unavailable(ResponseError::CoordinatorNotAvailable.code()),
            };
        }
        c.clone()
            .with_node_id(node)
            .with_host(StrBytes::from_string(endpoint.host.clone()))
            .with_port(endpoint.port as i32)
    };
    if ctx.api_version >= 4 {
        let coordinators = req.coordinator_keys.iter().cloned().map(answer).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = answer(req.key.clone());
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

/// "group:topicId:partition", as Kafka's SharePartitionKey takes it.
fn is_share_key(key: &str) -> bool {
    let mut parts = key.rsplitn(3, ':');
    let (Some(partition), Some(topic_id), Some(group)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !group.is_empty() && crate::metadata::parse_topic_id(topic_id).is_some() && partition.parse::<u32>().is_ok()
}

/// In a cluster: the leader of the key's state-topic partition, at its
/// endpoint for `listener` (none while the topic or its leader is missing).
fn coordinator_endpoint(image: &MetadataImage, topic: &str, key: &str, listener: &str) -> Option<(i32, StrBytes, i32)> {
    let t = image.topics.get(topic)?;
    let index = partition_for(key, t.partitions.len()) as i32;
    let leader = t.partition(index)?.leader;
    let b = image.brokers.get(&leader).filter(|b| !b.fenced)?;
    let e = b.endpoints.iter().find(|e| e.listener == listener)?;
    Some((leader, StrBytes::from_string(e.host.clone()), e.port as i32))
}
