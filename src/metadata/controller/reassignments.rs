//! Partition reassignment (KIP-455, Kafka's ReplicationControlManager and
//! PartitionChangeBuilder): AlterPartitionReassignments puts the target
//! replicas and those leaving into the partition's replica list, marking
//! which are joining and which leaving; the joining ones fetch from the
//! leader like any follower, and once every target replica is in the ISR the
//! change that admits the last of them also drops the leaving ones (a new
//! leader from the target when the old one leaves, and a new leader epoch).
//! A cancel puts the original replicas back.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::{MetadataImage, PartitionRegistration};
use crate::metadata::placement;
use crate::metadata::records::{MetadataRecord, PartitionRecord};
use tracing::info;

/// One partition of an AlterPartitionReassignments: its target replicas,
/// or None to cancel the reassignment in progress.
#[derive(Debug, Clone)]
pub struct Reassign {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
}

/// A reassignment in progress, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

fn without(list: &[i32], gone: &[i32]) -> Vec<i32> {
    list.iter().copied().filter(|r| !gone.contains(r)).collect()
}

/// Finishes the reassignment of the partition `record` describes when every
/// replica it keeps is in its ISR (Kafka's completeReassignmentIfNeeded, then
/// the election when the leader is not kept). `before` is the partition as
/// the image has it; the caller has bumped the partition epoch.
pub(super) fn complete_if_ready(
    record: &mut PartitionRecord,
    before: &PartitionRegistration,
    live: &dyn Fn(i32) -> bool,
) {
    if record.adding_replicas.is_empty() && record.removing_replicas.is_empty() {
        return;
    }
    let isr = without(&record.isr, &record.removing_replicas);
    let replicas = without(&record.replicas, &record.removing_replicas);
    if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
        return;
    }
    record.replicas = replicas;
    record.isr = isr;
    record.adding_replicas.clear();
    record.removing_replicas.clear();
    elect_if_needed(record, live);
    if record.leader != before.leader || !before.replicas.iter().all(|r| record.replicas.contains(r)) {
        // Replicas that left must not be taken for followers of this epoch.
        record.leader_epoch = before.leader_epoch + 1;
    }
}

/// Keeps the leader if it is in the ISR and live, else the first replica that is.
fn elect_if_needed(record: &mut PartitionRecord, live: &dyn Fn(i32) -> bool) {
    if record.leader >= 0 && record.isr.contains(&record.leader) && live(record.leader) {
        return;
    }
    record.leader = record
        .replicas
        .iter()
        .copied()
        .find(|r| record.isr.contains(r) && live(*r))
        .unwrap_or(-1);
}

/// The record that starts (or changes) the reassignment of `p` to `target`,
/// or None when it has nothing to change (Kafka's changePartitionReassignment).
fn change(
    image: &MetadataImage,
    node_id: i32,
    topic_id: uuid::Uuid,
    index: i32,
    p: &PartitionRegistration,
    target: &[i32],
) -> Result<Option<PartitionRecord>, ControllerError> {
    placement::check_replica_list(image, node_id, target)?;
    let removing: Vec<i32> = {
        let mut r = without(&p.replicas, target);
        r.sort_unstable();
        r
    };
    let adding: Vec<i32> = {
        let mut a = without(target, &p.replicas);
        a.sort_unstable();
        a
    };
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    let mut record = p.to_record(topic_id, index);
    record.replicas = replicas;
    record.adding_replicas = adding;
    record.removing_replicas = removing;
    let live = |id: i32| placement::is_active(image, node_id, id);
    complete_if_ready(&mut record, p, &live);
    if record.adding_replicas.is_empty() && record.removing_replicas.is_empty() {
        // Done at once (the target was already in the ISR): the leader may move.
        elect_if_needed(&mut record, &live);
        if record.leader != p.leader {
            record.leader_epoch = p.leader_epoch + 1;
        }
    }
    if record == p.to_record(topic_id, index) {
        return Ok(None);
    }
    record.partition_epoch = p.partition_epoch + 1;
    Ok(Some(record))
}

/// The record that reverts the reassignment of `p` (Kafka's
/// PartitionReassignmentRevert): the original replicas, the ISR without the
/// joining ones — or the first original replica alone when only joining ones
/// were in sync, which is an unclean election and needs the topic to allow it.
fn cancel(
    image: &MetadataImage,
    node_id: i32,
    topic: &str,
    topic_id: uuid::Uuid,
    index: i32,
    p: &PartitionRegistration,
    unclean_allowed: bool,
) -> Result<PartitionRecord, ControllerError> {
    if !p.is_reassigning() {
        return Err(ControllerError::NoReassignmentInProgress);
    }
    let replicas = without(&p.replicas, &p.adding_replicas);
    let mut isr = without(&p.isr, &p.adding_replicas);
    if isr.is_empty() {
        let Some(first) = replicas.first() else {
            return Err(ControllerError::InvalidReplicaAssignment(
                "Invalid replica assignment: addingReplicas contains all replicas.".into(),
            ));
        };
        if !unclean_allowed {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Unable to revert partition assignment for {topic}:{index} because it would require an unclean \
                 leader election."
            )));
        }
        isr = vec![*first];
    }
    let mut record = p.to_record(topic_id, index);
    record.replicas = replicas;
    record.isr = isr;
    record.adding_replicas.clear();
    record.removing_replicas.clear();
    elect_if_needed(&mut record, &|id| placement::is_active(image, node_id, id));
    if record.leader != p.leader || !p.replicas.iter().all(|r| record.replicas.contains(r)) {
        record.leader_epoch = p.leader_epoch + 1;
    }
    record.partition_epoch = p.partition_epoch + 1;
    Ok(record)
}

/// Every reassignment in progress, of the given partitions (None: all).
pub fn ongoing(image: &MetadataImage, wanted: Option<&[(String, Vec<i32>)]>) -> Vec<Ongoing> {
    let describe = |name: &str, index: i32, p: &PartitionRegistration| Ongoing {
        topic: name.to_string(),
        partition: index,
        replicas: p.replicas.clone(),
        adding: p.adding_replicas.clone(),
        removing: p.removing_replicas.clone(),
    };
    let mut out = Vec::new();
    match wanted {
        None => {
            for t in image.topics.iter() {
                for (i, p) in t.partitions.iter().enumerate() {
                    if p.is_reassigning() {
                        out.push(describe(&t.name, i as i32, p));
                    }
                }
            }
        }
        Some(wanted) => {
            for (name, indexes) in wanted {
                let Some(t) = image.topics.get(name) else { continue };
                for i in indexes {
                    if let Some(p) = t.partition(*i).filter(|p| p.is_reassigning()) {
                        out.push(describe(name, *i, p));
                    }
                }
            }
        }
    }
    out
}

impl Controller {
    /// AlterPartitionReassignments: each partition's outcome in order. The
    /// records of those accepted are written together.
    pub async fn alter_partition_reassignments(
        &self,
        wanted: Vec<Reassign>,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        self.write(move |image, config| {
            let unclean = super::fencing::unclean_allowed(image, config);
            let mut records = Vec::new();
            let mut results = Vec::new();
            for r in wanted {
                let outcome = (|| {
                    let topic = image
                        .topics
                        .get(&r.topic)
                        .ok_or(ControllerError::UnknownTopicOrPartition)?;
                    let p = topic
                        .partition(r.partition)
                        .ok_or(ControllerError::UnknownTopicOrPartition)?;
                    let record = match &r.target {
                        None => Some(cancel(
                            image,
                            config.node_id,
                            &topic.name,
                            topic.id,
                            r.partition,
                            p,
                            unclean(&topic.name),
                        )?),
                        Some(target) => change(image, config.node_id, topic.id, r.partition, p, target)?,
                    };
                    if let Some(record) = record {
                        info!(topic = %r.topic, partition = r.partition, replicas = ?record.replicas,
                            adding = ?record.adding_replicas, removing = ?record.removing_replicas,
                            cancel = r.target.is_none(), "partition reassignment");
                        records.push(MetadataRecord::Partition(record));
                    }
                    Ok(())
                })();
                results.push(outcome);
            }
            ControllerResult::of(records, results)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(replicas: &[i32], isr: &[i32], leader: i32, adding: &[i32], removing: &[i32]) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 3,
            partition_epoch: 9,
            adding_replicas: adding.to_vec(),
            removing_replicas: removing.to_vec(),
        }
    }

    fn record_of(p: &PartitionRegistration) -> PartitionRecord {
        p.to_record(uuid::Uuid::nil(), 0)
    }

    #[test]
    fn not_done_while_a_joining_replica_is_out_of_the_isr() {
        // [1,2,3] -> [4,2,3]: replicas [4,2,3,1], 4 joining, 1 leaving.
        let p = reg(&[4, 2, 3, 1], &[1, 2, 3], 1, &[4], &[1]);
        let mut r = record_of(&p);
        complete_if_ready(&mut r, &p, &|_| true);
        assert_eq!(r, record_of(&p));
    }

    #[test]
    fn done_when_every_target_replica_is_in_sync_and_the_leaving_leader_hands_over() {
        let p = reg(&[4, 2, 3, 1], &[1, 2, 3], 1, &[4], &[1]);
        let mut r = record_of(&p);
        r.isr = vec![1, 2, 3, 4];
        complete_if_ready(&mut r, &p, &|_| true);
        assert_eq!((r.replicas.clone(), r.isr.clone()), (vec![4, 2, 3], vec![2, 3, 4]));
        assert!(r.adding_replicas.is_empty() && r.removing_replicas.is_empty());
        assert_eq!(
            (r.leader, r.leader_epoch),
            (4, 4),
            "the first target replica in sync leads, in a new epoch"
        );
    }

    #[test]
    fn a_kept_leader_stays_but_the_epoch_moves_when_replicas_left() {
        let p = reg(&[2, 4, 3, 1], &[1, 2, 3], 2, &[4], &[1]);
        let mut r = record_of(&p);
        r.isr = vec![1, 2, 3, 4];
        complete_if_ready(&mut r, &p, &|_| true);
        assert_eq!((r.leader, r.leader_epoch), (2, 4));
    }

    #[test]
    fn a_fenced_target_replica_does_not_lead() {
        let p = reg(&[4, 2, 3, 1], &[1, 2, 3], 1, &[4], &[1]);
        let mut r = record_of(&p);
        r.isr = vec![1, 2, 3, 4];
        complete_if_ready(&mut r, &p, &|id| id != 4);
        assert_eq!(r.leader, 2);
    }

    #[test]
    fn cancel_puts_the_original_replicas_back() {
        let image = MetadataImage::default();
        let p = reg(&[4, 2, 3, 1], &[1, 2, 3], 1, &[4], &[1]);
        let r = cancel(&image, 1, "t", uuid::Uuid::nil(), 0, &p, false).expect("cancel");
        assert_eq!((r.replicas, r.isr), (vec![2, 3, 1], vec![1, 2, 3]));
        assert!(r.adding_replicas.is_empty() && r.removing_replicas.is_empty());
        assert_eq!(r.partition_epoch, 10);
    }

    #[test]
    fn cancel_needs_an_unclean_election_when_only_joining_replicas_are_in_sync() {
        let image = MetadataImage::default();
        let p = reg(&[4, 1], &[4], 4, &[4], &[1]);
        let e = cancel(&image, 1, "t", uuid::Uuid::nil(), 0, &p, false).expect_err("refused");
        assert_eq!(e.code(), 39, "INVALID_REPLICA_ASSIGNMENT: {e}");
        let none = reg(&[1, 2], &[1, 2], 1, &[], &[]);
        let e = cancel(&image, 1, "t", uuid::Uuid::nil(), 0, &none, false).expect_err("refused");
        assert_eq!(e.code(), 85, "NO_REASSIGNMENT_IN_PROGRESS: {e}");
    }
}
