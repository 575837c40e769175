//! A classic group upgraded by a consumer-protocol member, its classic
//! member rebalancing through JoinGroup/SyncGroup/Heartbeat, and the way
//! back when the consumer-protocol member leaves.

use super::super::consumer_heartbeat::{ConsumerHeartbeat, TopicView};
use super::super::consumer_protocol::{decode_assignment, encode_assignment};
use super::super::membership::{JoinRequest, SyncRequest};
use super::super::shard::{GroupConfig, GroupShard, Reply};
use super::super::tests::{Exec, MemLog};
use super::*;
use crate::config::MigrationPolicy;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
use kafka_protocol::messages::{ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const T: Uuid = Uuid::from_u128(7);

fn topics() -> TopicView {
    TopicView {
        topics: BTreeMap::from([("orders".to_string(), (T, 4))]),
        internal: BTreeSet::new(),
    }
}

fn subscription(owned: &[i32]) -> Bytes {
    let mut sub = ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("orders")]);
    if !owned.is_empty() {
        sub = sub.with_owned_partitions(vec![TopicPartition::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(owned.to_vec())]);
    }
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn classic_join(member: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription(owned))],
        require_known_member_id: false,
        topics: topics(),
    }
}

fn sync(member: &str, generation: i32, assignment: Bytes) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation,
        member_id: member.into(),
        instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: vec![(member.to_string(), assignment)],
    }
}

fn modern(member: &str, epoch: i32) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: if epoch == 0 { 30_000 } else { -1 },
        subscribed_topic_names: (epoch == 0).then(|| vec!["orders".into()]),
        owned: Some(Default::default()),
        version: 1,
        ..Default::default()
    }
}

fn now<T>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Later(mut rx) => rx.try_recv().expect("answered"),
    }
}

fn partitions(bytes: &Bytes) -> Vec<i32> {
    decode_assignment(bytes)
        .unwrap()
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect()
}

/// A classic group of one member "c" holding all four partitions at generation 1.
fn classic_group(config: GroupConfig) -> (GroupShard, MemLog) {
    let (mut g, mut log) = (
        GroupShard::new(GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..config
        }),
        MemLog::default(),
    );
    let joined = now(g.exec(&mut log, |s| s.join(classic_join("", &[]), 0)));
    let id = joined.member_id.to_string();
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let all = encode_assignment(&[(T, (0..4).collect())].into_iter().collect(), &topics(), 1);
    // The test names the member "c" from here on.
    let synced = now(g.exec(&mut log, |s| s.sync(sync(&id, 1, all), 0)));
    assert_eq!(synced.error_code, 0);
    let group = g.groups.get_mut("g").unwrap();
    let mut m = group.members.shift_remove(&id).unwrap();
    m.id = "c".into();
    group.members.insert("c".into(), m);
    group.leader = Some("c".into());
    (g, log)
}

#[test]
fn a_consumer_member_upgrades_the_group_and_the_classic_member_rebalances() {
    let (mut g, mut log) = classic_group(GroupConfig::default());
    let m = g.exec(&mut log, |s| s.consumer_heartbeat(modern("m", 0), &topics(), 100));
    assert_eq!(m.error_code, 0, "{m:?}");
    assert_eq!(m.member_epoch, 2);
    // Everything is still the classic member's: the new one waits.
    assert_eq!(
        m.assignment.map(|a| a.values().map(|p| p.len()).sum::<usize>()),
        Some(0)
    );
    let cg = g.group("g").unwrap().consumer.as_deref().expect("a consumer group now");
    assert_eq!(cg.members["c"].member_epoch, 1);
    assert!(cg.members["c"].classic.is_some());

    // The classic member is told to rejoin, and gives up half at its JoinGroup.
    assert_eq!(g.heartbeat("g", 1, "c", None, 200), E::RebalanceInProgress.code());
    let joined = now(g.exec(&mut log, |s| s.join(classic_join("c", &[0, 1, 2, 3]), 300)));
    assert_eq!((joined.error_code, joined.generation_id), (0, 1), "still revoking");
    let synced = now(g.exec(&mut log, |s| s.sync(sync("c", 1, Bytes::new()), 300)));
    let kept = partitions(&synced.assignment);
    assert_eq!(kept.len(), 2);
    // It rejoins owning only what it kept: the new epoch.
    let joined = now(g.exec(&mut log, |s| s.join(classic_join("c", &kept), 400)));
    assert_eq!((joined.error_code, joined.generation_id), (0, 2));
    assert_eq!(
        now(g.exec(&mut log, |s| s.sync(sync("c", 2, Bytes::new()), 400))).error_code,
        0
    );
    assert_eq!(g.heartbeat("g", 2, "c", None, 500), 0);
    // The consumer-protocol member gets the other two.
    let m = g.exec(&mut log, |s| s.consumer_heartbeat(modern("m", 2), &topics(), 600));
    let got: BTreeSet<i32> = m.assignment.expect("its partitions")[&T].clone();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| !kept.contains(p)));

    // What was written loads back as the same consumer group.
    let reloaded = log.reload(0, 600);
    let cg = reloaded
        .group("g")
        .unwrap()
        .consumer
        .as_deref()
        .expect("a consumer group after a reload");
    assert_eq!(
        cg.members["c"].classic.as_ref().map(|c| c.session_timeout_ms),
        Some(10_000)
    );
    assert!(reloaded.group("g").unwrap().members.is_empty());

    // The consumer-protocol member leaves: a classic group again, rebalancing.
    let left = g.exec(&mut log, |s| s.consumer_heartbeat(modern("m", -1), &topics(), 700));
    assert_eq!(left.error_code, 0);
    let group = g.group("g").unwrap();
    assert!(group.consumer.is_none());
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.generation, 2, "the consumer group's epoch");
    assert_eq!(partitions(&group.members["c"].assignment), kept);
    assert_eq!(g.heartbeat("g", 2, "c", None, 800), E::RebalanceInProgress.code());
    let reloaded = log.reload(0, 800);
    let group = reloaded.group("g").unwrap();
    assert!(group.consumer.is_none());
    assert_eq!(group.members.keys().collect::<Vec<_>>(), ["c"]);
}

#[test]
fn without_the_upgrade_policy_a_classic_group_stays_classic() {
    let config = GroupConfig {
        migration_policy: MigrationPolicy {
            upgrade: false,
            downgrade: true,
        },
        ..GroupConfig::default()
    };
    let (mut g, mut log) = classic_group(config);
    let m = g.exec(&mut log, |s| s.consumer_heartbeat(modern("m", 0), &topics(), 100));
    assert_eq!(m.error_code, E::GroupIdNotFound.code());
    assert_eq!(m.error_message.as_deref(), Some("Group g is not a consumer group."));
    assert!(g.group("g").unwrap().consumer.is_none());
    assert_eq!(g.heartbeat("g", 1, "c", None, 200), 0);
}
