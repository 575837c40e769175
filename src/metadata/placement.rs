//! Where a new partition's replicas go. Replicas are spread over the live
//! brokers so that leaders (each partition's first replica) are spread
//! evenly; a manual assignment is checked as Kafka checks it.

use super::controller::ControllerError;
use super::image::MetadataImage;

/// The brokers that may take new replicas: registered and not fenced. A
/// node that has not registered yet stands alone.
fn usable_brokers(image: &MetadataImage, self_id: i32) -> Vec<i32> {
    let live: Vec<i32> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.broker_id)
        .collect();
    if live.is_empty() {
        vec![self_id]
    } else {
        live
    }
}

fn is_registered(image: &MetadataImage, self_id: i32, broker: i32) -> bool {
    image.brokers.contains_key(&broker) || (image.brokers.is_empty() && broker == self_id)
}

/// Replicas for partitions `first..first + count`.
pub fn place(
    image: &MetadataImage,
    self_id: i32,
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let brokers = usable_brokers(image, self_id);
    let rf = replication_factor.max(0) as usize;
    if rf > brokers.len() {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
            brokers.len()
        )));
    }
    Ok((first..first.saturating_add(count.max(0)))
        .map(|p| (0..rf).map(|i| brokers[(p as usize + i) % brokers.len()]).collect())
        .collect())
}

/// Kafka's checks on a manual assignment (validateManualPartitionAssignment).
pub fn check_assignments(image: &MetadataImage, self_id: i32, assignments: &[Vec<i32>]) -> Result<(), ControllerError> {
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let mut replication_factor = None;
    for replicas in assignments {
        if replicas.is_empty() {
            return invalid("The manual partition assignment includes an empty replica list.".into());
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        for (i, b) in sorted.iter().enumerate() {
            if !is_registered(image, self_id, *b) {
                return invalid(format!(
                    "The manual partition assignment includes broker {b}, but no such broker is registered."
                ));
            }
            if i > 0 && sorted[i - 1] == *b {
                return invalid(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                ));
            }
        }
        match replication_factor {
            Some(rf) if rf != sorted.len() => {
                return invalid(format!(
                    "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                    sorted.len()
                ))
            }
            _ => replication_factor = Some(sorted.len()),
        }
    }
    Ok(())
}
