//! ISR changes asked by partition leaders (Kafka's AlterPartition, in
//! ReplicationControlManager): checked against the partition's current
//! leader, leader epoch and partition epoch, so that a stale leader or a
//! change made on an outdated ISR is refused; new members must be live
//! replicas. A committed change bumps the partition epoch. A leader sends
//! every change it has pending in one request, as Kafka's brokers do: each
//! partition is answered on its own, and the accepted ones are written
//! together.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::{MetadataRecord, PartitionRecord};
use crate::quorum::rpc::{ControllerOp, ControllerOpReply};
use crate::replication::IsrChange;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One partition's ISR change as sent to the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterPartition {
    pub broker_id: i32,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

impl AlterPartition {
    pub fn from_change(broker_id: i32, change: &IsrChange) -> AlterPartition {
        AlterPartition {
            broker_id,
            topic_id: change.topic_id,
            partition: change.partition,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change.new_isr.clone(),
        }
    }
}

impl Controller {
    /// Asks the active controller for several ISR changes at once: each
    /// one's outcome, in order.
    pub async fn alter_partitions(
        &self,
        requests: Vec<AlterPartition>,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        match self.run(ControllerOp::AlterPartitions(requests)).await? {
            ControllerOpReply::AlterPartitions(outcomes) => Ok(outcomes),
            other => Err(ControllerError::QuorumUnavailable(format!(
                "AlterPartition answered {other:?}"
            ))),
        }
    }

    pub(super) async fn alter_partitions_here(
        &self,
        requests: Vec<AlterPartition>,
    ) -> Result<ControllerOpReply, ControllerError> {
        self.write(move |image, _| {
            let mut records = Vec::new();
            let mut changed = HashSet::new();
            let outcomes = requests
                .iter()
                .map(|request| {
                    // A second change of one partition in a request was made
                    // on the epoch the first one replaces.
                    if changed.contains(&(request.topic_id, request.partition)) {
                        return Err(ControllerError::InvalidUpdateVersion);
                    }
                    let record = checked_change(image, request)?;
                    changed.insert((request.topic_id, request.partition));
                    records.push(MetadataRecord::Partition(record));
                    Ok(())
                })
                .collect();
            // Each partition's change stands alone (any number of them, in
            // Raft entries of bounded size).
            ControllerResult::non_atomic(records, Ok(ControllerOpReply::AlterPartitions(outcomes)))
        })
        .await?
    }
}

/// The partition's record after `request`'s change, if the change may be made.
fn checked_change(image: &MetadataImage, request: &AlterPartition) -> Result<PartitionRecord, ControllerError> {
    let topic = image
        .topics
        .by_id(request.topic_id)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let p = topic
        .partition(request.partition)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    if p.leader != request.broker_id {
        return Err(ControllerError::NotLeaderOrFollower);
    }
    if request.leader_epoch < p.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch);
    }
    if request.partition_epoch != p.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion);
    }
    if !request.new_isr.contains(&p.leader) {
        return Err(ControllerError::InvalidRequest(
            "The new ISR does not contain the leader".into(),
        ));
    }
    for r in &request.new_isr {
        let live = image.brokers.get(r).is_some_and(|b| !b.fenced);
        if !p.replicas.contains(r) || (!p.isr.contains(r) && !live) {
            return Err(ControllerError::IneligibleReplica(format!(
                "Rejecting AlterPartition request from node {} for {}-{} because it specified \
                 ineligible replicas [{r}] in the new ISR",
                request.broker_id, topic.name, request.partition
            )));
        }
    }
    let mut record = p.to_record(topic.id, request.partition);
    record.isr = request.new_isr.clone();
    record.partition_epoch = p.partition_epoch + 1;
    // The replica that joins may be the last a reassignment waited for.
    super::reassignments::complete_if_ready(&mut record, p, &|id| image.brokers.get(&id).is_some_and(|b| !b.fenced));
    Ok(record)
}
