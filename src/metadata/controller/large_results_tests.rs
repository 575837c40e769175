//! A broker in more than 10,000 ISRs can still be fenced, shut down and
//! given its leadership back: what the controller does on its own is not
//! held to the 10,000 records of a user's request (Kafka's non-atomic
//! results), on the local log and over the quorum, where it goes in Raft
//! entries of at most 10,000 records. A user's request stays capped.

use super::initial_records_tests::one_voter_controller;
use super::lifecycle_tests::{controller_with, endpoint, fenced};
use super::*;
use crate::metadata::records::ConfigResource;

/// More partitions than one batch may hold, in topics a request may create.
const TOPICS: usize = 2;
const PER_TOPIC: usize = 6_000;

/// (leader, isr) of every partition, counted.
async fn leadership(c: &Controller) -> BTreeMap<(i32, Vec<i32>), usize> {
    let mut seen = BTreeMap::new();
    for topic in c.image().await.topics.iter() {
        for p in &topic.partitions {
            *seen.entry((p.leader, p.isr.clone())).or_insert(0) += 1;
        }
    }
    seen
}

/// Brokers 1 and 2 replicate every partition, broker 1 leading; it shuts
/// down (12,000 ISRs to leave), broker 2 too (every partition without a
/// leader), then broker 2 comes back and leads all 12,000 again.
async fn a_broker_in_more_isrs_than_a_batch_holds(c: &Controller) {
    for id in [1, 2] {
        c.register_broker(id, endpoint(id), None, None, uuid::Uuid::new_v4())
            .await
            .expect("register");
        c.heartbeat(id, false).await.expect("heartbeat");
    }
    for t in 0..TOPICS {
        let topic = NewTopic {
            name: format!("big-{t}"),
            partitions: PER_TOPIC as i32,
            replication_factor: 2,
            configs: BTreeMap::new(),
            assignments: Some(vec![vec![1, 2]; PER_TOPIC]),
        };
        let created = c.create_topics(vec![topic], false).await.expect("create");
        assert!(created[0].is_ok(), "{created:?}");
    }
    let all = TOPICS * PER_TOPIC;
    assert_eq!(leadership(c).await, BTreeMap::from([((1, vec![1, 2]), all)]));

    c.heartbeat(1, true).await.expect("controlled shutdown of broker 1");
    assert_eq!(fenced(c, 1).await, Some(true));
    assert_eq!(leadership(c).await, BTreeMap::from([((2, vec![2]), all)]));

    c.heartbeat(2, true).await.expect("controlled shutdown of broker 2");
    assert_eq!(fenced(c, 2).await, Some(true));
    assert_eq!(leadership(c).await, BTreeMap::from([((-1, vec![2]), all)]));

    c.register_broker(2, endpoint(2), None, None, uuid::Uuid::new_v4())
        .await
        .expect("register again");
    c.heartbeat(2, false).await.expect("heartbeat: unfenced");
    assert_eq!(fenced(c, 2).await, Some(false));
    assert_eq!(leadership(c).await, BTreeMap::from([((2, vec![2]), all)]));
}

fn config(i: usize) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::Broker(None),
        name: format!("k{i}"),
        value: Some("v".into()),
    }
}

/// A user's request of more than 10,000 records is refused whole; the
/// controller's own may be longer.
async fn only_atomic_results_are_capped(c: &Controller) {
    let before = c.image().await.offset;
    let refused = c
        .write(|_, _| ControllerResult::of((0..=MAX_RECORDS_PER_USER_OP).map(config).collect(), ()))
        .await
        .expect_err("over the cap");
    assert!(matches!(refused, ControllerError::ExcessivelyLargeBatch), "{refused:?}");
    assert_eq!(c.image().await.offset, before, "nothing written");

    let many = 2 * MAX_RECORDS_PER_USER_OP + 5;
    c.write(|_, _| ControllerResult::non_atomic((0..many).map(config).collect(), ()))
        .await
        .expect("non-atomic");
    let image = c.image().await;
    assert_eq!(image.offset, before + many as i64);
    assert_eq!(image.configs_of(&ConfigResource::Broker(None)).len(), many);
}

#[tokio::test]
async fn over_the_quorum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, _quorum) = one_voter_controller(dir.path(), Vec::new()).await;
    a_broker_in_more_isrs_than_a_batch_holds(&c).await;
    only_atomic_results_are_capped(&c).await;
}

#[tokio::test]
async fn on_the_local_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = controller_with(dir.path(), BTreeMap::new());
    a_broker_in_more_isrs_than_a_batch_holds(&c).await;
    only_atomic_results_are_capped(&c).await;
}
