//! How one member of a KIP-848 consumer group reaches its target
//! assignment (Kafka's CurrentAssignmentBuilder): it revokes before it moves
//! to the new epoch, and takes a partition only once its owner let it go.

use super::consumer_group::{Assignment, ConsumerGroup, ConsumerMember, MemberState};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Moves one member towards its target (Kafka's CurrentAssignmentBuilder).
/// `owned`: what the member says it holds (None: unchanged).
pub(super) fn reconcile(cg: &mut ConsumerGroup, member_id: &str, owned: Option<&Assignment>, now: i64) {
    let target_epoch = cg.assignment_epoch;
    let target = cg.target.get(member_id).cloned().unwrap_or_default();
    let owners: BTreeMap<(Uuid, i32), String> = cg
        .owners()
        .into_iter()
        .filter(|(_, owner)| *owner != member_id)
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let Some(m) = cg.members.get_mut(member_id) else { return };
    match m.state {
        MemberState::Stable if m.member_epoch != target_epoch => {
            next_assignment(m, target_epoch, &target, &owners, owned, now);
        }
        MemberState::UnrevokedPartitions => {
            let still_owned = owned.is_none_or(|o| {
                m.pending_revocation
                    .iter()
                    .any(|(t, ps)| o.get(t).is_some_and(|op| ps.iter().any(|p| op.contains(p))))
            });
            if !still_owned {
                m.pending_revocation.clear();
                m.revocation_deadline = None;
                next_assignment(m, target_epoch, &target, &owners, owned, now);
            }
        }
        MemberState::UnreleasedPartitions => {
            next_assignment(m, target_epoch, &target, &owners, owned, now);
        }
        MemberState::Stable => {}
    }
}

fn next_assignment(
    m: &mut ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    others: &BTreeMap<(Uuid, i32), String>,
    owned: Option<&Assignment>,
    now: i64,
) {
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut add = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<Uuid> = m.assigned.keys().chain(target.keys()).copied().collect();
    for t in topics {
        let current = m.assigned.get(&t).cloned().unwrap_or_default();
        let wanted = target.get(&t).cloned().unwrap_or_default();
        let kept: BTreeSet<i32> = current.intersection(&wanted).copied().collect();
        // A partition the member says it no longer holds needs no revoking.
        let revoked: BTreeSet<i32> = current
            .difference(&wanted)
            .filter(|p| owned.is_none_or(|o| o.get(&t).is_some_and(|op| op.contains(p))))
            .copied()
            .collect();
        let mut added = BTreeSet::new();
        for p in wanted.difference(&current) {
            if others.contains_key(&(t, *p)) {
                unreleased = true;
            } else {
                added.insert(*p);
            }
        }
        if !kept.is_empty() {
            keep.insert(t, kept);
        }
        if !revoked.is_empty() {
            revoke.insert(t, revoked);
        }
        if !added.is_empty() {
            add.insert(t, added);
        }
    }
    if !revoke.is_empty() {
        m.assigned = keep;
        m.pending_revocation = revoke;
        m.state = MemberState::UnrevokedPartitions;
        m.revocation_deadline = Some(now + m.rebalance_timeout_ms as i64);
        return;
    }
    for (t, ps) in add {
        keep.entry(t).or_default().extend(ps);
    }
    m.assigned = keep;
    if m.member_epoch != target_epoch {
        m.previous_member_epoch = m.member_epoch;
        m.member_epoch = target_epoch;
    }
    m.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
}
