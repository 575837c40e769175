//! A streams group's topology against the topics there are (Kafka's
//! InternalTopicManager.configureTopics): source topics must exist;
//! repartition topics without a partition count take that of the
//! subtopologies writing them; co-partitioned topics must agree; each
//! subtopology has as many tasks as its widest source; a changelog topic has
//! one partition per task. Internal topics not there yet are to be created.

use super::streams_group::{status, ConfiguredTopology, TopicInfo, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's summarizeTopics: up to three names, then how many more.
fn summarize<'a>(topics: impl IntoIterator<Item = &'a String>) -> String {
    let all: Vec<&String> = topics.into_iter().collect();
    let shown: Vec<&str> = all.iter().take(3).map(|t| t.as_str()).collect();
    let mut out = shown.join(", ");
    if all.len() > 3 {
        out.push_str(&format!(" and {} additional topics", all.len() - 3));
    }
    out
}

fn failed(code: i8, detail: String) -> ConfiguredTopology {
    ConfiguredTopology {
        tasks: None,
        missing_internal: Vec::new(),
        status: Some((code, detail)),
    }
}

/// Configures `topology` against `existing` (topic name → partition count).
pub fn configure(topology: &Topology, existing: &BTreeMap<String, i32>) -> ConfiguredTopology {
    let missing: BTreeSet<&String> = topology
        .subtopologies
        .iter()
        .flat_map(|s| &s.source_topics)
        .filter(|t| !existing.contains_key(*t))
        .collect();
    if !missing.is_empty() {
        return failed(
            status::MISSING_SOURCE_TOPICS,
            format!("Source topics {} are missing.", summarize(missing)),
        );
    }
    let mut decided: BTreeMap<String, i32> = BTreeMap::new();
    let count = |decided: &BTreeMap<String, i32>, topic: &str| existing.get(topic).or(decided.get(topic)).copied();
    // Repartition topics with a fixed count, then the others from their writers.
    for s in &topology.subtopologies {
        for r in s.repartition_source_topics.iter().filter(|r| r.partitions > 0) {
            decided.insert(r.name.clone(), r.partitions);
        }
    }
    let tasks_of = |decided: &BTreeMap<String, i32>, s: &super::streams_group::Subtopology| -> Option<i32> {
        let mut widest = None;
        for t in s
            .source_topics
            .iter()
            .chain(s.repartition_source_topics.iter().map(|r| &r.name))
        {
            widest = widest.max(Some(count(decided, t)?));
        }
        widest
    };
    for _ in 0..=topology.subtopologies.len() {
        let mut progress = false;
        for s in &topology.subtopologies {
            for r in &s.repartition_source_topics {
                if count(&decided, &r.name).is_some() {
                    continue;
                }
                let writers: Vec<Option<i32>> = topology
                    .subtopologies
                    .iter()
                    .filter(|w| w.repartition_sink_topics.contains(&r.name))
                    .map(|w| tasks_of(&decided, w))
                    .collect();
                if !writers.is_empty() && writers.iter().all(Option::is_some) {
                    decided.insert(r.name.clone(), writers.into_iter().flatten().max().unwrap_or(1));
                    progress = true;
                }
            }
        }
        if !progress {
            break;
        }
    }
    // Co-partitioned topics: repartition topics take the count of the others.
    let flexible: BTreeSet<&String> = topology
        .subtopologies
        .iter()
        .flat_map(|s| &s.repartition_source_topics)
        .filter(|r| r.partitions == 0)
        .map(|r| &r.name)
        .collect();
    for group in topology.subtopologies.iter().flat_map(|s| &s.copartition_groups) {
        let fixed: BTreeMap<&String, i32> = group
            .iter()
            .filter(|t| !flexible.contains(t))
            .filter_map(|t| Some((t, count(&decided, t)?)))
            .collect();
        let counts: BTreeSet<i32> = fixed.values().copied().collect();
        if counts.len() > 1 {
            let detail = fixed
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(", ");
            return failed(
                status::INCORRECTLY_PARTITIONED_TOPICS,
                format!("Following topics do not have the same number of partitions: [{detail}]"),
            );
        }
        let wanted = counts
            .first()
            .copied()
            .or_else(|| group.iter().filter_map(|t| count(&decided, t)).max());
        if let Some(n) = wanted {
            for t in group
                .iter()
                .filter(|t| flexible.contains(t) && !existing.contains_key(*t))
            {
                decided.insert(t.clone(), n);
            }
        }
    }
    let mut tasks = BTreeMap::new();
    let mut wanted: Vec<TopicInfo> = Vec::new();
    for s in &topology.subtopologies {
        let Some(n) = tasks_of(&decided, s) else {
            return failed(
                status::INCORRECTLY_PARTITIONED_TOPICS,
                format!("Number of partitions could not be decided for subtopology {}.", s.id),
            );
        };
        tasks.insert(s.id.clone(), n);
        for r in &s.repartition_source_topics {
            let partitions = count(&decided, &r.name).unwrap_or(n);
            wanted.push(TopicInfo {
                partitions,
                ..r.clone()
            });
        }
        for c in &s.changelog_topics {
            wanted.push(TopicInfo {
                partitions: n,
                ..c.clone()
            });
        }
    }
    let mut missing_internal = Vec::new();
    for t in wanted {
        match existing.get(&t.name) {
            Some(found) if *found != t.partitions => {
                return failed(
                    status::INCORRECTLY_PARTITIONED_TOPICS,
                    format!(
                        "Existing topic {} has different number of partitions: expected {}, found {found}",
                        t.name, t.partitions
                    ),
                )
            }
            Some(_) => {}
            None => {
                if !missing_internal.iter().any(|m: &TopicInfo| m.name == t.name) {
                    missing_internal.push(t);
                }
            }
        }
    }
    missing_internal.sort_by(|a, b| a.name.cmp(&b.name));
    let status = (!missing_internal.is_empty()).then(|| {
        let names: Vec<&String> = missing_internal.iter().map(|t| &t.name).collect();
        (
            status::MISSING_INTERNAL_TOPICS,
            format!("Internal topics are missing: {}", summarize(names)),
        )
    });
    ConfiguredTopology {
        tasks: Some(tasks),
        missing_internal,
        status,
    }
}

/// Every topic the topology reads or writes, for noticing changes.
pub fn topics_of(topology: &Topology) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in &topology.subtopologies {
        out.extend(s.source_topics.iter().cloned());
        out.extend(s.repartition_sink_topics.iter().cloned());
        out.extend(s.repartition_source_topics.iter().map(|t| t.name.clone()));
        out.extend(s.changelog_topics.iter().map(|t| t.name.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::streams_group::Subtopology;

    fn topic(name: &str, partitions: i32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            partitions,
            ..TopicInfo::default()
        }
    }

    /// A word count: input re-keyed into a repartition topic, counted in a store.
    fn word_count() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["input".into()],
                    repartition_sink_topics: vec!["app-repartition".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec![topic("app-repartition", 0)],
                    changelog_topics: vec![topic("app-changelog", 0)],
                    ..Subtopology::default()
                },
            ],
        }
    }

    #[test]
    fn internal_topics_take_the_partitions_of_their_sources() {
        let t = word_count();
        let none = configure(&t, &BTreeMap::new());
        assert_eq!(
            none.status,
            Some((status::MISSING_SOURCE_TOPICS, "Source topics input are missing.".into()))
        );
        let existing = BTreeMap::from([("input".to_string(), 3)]);
        let c = configure(&t, &existing);
        assert_eq!(c.tasks, Some(BTreeMap::from([("0".into(), 3), ("1".into(), 3)])));
        assert_eq!(
            c.missing_internal
                .iter()
                .map(|t| (t.name.as_str(), t.partitions))
                .collect::<Vec<_>>(),
            vec![("app-changelog", 3), ("app-repartition", 3)]
        );
        assert!(!c.is_ready());
        let mut all = existing.clone();
        all.insert("app-repartition".into(), 3);
        all.insert("app-changelog".into(), 3);
        assert!(configure(&t, &all).is_ready());
        all.insert("app-changelog".into(), 2);
        assert_eq!(
            configure(&t, &all).status.map(|s| s.0),
            Some(status::INCORRECTLY_PARTITIONED_TOPICS)
        );
    }
}
