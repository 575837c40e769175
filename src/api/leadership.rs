//! In a cluster a partition is served by its leader: Produce and Fetch sent
//! elsewhere get NOT_LEADER_OR_FOLLOWER, with the current leader and its
//! endpoint so the client goes there without a Metadata round trip (KIP-951).

use crate::broker::Broker;
use crate::metadata::MetadataImage;
use kafka_protocol::messages::{fetch_response, produce_response, BrokerId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeSet;
use uuid::Uuid;

pub const NOT_LEADER: i16 = ResponseError::NotLeaderOrFollower.code();

/// Whether another broker leads the partition (only in a cluster: a single
/// node leads everything it hosts).
pub fn led_elsewhere(broker: &Broker, image: &MetadataImage, topic_id: Uuid, partition: i32) -> bool {
    if !broker.controller.is_clustered() {
        return false;
    }
    let Some(p) = image.topics.by_id(topic_id).and_then(|t| t.partition(partition)) else {
        return false;
    };
    // A replicated partition is led once its replication state is set up here.
    p.leader != broker.node_id() || (p.replicas.len() > 1 && broker.replicas.led(topic_id, partition).is_none())
}

/// For requests only a partition's leader answers (ListOffsets,
/// DeleteRecords, OffsetForLeaderEpoch): NOT_LEADER_OR_FOLLOWER when another
/// broker leads it (a broker without a replica included, as Kafka answers).
pub fn not_led_here(
    broker: &Broker,
    topic: Option<&std::sync::Arc<crate::replication::Topic>>,
    partition: i32,
) -> Option<i16> {
    let topic = topic?;
    led_elsewhere(broker, &broker.image(), topic.id, partition).then_some(NOT_LEADER)
}

fn leader_of(image: &MetadataImage, name: &str, id: Uuid, partition: i32) -> Option<(i32, i32)> {
    let topic = image.topics.by_id(id).or_else(|| image.topics.get(name))?;
    let p = topic.partition(partition)?;
    Some((p.leader, p.leader_epoch))
}

/// The leaders' endpoints on `listener`, in the response's own type
/// (Produce and Fetch each have one of the same shape).
fn endpoints<T>(
    image: &MetadataImage,
    listener: &str,
    leaders: BTreeSet<i32>,
    make: impl Fn(BrokerId, StrBytes, i32, Option<StrBytes>) -> T,
) -> Vec<T> {
    leaders
        .into_iter()
        .filter_map(|id| {
            let b = image.brokers.get(&id)?;
            let e = b.endpoints.iter().find(|e| e.listener == listener)?;
            Some(make(
                BrokerId(id),
                StrBytes::from_string(e.host.clone()),
                e.port as i32,
                b.rack.clone().map(StrBytes::from_string),
            ))
        })
        .collect()
}

/// Fills the current leader of every NOT_LEADER_OR_FOLLOWER partition.
pub fn fill_produce(image: &MetadataImage, listener: &str, response: &mut produce_response::ProduceResponse) {
    let mut leaders = BTreeSet::new();
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            if p.error_code != NOT_LEADER {
                continue;
            }
            if let Some((leader, epoch)) = leader_of(image, &t.name, t.topic_id, p.index) {
                p.current_leader = produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = endpoints(image, listener, leaders, |id, host, port, rack| {
        produce_response::NodeEndpoint::default()
            .with_node_id(id)
            .with_host(host)
            .with_port(port)
            .with_rack(rack)
    });
}

/// Fills the current leader of every NOT_LEADER_OR_FOLLOWER partition.
pub fn fill_fetch(image: &MetadataImage, listener: &str, response: &mut fetch_response::FetchResponse) {
    let mut leaders = BTreeSet::new();
    for t in &mut response.responses {
        for p in &mut t.partitions {
            if p.error_code != NOT_LEADER {
                continue;
            }
            if let Some((leader, epoch)) = leader_of(image, &t.topic, t.topic_id, p.partition_index) {
                p.current_leader = fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = endpoints(image, listener, leaders, |id, host, port, rack| {
        fetch_response::NodeEndpoint::default()
            .with_node_id(id)
            .with_host(host)
            .with_port(port)
            .with_rack(rack)
    });
}
