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

/// One move towards a target: what a member keeps, gives up and takes.
pub(super) struct Step<K> {
    pub keep: BTreeMap<K, BTreeSet<i32>>,
    pub revoke: BTreeMap<K, BTreeSet<i32>>,
    pub add: BTreeMap<K, BTreeSet<i32>>,
    /// Part of the target is still held by others.
    pub unreleased: bool,
}

/// Compares what a member holds with its target, per key (a topic, a
/// subtopology). `owned`: what the member says it holds (None: unchanged);
/// what it no longer holds needs no revoking.
pub(super) fn step<K: Ord + Clone>(
    current: &BTreeMap<K, BTreeSet<i32>>,
    target: &BTreeMap<K, BTreeSet<i32>>,
    owned: Option<&BTreeMap<K, BTreeSet<i32>>>,
    held_by_others: impl Fn(&K, i32) -> bool,
) -> Step<K> {
    let mut out = Step {
        keep: BTreeMap::new(),
        revoke: BTreeMap::new(),
        add: BTreeMap::new(),
        unreleased: false,
    };
    let keys: BTreeSet<&K> = current.keys().chain(target.keys()).collect();
    let empty = BTreeSet::new();
    for k in keys {
        let now = current.get(k).unwrap_or(&empty);
        let wanted = target.get(k).unwrap_or(&empty);
        let kept: BTreeSet<i32> = now.intersection(wanted).copied().collect();
        let revoked: BTreeSet<i32> = now
            .difference(wanted)
            .filter(|p| owned.is_none_or(|o| o.get(k).is_some_and(|op| op.contains(p))))
            .copied()
            .collect();
        let mut added = BTreeSet::new();
        for p in wanted.difference(now) {
            if held_by_others(k, *p) {
                out.unreleased = true;
            } else {
                added.insert(*p);
            }
        }
        for (set, into) in [(kept, &mut out.keep), (revoked, &mut out.revoke), (added, &mut out.add)] {
            if !set.is_empty() {
                into.insert(k.clone(), set);
            }
        }
    }
    out
}

fn next_assignment(
    m: &mut ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    others: &BTreeMap<(Uuid, i32), String>,
    owned: Option<&Assignment>,
    now: i64,
) {
    let Step {
        mut keep,
        revoke,
        add,
        unreleased,
    } = step(&m.assigned, target, owned, |t, p| others.contains_key(&(*t, p)));
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
