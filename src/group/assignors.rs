//! The server-side assignors of KIP-848 consumer groups: `uniform` (Kafka's
//! default: balanced and sticky) and `range` (co-partitioned ranges per topic).

use super::consumer_group::Assignment;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const ASSIGNORS: [&str; 2] = [UNIFORM, RANGE];

/// What an assignor sees of one member.
pub struct MemberSubscription<'a> {
    pub id: &'a str,
    pub topics: BTreeSet<Uuid>,
    pub current: Option<&'a Assignment>,
}

/// Computes the target assignment. `topics`: topic id → partition count.
pub fn assign(
    assignor: &str,
    members: &[MemberSubscription<'_>],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        RANGE => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Each topic's partitions split into contiguous ranges over its subscribers
/// in member id order, the first ones taking one more.
fn range(members: &[MemberSubscription<'_>], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members.iter().map(|m| (m.id.to_string(), Assignment::new())).collect();
    for (topic, count) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort();
        let n = subscribers.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = base + i32::from((i as i32) < extra);
            if take > 0 {
                out.entry(member.to_string())
                    .or_default()
                    .insert(*topic, (next..next + take).collect());
            }
            next += take;
        }
    }
    out
}

/// Balanced and sticky: members keep what they hold where they still
/// subscribe, free partitions go to the least loaded subscriber, then
/// partitions move one at a time from a member holding two more than
/// another subscriber of the topic until none does.
fn uniform(members: &[MemberSubscription<'_>], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut held: BTreeMap<&str, BTreeSet<(Uuid, i32)>> = members.iter().map(|m| (m.id, BTreeSet::new())).collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let subscribes = |member: &str, topic: &Uuid| members.iter().any(|m| m.id == member && m.topics.contains(topic));
    for m in members {
        let Some(current) = m.current else { continue };
        for (topic, parts) in current {
            let Some(count) = topics.get(topic) else { continue };
            if !m.topics.contains(topic) {
                continue;
            }
            for p in parts.iter().filter(|p| **p < *count) {
                if taken.insert((*topic, *p)) {
                    held.entry(m.id).or_default().insert((*topic, *p));
                }
            }
        }
    }
    for (topic, count) in topics {
        for p in 0..*count {
            if taken.contains(&(*topic, p)) {
                continue;
            }
            let least = members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .min_by_key(|m| (held.get(m.id).map_or(0, |h| h.len()), m.id));
            if let Some(m) = least {
                held.entry(m.id).or_default().insert((*topic, p));
                taken.insert((*topic, p));
            }
        }
    }
    // Every move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let ids: Vec<&str> = held.keys().copied().collect();
        'search: for from in &ids {
            let from_len = held[from].len();
            for to in &ids {
                if held[to].len() + 1 >= from_len {
                    continue;
                }
                let candidate = held[from].iter().rev().find(|(t, _)| subscribes(to, t)).copied();
                if let Some(tp) = candidate {
                    held.get_mut(from).map(|h| h.remove(&tp));
                    held.get_mut(to).map(|h| h.insert(tp));
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
    held.into_iter()
        .map(|(id, parts)| {
            let mut a = Assignment::new();
            for (t, p) in parts {
                a.entry(t).or_default().insert(p);
            }
            (id.to_string(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(a: &Assignment) -> usize {
        a.values().map(|p| p.len()).sum()
    }

    #[test]
    fn uniform_balances_and_keeps_what_members_hold() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([(t, 6)]);
        let all: Assignment = BTreeMap::from([(t, (0..6).collect())]);
        let first = assign(
            UNIFORM,
            &[MemberSubscription {
                id: "a",
                topics: [t].into(),
                current: Some(&all),
            }],
            &topics,
        );
        assert_eq!(total(&first["a"]), 6);
        let second = assign(
            UNIFORM,
            &[
                MemberSubscription {
                    id: "a",
                    topics: [t].into(),
                    current: Some(&first["a"]),
                },
                MemberSubscription {
                    id: "b",
                    topics: [t].into(),
                    current: None,
                },
            ],
            &topics,
        );
        assert_eq!(total(&second["a"]), 3);
        assert_eq!(total(&second["b"]), 3);
        // a only gave partitions up; it took none.
        assert!(second["a"][&t].is_subset(&first["a"][&t]));
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics = BTreeMap::from([(t1, 4), (t2, 2)]);
        let out = assign(
            UNIFORM,
            &[
                MemberSubscription {
                    id: "a",
                    topics: [t1].into(),
                    current: None,
                },
                MemberSubscription {
                    id: "b",
                    topics: [t1, t2].into(),
                    current: None,
                },
            ],
            &topics,
        );
        assert!(!out["a"].contains_key(&t2));
        assert_eq!(total(&out["a"]) + total(&out["b"]), 6);
        assert_eq!(total(&out["a"]), 3);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([(t, 5)]);
        let out = assign(
            RANGE,
            &[
                MemberSubscription {
                    id: "b",
                    topics: [t].into(),
                    current: None,
                },
                MemberSubscription {
                    id: "a",
                    topics: [t].into(),
                    current: None,
                },
            ],
            &topics,
        );
        assert_eq!(out["a"][&t], (0..3).collect());
        assert_eq!(out["b"][&t], (3..5).collect());
    }
}
