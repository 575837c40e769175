//! Request handlers, one file per API family. A handler takes the broker, a
//! small request context and the decoded request, and returns the response.

pub mod acls;
pub mod alter_configs;
pub mod api_versions;
pub mod cluster;
pub mod config_resources;
pub mod configs;
pub mod consumer_groups;
pub mod coordinator;
pub mod delegation_tokens;
pub mod delete_records;
pub mod features;
pub mod fetch;
pub mod groups;
pub mod leadership;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producers;
pub mod quorum;
pub mod quotas;
pub mod raft_voters;
pub mod reassignments;
pub mod replicas;
pub mod replication_wait;
pub mod sasl;
pub mod scram;
pub mod share_acks;
pub mod share_fetch;
pub mod share_group_offsets;
pub mod share_group_state;
pub mod share_groups;
pub mod streams_groups;
pub mod topics;
pub mod txn;

use crate::storage::LogError;
use kafka_protocol::ResponseError;
use std::net::SocketAddr;

/// What a handler may know about where a request came from.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub listener: String,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    pub api_version: i16,
    pub correlation_id: i32,
    /// "User:<name>": who the client proved to be (User:ANONYMOUS if nobody).
    pub principal: std::sync::Arc<str>,
    /// Set by a handler when a client quota throttles the client: the
    /// connection reads nothing more from it for this long (ms).
    pub throttle_ms: std::sync::Arc<std::sync::atomic::AtomicI32>,
    /// Sent on by another node (it runs here, the active controller).
    pub forwarded: bool,
    /// The node the client sent the request to (here, or the one that
    /// forwarded it): what "this broker" means in a BROKER config resource.
    pub node_id: i32,
    /// Whether this client may create, renew, expire and describe delegation
    /// tokens (Kafka's allowTokenRequests: authenticated, not through a
    /// token, not PLAINTEXT, not anonymous TLS).
    pub token_requests_allowed: bool,
}

impl RequestContext {
    /// The user name of the principal ("alice" for "User:alice"), as quotas name users.
    pub fn user(&self) -> &str {
        self.principal.strip_prefix("User:").unwrap_or(&self.principal)
    }

    /// Throttles the client: its quota says it must wait `ms`.
    pub fn throttle(&self, ms: i32) {
        self.throttle_ms.fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Kafka's "authorized operations not requested" marker.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Maps a storage error to the error code a client expects.
/// The name of the topic with id `id` (empty when no topic has it), for
/// requests that name topics by id (OffsetCommit v10, TxnOffsetCommit v6).
pub fn topic_name_by_id(image: &crate::metadata::MetadataImage, id: uuid::Uuid) -> kafka_protocol::messages::TopicName {
    let name = image.topics.by_id(id).map(|t| t.name.clone()).unwrap_or_default();
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(name))
}

pub fn log_error_code(e: &LogError) -> i16 {
    use crate::storage::batch::BatchError;
    match e {
        LogError::Io(_) => ResponseError::KafkaStorageError.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        // As Kafka's ProduceRequest.validateRecords: no whole batch, or not a
        // v2 batch, or not exactly one, is an invalid record...
        LogError::Batch(BatchError::Truncated | BatchError::UnsupportedMagic(_) | BatchError::Invalid(_)) => {
            ResponseError::InvalidRecord.code()
        }
        // ...while a batch that is there but damaged is corrupt.
        LogError::Batch(BatchError::InvalidLength(_) | BatchError::CrcMismatch { .. }) => {
            ResponseError::CorruptMessage.code()
        }
        LogError::ProducerState(crate::storage::producer_state::ProducerStateError::InvalidEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch.code()
        }
        LogError::ProducerState(_) => ResponseError::OutOfOrderSequenceNumber.code(),
        LogError::Deleted => ResponseError::UnknownTopicOrPartition.code(),
        // Only a follower's own appends meet this; never a client's request.
        LogError::UnexpectedAppendOffset { .. } => ResponseError::UnknownServerError.code(),
    }
}

/// Checks a client's view of the leader epoch against ours (-1: no check).
pub fn leader_epoch_error(requested: i32, current: i32) -> Option<i16> {
    if requested < 0 || requested == current {
        None
    } else if requested > current {
        Some(ResponseError::UnknownLeaderEpoch.code())
    } else {
        Some(ResponseError::FencedLeaderEpoch.code())
    }
}
