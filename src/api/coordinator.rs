//! FindCoordinator: on a single node, this node coordinates every group and
//! every transactional id (creating `__transaction_state` on first use, as
//! Kafka does).

use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub async fn handle_find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let endpoint = broker.endpoint_for(&ctx.listener);
    let node = BrokerId(broker.node_id());
    // As Kafka, the first lookup of a transaction coordinator creates its topic.
    let txn_topic = if req.key_type == TRANSACTION {
        broker.txns.ensure_topic().await
    } else {
        Ok(())
    };
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
        let unavailable = |code: i16| {
            c.clone()
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1)
                .with_error_code(code)
        };
        match req.key_type {
            GROUP => {}
            TRANSACTION => {
                if let Err(code) = txn_topic {
                    return unavailable(code);
                }
            }
            _ => return unavailable(ResponseError::InvalidRequest.code()),
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
