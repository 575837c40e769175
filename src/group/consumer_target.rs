//! A KIP-848 consumer group's target assignment: the topics its members
//! subscribe to (by name or regex) and the assignor's split of them.

use super::assignors::{self, MemberSubscription};
use super::consumer_group::{ConsumerGroup, ConsumerMember};
use super::consumer_heartbeat::{compile_regex, TopicView};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Every topic the members subscribe to that exists: by name or by regex.
pub(super) fn subscribed_topics(cg: &ConsumerGroup, topics: &TopicView) -> BTreeMap<String, (Uuid, i32)> {
    let mut out = BTreeMap::new();
    for m in cg.members.values() {
        for name in &m.subscribed_topic_names {
            if let Some(t) = topics.topics.get(name) {
                out.insert(name.clone(), *t);
            }
        }
        if let Some(Ok(re)) = m.subscribed_topic_regex.as_deref().map(compile_regex) {
            for (name, t) in &topics.topics {
                if !topics.internal.contains(name) && re.is_match(name) {
                    out.insert(name.clone(), *t);
                }
            }
        }
    }
    out
}

/// The topic ids a member subscribes to, among those the group knows.
fn member_topics(m: &ConsumerMember, subscribed: &BTreeMap<String, (Uuid, i32)>) -> BTreeSet<Uuid> {
    let re = m.subscribed_topic_regex.as_deref().and_then(|r| compile_regex(r).ok());
    subscribed
        .iter()
        .filter(|(name, _)| m.subscribed_topic_names.contains(name) || re.as_ref().is_some_and(|re| re.is_match(name)))
        .map(|(_, (id, _))| *id)
        .collect()
}

/// A new target assignment for the group's current members and topics.
pub(super) fn compute_target(cg: &mut ConsumerGroup, config: &super::shard::GroupConfig) {
    // Kafka uses the assignor the members ask for most, else the default.
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in cg.members.values() {
        if let Some(a) = &m.server_assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    let default = config
        .consumer_assignors
        .first()
        .map_or(assignors::UNIFORM, |s| s.as_str());
    let assignor = votes
        .iter()
        .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
        .map_or(default, |(n, _)| *n)
        .to_string();
    let counts: BTreeMap<Uuid, i32> = cg.subscribed_topics.values().copied().collect();
    let subscriptions: Vec<MemberSubscription<'_>> = cg
        .members
        .values()
        .map(|m| MemberSubscription {
            id: &m.id,
            topics: member_topics(m, &cg.subscribed_topics),
            current: cg.target.get(&m.id),
        })
        .collect();
    let target = assignors::assign(&assignor, &subscriptions, &counts);
    cg.target = target;
    cg.assignor = assignor;
    cg.assignment_epoch = cg.group_epoch;
}
