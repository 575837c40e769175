//! In a cluster, admin requests that change metadata are run by the active
//! controller (Kafka forwards them in an Envelope, KIP-590): the request's
//! frame goes to it with who sent it, its answer comes back once committed,
//! and is given to the client once this node has published that metadata
//! too, so the client's next Metadata request sees the change.

use super::Broker;
use crate::api::RequestContext;
use crate::protocol::request::{parse_request, ParsedRequest, RequestError};
use crate::protocol::response::{Chunk, ResponseFrame};
use crate::quorum::rpc::{ForwardedRequest, ForwardedResponse, QuorumRequest, QuorumResponse};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use std::time::Duration;
use tracing::{debug, warn};

/// The APIs a broker forwards to the active controller (Kafka's forwardable
/// APIs that change metadata).
pub fn is_forwarded(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::CreatePartitions
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::CreateAcls
            | ApiKey::DeleteAcls
            | ApiKey::AlterClientQuotas
            | ApiKey::AlterUserScramCredentials
            | ApiKey::CreateDelegationToken
            | ApiKey::RenewDelegationToken
            | ApiKey::ExpireDelegationToken
            | ApiKey::DescribeQuorum
            | ApiKey::UnregisterBroker
            | ApiKey::UnregisterController
            | ApiKey::ElectLeaders
            | ApiKey::AlterPartitionReassignments
            | ApiKey::ListPartitionReassignments
            | ApiKey::AddRaftVoter
            | ApiKey::RemoveRaftVoter
            | ApiKey::UpdateFeatures
    )
}

/// Whether this request must run on another node.
pub fn must_forward(broker: &Broker, ctx: &RequestContext, api: ApiKey) -> bool {
    !ctx.forwarded && is_forwarded(api) && !broker.controller.is_active()
}

/// Runs the request on the active controller; Err closes the connection
/// (no controller answered in time: the client reconnects and retries).
pub async fn forward(
    broker: &Broker,
    ctx: &RequestContext,
    req: ParsedRequest,
) -> Result<Option<ResponseFrame>, RequestError> {
    let request = QuorumRequest::Forward(ForwardedRequest {
        listener: ctx.listener.clone(),
        peer: ctx.peer.to_string(),
        principal: ctx.principal.to_string(),
        frame: req.frame.to_vec(),
        from_node: ctx.node_id,
        token_requests_allowed: ctx.token_requests_allowed,
    });
    let deadline = tokio::time::Instant::now() + crate::metadata::controller::FORWARD_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            warn!(api = ?req.api_key, "no active controller answered the forwarded request in time");
            return Err(RequestError::Header("no active controller".into()));
        }
        match broker.controller.call_leader(&request, left).await {
            Ok((_, QuorumResponse::Forward(ForwardedResponse::Answered { frame, offset }))) => {
                let _ = tokio::time::timeout(left, broker.controller.wait_published(offset)).await;
                return Ok(Some(ResponseFrame(vec![Chunk::Bytes(Bytes::from(frame))])));
            }
            Ok((_, QuorumResponse::Forward(ForwardedResponse::NoResponse { .. }))) => return Ok(None),
            Ok((leader, answer)) => debug!(leader, ?answer, "forwarded request not run; retrying"),
            Err(e) => debug!(error = %e, "forwarding failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// As the active controller: runs a request another node forwarded.
pub async fn run_forwarded(broker: &Broker, forwarded: ForwardedRequest) -> ForwardedResponse {
    if !broker.controller.is_active() {
        return ForwardedResponse::NotController {
            leader: broker.controller.quorum().and_then(|q| q.leader()),
        };
    }
    let req = match parse_request(Bytes::from(forwarded.frame)) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "a forwarded request does not parse");
            return ForwardedResponse::NoResponse { offset: -1 };
        }
    };
    let ctx = RequestContext {
        listener: forwarded.listener,
        peer: forwarded.peer.parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        client_id: req.header.client_id.as_ref().map(|c| c.to_string()),
        api_version: req.version(),
        correlation_id: req.header.correlation_id,
        principal: forwarded.principal.into(),
        throttle_ms: Default::default(),
        forwarded: true,
        node_id: if forwarded.from_node >= 0 {
            forwarded.from_node
        } else {
            broker.node_id()
        },
        token_requests_allowed: forwarded.token_requests_allowed,
    };
    let answer = crate::protocol::dispatch::dispatch(broker, &ctx, req).await;
    let offset = broker.controller.published_offset();
    match answer.map(|frame| frame.map(|f| f.to_bytes())) {
        Ok(Some(Ok(frame))) => ForwardedResponse::Answered {
            frame: frame.to_vec(),
            offset,
        },
        Ok(Some(Err(e))) => {
            warn!(error = %e, "a forwarded request's answer could not be read");
            ForwardedResponse::NoResponse { offset }
        }
        Ok(None) => ForwardedResponse::NoResponse { offset },
        Err(e) => {
            warn!(error = %e, "a forwarded request was not served");
            ForwardedResponse::NoResponse { offset }
        }
    }
}
