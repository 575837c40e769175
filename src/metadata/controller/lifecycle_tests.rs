//! A broker's life as the active controller sees it, on a paused clock (the
//! session timeout is driven by tokio's time, advanced here by hand):
//! registration, fencing of a silent broker and the leadership it loses,
//! controlled shutdown, unfencing, unregistration.

use super::*;
use crate::metadata::records::{BrokerEndpoint, ControllerRegistration};

const SESSION: Duration = Duration::from_secs(9);

/// A single-node controller whose publications are published at once.
fn controller(dir: &std::path::Path) -> Controller {
    controller_with(dir, BTreeMap::new())
}

/// The same with these static broker configs.
pub(super) fn controller_with(dir: &std::path::Path, static_configs: BTreeMap<String, String>) -> Controller {
    let (log, _) = MetadataLog::open(dir).expect("metadata log");
    let config = ControllerConfig {
        node_id: 1,
        delete_topic_enable: true,
        default_partitions: 1,
        default_replication_factor: 1,
        static_configs,
    };
    Controller::published_at_once(config, log, Arc::new(MetadataImage::default()))
}

pub(super) fn endpoint(id: i32) -> Vec<BrokerEndpoint> {
    vec![BrokerEndpoint {
        listener: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        security_protocol: "PLAINTEXT".into(),
    }]
}

/// (leader, isr) of each partition of "t".
async fn leadership(c: &Controller) -> Vec<(i32, Vec<i32>)> {
    let image = c.image().await;
    let topic = image.topics.get("t").expect("topic t");
    topic.partitions.iter().map(|p| (p.leader, p.isr.clone())).collect()
}

pub(super) async fn fenced(c: &Controller, id: i32) -> Option<bool> {
    c.image().await.brokers.get(&id).map(|b| b.fenced)
}

/// Brokers 1 to 3 registered and unfenced, and topic "t" of three partitions
/// on [1, 2, 3], [2, 3, 1] and `third`.
async fn three_brokers_and_topic_t(dir: &std::path::Path, third: [i32; 3]) -> Controller {
    let c = controller(dir);
    for id in 1..=3 {
        c.register_broker(id, endpoint(id), None, None, uuid::Uuid::new_v4())
            .await
            .expect("register");
        c.heartbeat(id, false).await.expect("heartbeat");
    }
    let topic = NewTopic {
        name: "t".into(),
        partitions: 3,
        replication_factor: 3,
        configs: BTreeMap::new(),
        assignments: Some(vec![vec![1, 2, 3], vec![2, 3, 1], third.to_vec()]),
    };
    let created = c.create_topics(vec![topic], false).await.expect("create");
    assert!(created[0].is_ok(), "{created:?}");
    c
}

#[tokio::test(start_paused = true)]
async fn a_brokers_life_fenced_when_silent_unfenced_when_back_gone_when_unregistered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = three_brokers_and_topic_t(dir.path(), [3, 1, 2]).await;
    assert_eq!(
        leadership(&c).await,
        vec![(1, vec![1, 2, 3]), (2, vec![2, 3, 1]), (3, vec![3, 1, 2])]
    );

    // Within the session nobody is fenced, heartbeats or not.
    c.fence_silent_brokers(SESSION).await.expect("check");
    tokio::time::advance(Duration::from_secs(5)).await;
    c.heartbeat(1, false).await.expect("heartbeat");
    c.heartbeat(2, false).await.expect("heartbeat");
    c.fence_silent_brokers(SESSION).await.expect("check");
    assert_eq!(fenced(&c, 3).await, Some(false));

    // Broker 3 silent for longer than the session: fenced, out of every ISR,
    // and the partition it led goes to the next replica in its ISR.
    tokio::time::advance(Duration::from_secs(5)).await;
    c.heartbeat(1, false).await.expect("heartbeat");
    c.heartbeat(2, false).await.expect("heartbeat");
    c.fence_silent_brokers(SESSION).await.expect("check");
    assert_eq!(fenced(&c, 3).await, Some(true));
    assert_eq!(fenced(&c, 1).await, Some(false));
    assert_eq!(
        leadership(&c).await,
        vec![(1, vec![1, 2]), (2, vec![2, 1]), (1, vec![1, 2])]
    );

    // It heartbeats again: unfenced; it rejoins no ISR by itself (that takes catching up).
    c.heartbeat(3, false).await.expect("heartbeat");
    assert_eq!(fenced(&c, 3).await, Some(false));
    assert_eq!(leadership(&c).await[2], (1, vec![1, 2]));

    // Broker 2 in controlled shutdown: fenced at once; a heartbeat it sent
    // before (arriving late) does not unfence it; registering again does.
    c.heartbeat(2, true).await.expect("controlled shutdown");
    assert_eq!(fenced(&c, 2).await, Some(true));
    assert_eq!(leadership(&c).await[1], (1, vec![1]));
    c.heartbeat(2, false).await.expect("late heartbeat");
    assert_eq!(fenced(&c, 2).await, Some(true));
    c.register_broker(2, endpoint(2), None, None, uuid::Uuid::new_v4())
        .await
        .expect("register again");
    c.heartbeat(2, false).await.expect("heartbeat");
    assert_eq!(fenced(&c, 2).await, Some(false));

    // Unregistered: gone; a second time, or its heartbeats, are refused.
    c.unregister_broker(3).await.expect("unregister");
    assert_eq!(fenced(&c, 3).await, None);
    let again = c.unregister_broker(3).await.expect_err("not registered");
    assert_eq!(
        again.code(),
        kafka_protocol::ResponseError::BrokerIdNotRegistered.code()
    );
    assert_eq!(again.to_string(), "Broker ID 3 is not currently registered");
    assert!(c.heartbeat(3, false).await.is_err());
    // A broker silent since it was unregistered is never "fenced" again.
    tokio::time::advance(Duration::from_secs(20)).await;
    c.heartbeat(1, false).await.expect("heartbeat");
    c.heartbeat(2, false).await.expect("heartbeat");
    c.fence_silent_brokers(SESSION).await.expect("check");
    assert_eq!(fenced(&c, 3).await, None);
    assert_eq!(fenced(&c, 1).await, Some(false));

    // Registered anew long after its last heartbeat: its session starts at the
    // registration, so the next check does not fence it.
    c.register_broker(3, endpoint(3), None, None, uuid::Uuid::new_v4())
        .await
        .expect("register anew");
    assert_eq!(fenced(&c, 3).await, Some(false));
    c.fence_silent_brokers(SESSION).await.expect("check");
    assert_eq!(fenced(&c, 3).await, Some(false));
}

#[tokio::test]
async fn a_controller_registration_lasts_until_it_is_unregistered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = controller(dir.path());
    let incarnation = uuid::Uuid::new_v4();
    c.register_controller(2, endpoint(2), incarnation)
        .await
        .expect("register");
    let offset = c.image().await.offset;
    // The same process registering again writes nothing.
    c.register_controller(2, endpoint(2), incarnation).await.expect("again");
    assert_eq!(c.image().await.offset, offset);
    assert_eq!(c.image().await.controllers[&2].endpoints, endpoint(2));
    // A snapshot of the image keeps it.
    let records = c.image().await.to_records();
    assert!(
        records.contains(&MetadataRecord::RegisterController(ControllerRegistration {
            controller_id: 2,
            incarnation_id: incarnation,
            endpoints: endpoint(2),
        }))
    );

    // The active controller (this node, 1) cannot remove its own.
    let own = c.unregister_controller(1).await.expect_err("active");
    assert_eq!(own.code(), kafka_protocol::ResponseError::InvalidRequest.code());
    assert_eq!(
        own.to_string(),
        "Controller cannot unregister itself while it is active."
    );
    c.unregister_controller(2).await.expect("unregister");
    assert!(c.image().await.controllers.is_empty());
    let again = c.unregister_controller(2).await.expect_err("not registered");
    assert_eq!(again.code(), 136);
    assert_eq!(again.to_string(), "Controller ID 2 is not currently registered.");
}

#[tokio::test]
async fn a_leaders_isr_changes_sent_together_are_answered_one_by_one() {
    use super::isr::AlterPartition;
    let dir = tempfile::tempdir().expect("temp dir");
    let c = three_brokers_and_topic_t(dir.path(), [1, 3, 2]).await;
    // Broker 3 leaves the ISRs and comes back: broker 1 asks for it back.
    c.heartbeat(3, true).await.expect("controlled shutdown");
    c.register_broker(3, endpoint(3), None, None, uuid::Uuid::new_v4())
        .await
        .expect("register again");
    c.heartbeat(3, false).await.expect("heartbeat");
    assert_eq!(
        leadership(&c).await,
        vec![(1, vec![1, 2]), (2, vec![2, 1]), (1, vec![1, 2])]
    );
    let image = c.image().await;
    let t = image.topics.get("t").expect("topic t");
    let ask = |partition: i32, partition_epoch: i32| AlterPartition {
        broker_id: 1,
        topic_id: t.id,
        partition,
        leader_epoch: t.partitions[partition as usize].leader_epoch,
        partition_epoch,
        new_isr: vec![1, 2, 3],
    };
    let epoch = |partition: usize| t.partitions[partition].partition_epoch;
    let outcomes = c
        .alter_partitions(vec![
            ask(0, epoch(0)),
            ask(2, epoch(2) - 1),
            ask(1, epoch(1)),
            ask(0, epoch(0)),
            ask(2, epoch(2)),
        ])
        .await
        .expect("answered");
    let codes: Vec<i16> = outcomes
        .iter()
        .map(|o| o.as_ref().map_or_else(|e| e.code(), |_| 0))
        .collect();
    let (stale, not_leader) = (
        kafka_protocol::ResponseError::InvalidUpdateVersion.code(),
        kafka_protocol::ResponseError::NotLeaderOrFollower.code(),
    );
    assert_eq!(
        codes,
        vec![0, stale, not_leader, stale, 0],
        "the change on an old epoch, from a follower, or twice for one partition is refused: {outcomes:?}"
    );
    assert_eq!(
        leadership(&c).await,
        vec![(1, vec![1, 2, 3]), (2, vec![2, 1]), (1, vec![1, 2, 3])]
    );
    let after = c.image().await;
    let t_after = after.topics.get("t").expect("topic t");
    assert_eq!(t_after.partitions[0].partition_epoch, epoch(0) + 1);
    assert_eq!(t_after.partitions[1].partition_epoch, epoch(1));
}
