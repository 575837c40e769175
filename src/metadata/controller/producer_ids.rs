//! Blocks of producer ids for brokers (Kafka's AllocateProducerIds): a
//! block is recorded as handed out before any id in it is used, so ids are
//! never reused, even across crashes.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::records::MetadataRecord;
use crate::quorum::rpc::{ControllerOp, ControllerOpReply};

/// Ids per block, as Kafka hands them out.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

impl Controller {
    /// A new block of ids: (first id, how many).
    pub async fn allocate_producer_ids(&self) -> Result<(i64, i64), ControllerError> {
        match self.run(ControllerOp::AllocateProducerIds).await? {
            ControllerOpReply::AllocateProducerIds(first, count) => Ok((first, count)),
            other => Err(ControllerError::QuorumUnavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    pub(super) async fn allocate_producer_ids_here(&self) -> Result<(i64, i64), ControllerError> {
        self.write(|image, _| {
            let first = image.next_producer_id;
            let record = MetadataRecord::ProducerIds {
                next_producer_id: first + PRODUCER_ID_BLOCK,
            };
            ControllerResult::of(vec![record], (first, PRODUCER_ID_BLOCK))
        })
        .await
    }
}
