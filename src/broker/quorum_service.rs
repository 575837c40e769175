//! Serves the quorum's frames on the controller listener: openraft's RPCs
//! from the other controllers, requests forwarded by other nodes, and the
//! controller's own operations asked for by other nodes' brokers.

use super::Broker;
use crate::metadata::ControllerError;
use crate::quorum::rpc::{decode_request, encode_response, QuorumRequest, QuorumResponse};
use bytes::Bytes;
use std::time::Duration;

pub async fn serve(broker: &Broker, frame: &[u8]) -> Bytes {
    let (correlation_id, request) = match decode_request(frame) {
        Ok(r) => r,
        Err(e) => return encode_response(0, &QuorumResponse::Malformed(e)),
    };
    let quorum = broker.controller.quorum();
    let not_a_controller = || QuorumResponse::Malformed("this node is not a controller".into());
    let response = match request {
        QuorumRequest::AppendEntries(r) => match quorum {
            Some(q) => QuorumResponse::AppendEntries(q.raft().append_entries(r).await),
            None => not_a_controller(),
        },
        QuorumRequest::Vote(r) => match quorum {
            Some(q) => QuorumResponse::Vote(q.raft().vote(r).await),
            None => not_a_controller(),
        },
        QuorumRequest::InstallSnapshot(r) => match quorum {
            Some(q) => QuorumResponse::InstallSnapshot(q.raft().install_snapshot(r).await),
            None => not_a_controller(),
        },
        QuorumRequest::Forward(f) => QuorumResponse::Forward(super::forwarding::run_forwarded(broker, f).await),
        QuorumRequest::FetchMetadata { after } => match quorum {
            Some(q) => {
                let mut images = q.subscribe();
                let newer = tokio::time::timeout(Duration::from_secs(1), images.wait_for(|i| i.offset > after)).await;
                let image = match newer {
                    Ok(Ok(image)) => Some(image.clone()),
                    _ => None,
                };
                QuorumResponse::Metadata {
                    leader: q.leader(),
                    image: image.map(|i| (i.offset, i.to_records())),
                }
            }
            None => not_a_controller(),
        },
        QuorumRequest::Controller(op) => {
            let controller = &broker.controller;
            QuorumResponse::Controller(if controller.is_active() {
                controller
                    .execute(op)
                    .await
                    .map(|reply| (reply, controller.published_offset()))
            } else {
                Err(ControllerError::NotController)
            })
        }
    };
    encode_response(correlation_id, &response)
}
