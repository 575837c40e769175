//! Controller membership (KIP-853): AddRaftVoter and RemoveRaftVoter, as
//! `kafka-metadata-quorum add-controller / remove-controller` send them, run
//! by the active controller (other nodes forward them). Only a dynamic quorum
//! (formatted with --standalone or --initial-controllers) changes its voters;
//! one of static `controller.quorum.voters` refuses, as Kafka's kraft.version
//! 0 does.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use crate::quorum::types::Node;
use crate::quorum::{Quorum, VoterChangeError};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::sync::Arc;
use std::time::Duration;

/// Why the request cannot change the voters here: (code, message).
fn refusal(broker: &Broker, ctx: &RequestContext, cluster_id: Option<&StrBytes>) -> Result<Arc<Quorum>, (i16, String)> {
    if !broker.authorize_cluster(ctx, operation::ALTER) {
        return Err((
            E::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        ));
    }
    if let Some(id) = cluster_id.filter(|id| id.as_str() != broker.cluster_id) {
        return Err((
            E::InconsistentClusterId.code(),
            format!(
                "The clusterId {} in the request does not match {}",
                id.as_str(),
                broker.cluster_id
            ),
        ));
    }
    let quorum = broker
        .controller
        .quorum()
        .filter(|_| broker.config.cluster.voters.is_empty());
    quorum.cloned().ok_or_else(|| {
        (
            E::UnsupportedVersion.code(),
            "Cluster doesn't support adding voter because the kraft.version feature is 0".into(),
        )
    })
}

fn code_of(e: &VoterChangeError) -> i16 {
    match e {
        VoterChangeError::NotLeader => E::NotLeaderOrFollower.code(),
        VoterChangeError::Duplicate(_) => E::DuplicateVoter.code(),
        VoterChangeError::NotAVoter(_) | VoterChangeError::WrongDirectory { .. } => E::VoterNotFound.code(),
        VoterChangeError::Failed(_) => E::RequestTimedOut.code(),
    }
}

pub async fn handle_add_raft_voter(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let fail = |(code, message): (i16, String)| {
        AddRaftVoterResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let quorum = match refusal(broker, ctx, req.cluster_id.as_ref()) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    // The controller listener it gave first (Kafka's controller.listener.names order).
    let Some(listener) = req.listeners.first() else {
        return fail((E::InvalidRequest.code(), "The voter has no listener".into()));
    };
    let node = Node::new(
        format!("{}:{}", listener.host.as_str(), listener.port),
        Some(req.voter_directory_id).filter(|d| !d.is_nil()),
    );
    let timeout = Duration::from_millis(req.timeout_ms.max(1) as u64);
    match tokio::time::timeout(timeout, quorum.add_voter(req.voter_id as u64, node)).await {
        Ok(Ok(())) => AddRaftVoterResponse::default(),
        Ok(Err(e)) => fail((code_of(&e), e.to_string())),
        Err(_) => fail((
            E::RequestTimedOut.code(),
            format!(
                "The voter {} did not catch up within {} ms",
                req.voter_id, req.timeout_ms
            ),
        )),
    }
}

pub async fn handle_remove_raft_voter(
    broker: &Broker,
    ctx: &RequestContext,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let fail = |(code, message): (i16, String)| {
        RemoveRaftVoterResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let quorum = match refusal(broker, ctx, req.cluster_id.as_ref()) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    match quorum.remove_voter(req.voter_id as u64, req.voter_directory_id).await {
        Ok(()) => RemoveRaftVoterResponse::default(),
        Err(e) => fail((code_of(&e), e.to_string())),
    }
}
