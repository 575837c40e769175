//! The quorum's types for openraft: an entry carries one batch of metadata
//! records (applied whole), and applying it answers with the metadata offset
//! of the batch's last record.

use crate::metadata::records::MetadataRecord;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// The records one controller operation produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

/// The metadata offset an entry left the image at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub offset: i64,
}

openraft::declare_raft_types!(
    pub QuorumTypes:
        D = MetadataBatch,
        R = Applied,
);

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Raft = openraft::Raft<QuorumTypes>;
pub type Entry = openraft::Entry<QuorumTypes>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
