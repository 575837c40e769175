//! A share-partition leader's side of durable state: a share-partition is
//! loaded from what the share coordinator holds before it is first used
//! here, and what changes (acknowledgements, released records, a moved
//! start) is written back before the change is answered, one write at a
//! time per share-partition, each with the whole state in flight.

use super::partition::SharePartition;
use super::persister::Persister;
use super::state::records::StateKey;
use super::state::shard::{StateWrite, UNINITIALIZED};
use super::{ShareKey, ShareManager};
use kafka_protocol::ResponseError as E;
use tracing::debug;

fn state_key(key: &ShareKey) -> StateKey {
    StateKey {
        group: key.group.clone(),
        topic_id: key.topic_id,
        partition: key.partition,
    }
}

/// Makes sure `key` is loaded here: from its written state, else started at
/// `start()` (the group's share.auto.offset.reset).
pub async fn ensure_loaded(
    shares: &ShareManager,
    persister: &Persister<'_>,
    key: &ShareKey,
    leader_epoch: i32,
    start: impl FnOnce() -> i64,
) -> Result<(), i16> {
    if shares.is_initialized(key) {
        return Ok(());
    }
    let lock = shares.key_lock(key);
    let _one_at_a_time = lock.lock().await;
    if shares.is_initialized(key) {
        return Ok(());
    }
    let state_key = state_key(key);
    let read = match persister.read(&state_key, leader_epoch).await {
        // Never initialized (Kafka's group coordinator does that when it first
        // assigns the partition): with no start, so this leader picks it.
        Err(code) if code == E::InvalidRequest.code() => {
            let code = persister.initialize(&state_key, 0, UNINITIALIZED).await;
            if code != 0 {
                return Err(code);
            }
            persister.read(&state_key, leader_epoch).await?
        }
        other => other?,
    };
    let partition = if read.start_offset == UNINITIALIZED {
        let mut p = SharePartition::new(start());
        p.state_epoch = read.state_epoch;
        p.leader_epoch = leader_epoch;
        p
    } else {
        SharePartition::from_state(read.start_offset, &read.batches, read.state_epoch, leader_epoch)
    };
    shares.install(key.clone(), partition);
    Ok(())
}

/// Writes `key`'s state if it changed; 0, or why it could not be written
/// (then it is written with the next change, or reloaded when fenced).
pub async fn persist(shares: &ShareManager, persister: &Persister<'_>, key: &ShareKey) -> i16 {
    let lock = shares.key_lock(key);
    let _one_at_a_time = lock.lock().await;
    let Some(state) = shares.with(key, |p| p.take_changes()).flatten() else {
        return 0;
    };
    let write = StateWrite {
        state_epoch: state.state_epoch,
        leader_epoch: state.leader_epoch,
        start_offset: state.start_offset,
        delivery_complete_count: state.delivery_complete_count,
        batches: state.batches,
    };
    let code = persister.write(&state_key(key), write).await;
    if code == E::FencedStateEpoch.code() || code == E::FencedLeaderEpoch.code() {
        // Someone else's state now (a new leader, offsets reset): read it anew.
        debug!(
            group = key.group,
            partition = key.partition,
            code,
            "share-partition state fenced; reloading"
        );
        shares.unload(key);
    } else if code != 0 {
        shares.with(key, |p| p.mark_dirty());
    }
    code
}

/// Writes each key's changes; the first error.
pub async fn persist_all(shares: &ShareManager, persister: &Persister<'_>, keys: &[ShareKey]) -> i16 {
    let mut first = 0;
    for key in keys {
        let code = persist(shares, persister, key).await;
        if first == 0 {
            first = code;
        }
    }
    first
}

/// Releases what `member` held in `partitions` (its session closed), writes
/// the result, and lets go of share-partitions no one reads any more.
pub async fn release_member(
    shares: &ShareManager,
    persister: &Persister<'_>,
    group: &str,
    member: &str,
    partitions: &[(uuid::Uuid, i32)],
    limits: &super::partition::ShareLimits,
) {
    let touched = shares.release_member(group, member, partitions, limits);
    for key in &touched {
        if persist(shares, persister, key).await == 0 {
            shares.unload_if_unread(key);
        }
    }
}

/// The share-partitions a group is known to have state for here: those it
/// was given on this broker, and those whose state this broker's share
/// coordinator holds.
pub async fn known_keys(
    shares: &ShareManager,
    states: &super::state::ShareStateCoordinator,
    group: &str,
) -> std::collections::BTreeSet<ShareKey> {
    let mut keys: std::collections::BTreeSet<ShareKey> = shares.assigned_of(group).into_iter().collect();
    keys.extend(states.keys_of(group).await.into_iter().map(|k| ShareKey {
        group: k.group,
        topic_id: k.topic_id,
        partition: k.partition,
    }));
    keys
}

/// Deletes the written state of `keys` and forgets them here; the first error.
pub async fn delete_state(shares: &ShareManager, persister: &Persister<'_>, keys: &[ShareKey]) -> i16 {
    let mut first = 0;
    for key in keys {
        let code = persister.delete(&state_key(key)).await;
        if first == 0 {
            first = code;
        }
        shares.forget(&key.group, |k| k == key);
    }
    first
}

/// Sets a share-partition's start offset at the share coordinator under a
/// new state epoch (fencing what any leader holds), as AlterShareGroupOffsets.
pub async fn reset_state(shares: &ShareManager, persister: &Persister<'_>, key: &ShareKey, offset: i64) -> i16 {
    let state_key = state_key(key);
    let state_epoch = match persister.summary(&state_key).await {
        Ok(s) => s.state_epoch,
        Err(code) => return code,
    };
    let code = persister.initialize(&state_key, state_epoch + 1, offset).await;
    if code == 0 {
        shares.reset(key.clone());
    }
    code
}

/// A share-partition's start offset and the records done with above it, as
/// last written (None: never written).
pub async fn written_offsets(persister: &Persister<'_>, key: &ShareKey) -> Result<Option<(i64, i64)>, i16> {
    let summary = persister.summary(&state_key(key)).await?;
    Ok((summary.start_offset != UNINITIALIZED)
        .then_some((summary.start_offset, i64::from(summary.delivery_complete_count.max(0)))))
}
