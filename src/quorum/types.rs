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

/// A member of the quorum: its controller listener address and, in a
/// dynamic quorum (KIP-853), its metadata directory id. Serialized as
/// openraft's BasicNode when there is no directory id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<uuid::Uuid>,
}

impl Node {
    pub fn new(addr: impl Into<String>, directory_id: Option<uuid::Uuid>) -> Node {
        Node {
            addr: addr.into(),
            directory_id,
        }
    }
}

openraft::declare_raft_types!(
    pub QuorumTypes:
        D = MetadataBatch,
        R = Applied,
        Node = Node,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<QuorumTypes>;
pub type Entry = openraft::Entry<QuorumTypes>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
