//! `ControllerError`: why the controller refused a change, with the Kafka
//! error code and wording clients expect.

use kafka_protocol::ResponseError as E;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, Clone, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    #[error("{0}")]
    InvalidRequest(String),
    /// Kafka's controller refuses an operation of more than 10,000 records,
    #[error("Unable to perform excessively large batch operation.")]
    ExcessivelyLargeBatch,
    /// a CreateTopics of more than 10,000 partitions in all,
    #[error("Excessively large number of partitions per request.")]
    TooManyPartitions,
    /// and a CreatePartitions adding more than 10,000.
    #[error("Excessively large number of additional partitions per request.")]
    TooManyAdditionalPartitions,
    /// Not allowed: on a topic (true) or on the cluster (false).
    #[error("Authorization failed.")]
    NotAuthorized(bool),
    /// Not allowed on a group.
    #[error("Authorization failed.")]
    GroupNotAuthorized,
    #[error("metadata log error: {0}")]
    Storage(String),
    #[error("The controller is shutting down.")]
    ShuttingDown,
    #[error("Broker ID {0} is not currently registered")]
    BrokerIdNotRegistered(i32),
    #[error("Controller ID {0} is not currently registered.")]
    ControllerIdNotRegistered(i32),
    #[error(
        "For requests intended only for the leader, this error indicates that the broker is not the current leader."
    )]
    NotLeaderOrFollower,
    #[error("The leader epoch in the request is older than the epoch on the broker.")]
    FencedLeaderEpoch,
    #[error("The given version of the partition is not the current one.")]
    InvalidUpdateVersion,
    #[error("{0}")]
    IneligibleReplica(String),
    /// UpdateFeatures: a level this cluster cannot move to.
    #[error("{0}")]
    InvalidFeatureUpdate(String),
    /// A broker registering with a new incarnation while the old one's
    /// session is still valid (it restarted faster than the session
    /// timeout): refused until the session expires and it is fenced.
    #[error("Another broker is registered with that broker id. If the broker was recently restarted this should self-resolve once the heartbeat manager expires the broker's session.")]
    DuplicateBrokerRegistration,
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    /// This node is not the active controller (any more).
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    /// No active controller could be reached in time.
    #[error("{0}")]
    QuorumUnavailable(String),
}

impl ControllerError {
    pub fn code(&self) -> i16 {
        match self {
            ControllerError::TopicAlreadyExists(_) => E::TopicAlreadyExists.code(),
            ControllerError::InvalidTopic(_) => E::InvalidTopicException.code(),
            ControllerError::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
            ControllerError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            ControllerError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor.code(),
            ControllerError::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment.code(),
            ControllerError::InvalidConfig(_) => E::InvalidConfig.code(),
            ControllerError::TopicDeletionDisabled => E::TopicDeletionDisabled.code(),
            ControllerError::InvalidRequest(_) => E::InvalidRequest.code(),
            ControllerError::ExcessivelyLargeBatch
            | ControllerError::TooManyPartitions
            | ControllerError::TooManyAdditionalPartitions => E::PolicyViolation.code(),
            ControllerError::NotAuthorized(true) => E::TopicAuthorizationFailed.code(),
            ControllerError::NotAuthorized(false) => E::ClusterAuthorizationFailed.code(),
            ControllerError::GroupNotAuthorized => E::GroupAuthorizationFailed.code(),
            ControllerError::Storage(_) => E::KafkaStorageError.code(),
            ControllerError::ShuttingDown | ControllerError::QuorumUnavailable(_) => E::RequestTimedOut.code(),
            ControllerError::NotController => E::NotController.code(),
            ControllerError::BrokerIdNotRegistered(_) => E::BrokerIdNotRegistered.code(),
            // Kafka 4.4's CONTROLLER_ID_NOT_REGISTERED, newer than the crate's list.
            ControllerError::ControllerIdNotRegistered(_) => 136,
            ControllerError::NotLeaderOrFollower => E::NotLeaderOrFollower.code(),
            ControllerError::FencedLeaderEpoch => E::FencedLeaderEpoch.code(),
            ControllerError::InvalidUpdateVersion | ControllerError::InvalidFeatureUpdate(_) => {
                E::InvalidUpdateVersion.code()
            }
            ControllerError::IneligibleReplica(_) => E::IneligibleReplica.code(),
            ControllerError::DuplicateBrokerRegistration => E::DuplicateBrokerRegistration.code(),
            ControllerError::NoReassignmentInProgress => E::NoReassignmentInProgress.code(),
        }
    }
}
