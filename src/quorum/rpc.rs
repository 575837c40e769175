//! The quorum's messages between nodes, on the controller listener. A frame
//! starts with an API key no Kafka API uses, so one listener serves both
//! Kafka's APIs and these; the body is JSON (metadata is small, and JSON is
//! what the metadata log holds already).

use super::types::{NodeId, QuorumTypes};
use crate::metadata::controller::{ControllerError, CreatedTopic, NewTopic};
use crate::metadata::records::{BrokerEndpoint, MetadataRecord};
use bytes::{BufMut, Bytes, BytesMut};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

/// The API key of the quorum's frames (Kafka's keys are below 100).
pub const QUORUM_API_KEY: i16 = 0x5171;

/// A Kafka request received by another node, run by the active controller
/// as if its client had sent it there (Kafka's Envelope, KIP-590).
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedRequest {
    pub listener: String,
    pub peer: String,
    pub principal: String,
    /// The request frame: header and body, as the client sent them.
    pub frame: Vec<u8>,
    /// The node the client sent it to (-1 from a node that did not say):
    /// requests naming "this broker" mean that one.
    #[serde(default = "unknown_node")]
    pub from_node: i32,
    /// Whether the client may manage delegation tokens (decided where it connected).
    #[serde(default)]
    pub token_requests_allowed: bool,
}

fn unknown_node() -> i32 {
    -1
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardedResponse {
    /// The response frame (without its size) and the metadata offset the
    /// controller had published when it answered.
    Answered { frame: Vec<u8>, offset: i64 },
    /// Nothing to send back (acks=0 has no forwardable API, but be total).
    NoResponse { offset: i64 },
    /// The receiver is not the active controller: try the one it names.
    NotController { leader: Option<NodeId> },
}

/// The controller's own operations, asked for by a node's broker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerOp {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    AllocateProducerIds,
    RegisterBroker {
        broker_id: i32,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        #[serde(default)]
        directory_id: Option<uuid::Uuid>,
        /// The broker process (a new one after every restart).
        #[serde(default)]
        incarnation_id: Option<uuid::Uuid>,
    },
    /// A broker is alive (or, shutting down, asks to be fenced first).
    Heartbeat {
        broker_id: i32,
        shutting_down: bool,
    },
    /// A controller process registers its endpoints.
    RegisterController(crate::metadata::records::ControllerRegistration),
    /// A partition leader asks for ISR changes (all it has pending).
    AlterPartitions(Vec<crate::metadata::controller::isr::AlterPartition>),
    /// A broker's replicas in a failed log directory (Kafka's heartbeat with
    /// offline log dirs): out of their ISRs, their leadership moved.
    ReplicasOffline {
        broker_id: i32,
        partitions: Vec<(uuid::Uuid, i32)>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerOpReply {
    CreateTopics(Vec<Result<CreatedTopic, ControllerError>>),
    AllocateProducerIds(i64, i64),
    RegisterBroker,
    RegisterController,
    Heartbeat,
    /// Each change's outcome, in the order asked.
    AlterPartitions(Vec<Result<(), ControllerError>>),
    ReplicasOffline,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum QuorumRequest {
    AppendEntries(AppendEntriesRequest<QuorumTypes>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<QuorumTypes>),
    Forward(ForwardedRequest),
    Controller(ControllerOp),
    /// A broker that is not a voter asks for the metadata after `after`
    /// (answered within a second, with nothing if nothing is newer).
    FetchMetadata {
        after: i64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum QuorumResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Forward(ForwardedResponse),
    /// The op's result, with the metadata offset it was published at.
    Controller(Result<(ControllerOpReply, i64), ControllerError>),
    /// The latest image as records at its offset (Kafka's brokers fetch the
    /// metadata log; whole images keep this simple while metadata is small).
    Metadata {
        leader: Option<NodeId>,
        image: Option<(i64, Vec<MetadataRecord>)>,
    },
    /// The frame did not decode.
    Malformed(String),
}

/// Whether a frame (after its size) is a quorum frame.
pub fn is_quorum_frame(frame: &[u8]) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == QUORUM_API_KEY
}

/// A request frame with its size: key, correlation id, JSON.
pub fn encode_request(correlation_id: i32, request: &QuorumRequest) -> Result<Bytes, serde_json::Error> {
    let body = serde_json::to_vec(request)?;
    let mut out = BytesMut::with_capacity(10 + body.len());
    out.put_i32(6 + body.len() as i32);
    out.put_i16(QUORUM_API_KEY);
    out.put_i32(correlation_id);
    out.put_slice(&body);
    Ok(out.freeze())
}

/// Reads a request frame (after its size): (correlation id, request).
pub fn decode_request(frame: &[u8]) -> Result<(i32, QuorumRequest), String> {
    if frame.len() < 6 || !is_quorum_frame(frame) {
        return Err("not a quorum frame".into());
    }
    let correlation_id = i32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]);
    serde_json::from_slice(&frame[6..])
        .map(|r| (correlation_id, r))
        .map_err(|e| format!("quorum request does not decode: {e}"))
}

/// A response frame with its size: correlation id, JSON.
pub fn encode_response(correlation_id: i32, response: &QuorumResponse) -> Bytes {
    let body = serde_json::to_vec(response)
        .unwrap_or_else(|e| serde_json::to_vec(&QuorumResponse::Malformed(e.to_string())).unwrap_or_default());
    let mut out = BytesMut::with_capacity(8 + body.len());
    out.put_i32(4 + body.len() as i32);
    out.put_i32(correlation_id);
    out.put_slice(&body);
    out.freeze()
}

/// Reads a response frame (after its size).
pub fn decode_response(frame: &[u8]) -> Result<(i32, QuorumResponse), String> {
    if frame.len() < 4 {
        return Err("short quorum response".into());
    }
    let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    serde_json::from_slice(&frame[4..])
        .map(|r| (correlation_id, r))
        .map_err(|e| format!("quorum response does not decode: {e}"))
}
