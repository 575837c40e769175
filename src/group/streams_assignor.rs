//! Assigning a streams group's tasks to its members: balanced, and sticky
//! (a member keeps the tasks it had as far as balance allows), as Kafka's
//! StickyTaskAssignor aims; standby tasks go to other processes than the
//! active one's.

use super::streams_group::Tasks;
use std::collections::{BTreeMap, BTreeSet};

/// Every task: (subtopology, partition).
fn all_tasks(tasks: &BTreeMap<String, i32>) -> Vec<(String, i32)> {
    tasks
        .iter()
        .flat_map(|(sub, n)| (0..*n).map(move |p| (sub.clone(), p)))
        .collect()
}

/// Active tasks for `members` (id, process id), given the previous target.
pub fn assign_active(
    members: &[(&str, &str)],
    tasks: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, Tasks>,
) -> BTreeMap<String, Tasks> {
    let mut out: BTreeMap<String, Tasks> = members.iter().map(|(id, _)| (id.to_string(), Tasks::new())).collect();
    if members.is_empty() {
        return out;
    }
    let all = all_tasks(tasks);
    let base = all.len() / members.len();
    let mut extra = all.len() % members.len();
    let mut load: BTreeMap<&str, usize> = members.iter().map(|(id, _)| (*id, 0)).collect();
    let mut free: BTreeSet<(String, i32)> = all.iter().cloned().collect();
    // Each member keeps what it had, up to its fair share.
    for (id, _) in members {
        let Some(had) = previous.get(*id) else { continue };
        for (sub, ps) in had {
            for p in ps {
                let task = (sub.clone(), *p);
                let n = load[id];
                let fits = n < base || (n == base && extra > 0);
                if fits && free.remove(&task) {
                    if n == base {
                        extra -= 1;
                    }
                    *load.get_mut(id).unwrap_or(&mut 0) += 1;
                    out.entry(id.to_string())
                        .or_default()
                        .entry(sub.clone())
                        .or_default()
                        .insert(*p);
                }
            }
        }
    }
    // The rest to the least loaded, in member order among equals.
    for (sub, p) in free {
        let Some((id, _)) = load.iter().min_by_key(|(id, n)| (**n, **id)) else {
            break;
        };
        let id = *id;
        *load.get_mut(id).unwrap_or(&mut 0) += 1;
        out.entry(id.to_string()).or_default().entry(sub).or_default().insert(p);
    }
    out
}

/// `replicas` standby copies of each task, on members of other processes
/// than the one running it actively (none if there are no such members).
pub fn assign_standby(
    members: &[(&str, &str)],
    tasks: &BTreeMap<String, i32>,
    active: &BTreeMap<String, Tasks>,
    replicas: usize,
) -> BTreeMap<String, Tasks> {
    let mut out: BTreeMap<String, Tasks> = BTreeMap::new();
    if replicas == 0 {
        return out;
    }
    let process_of: BTreeMap<&str, &str> = members.iter().copied().collect();
    let mut load: BTreeMap<&str, usize> = members.iter().map(|(id, _)| (*id, 0)).collect();
    for (sub, p) in all_tasks(tasks) {
        let owner = active
            .iter()
            .find(|(_, t)| t.get(&sub).is_some_and(|ps| ps.contains(&p)))
            .map(|(id, _)| id.as_str());
        let mut used: BTreeSet<&str> = owner.and_then(|o| process_of.get(o).copied()).into_iter().collect();
        for _ in 0..replicas {
            let pick = load
                .iter()
                .filter(|(id, _)| !used.contains(process_of[*id]))
                .min_by_key(|(id, n)| (**n, **id))
                .map(|(id, _)| *id);
            let Some(id) = pick else { break };
            used.insert(process_of[id]);
            *load.get_mut(id).unwrap_or(&mut 0) += 1;
            out.entry(id.to_string())
                .or_default()
                .entry(sub.clone())
                .or_default()
                .insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(t: &Tasks) -> usize {
        t.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn tasks_are_balanced_and_stay_where_they_were() {
        let tasks = BTreeMap::from([("0".to_string(), 3), ("1".to_string(), 3)]);
        let one = assign_active(&[("a", "p1")], &tasks, &BTreeMap::new());
        assert_eq!(count(&one["a"]), 6);
        let two = assign_active(&[("a", "p1"), ("b", "p2")], &tasks, &one);
        assert_eq!((count(&two["a"]), count(&two["b"])), (3, 3));
        // a kept three of its own; b got the others.
        for (sub, ps) in &two["a"] {
            assert!(ps.is_subset(&one["a"][sub]));
        }
        let three = assign_active(&[("a", "p1"), ("b", "p2"), ("c", "p3")], &tasks, &two);
        assert_eq!(three.values().map(count).collect::<Vec<_>>(), vec![2, 2, 2]);
        let standby = assign_standby(&[("a", "p1"), ("b", "p2")], &tasks, &two, 1);
        for (id, t) in &standby {
            for (sub, ps) in t {
                assert!(
                    ps.is_disjoint(two[id].get(sub).unwrap_or(&BTreeSet::new())),
                    "never its own active task"
                );
            }
        }
        assert_eq!(standby.values().map(count).sum::<usize>(), 6);
    }
}
