//! The "consumer" embedded protocol of classic groups (Kafka's
//! ConsumerProtocol): a member's subscription in its JoinGroup metadata and
//! its assignment in SyncGroup, each a version then the body. Read and
//! written only when a group moves between the classic and the consumer
//! protocol, or when a classic member is inside a consumer group.

use super::consumer_group::Assignment;
use super::consumer_heartbeat::TopicView;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The newest version of either message Kafka writes.
const MAX_VERSION: i16 = 3;

/// A member's subscription, as the coordinator needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    /// Topic names and partitions the member says it holds (v1+).
    pub owned: Vec<(String, Vec<i32>)>,
    pub rack_id: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed embedded consumer protocol")]
pub struct Malformed;

/// The version a message starts with: what the member speaks.
pub fn version_of(metadata: &[u8]) -> i16 {
    if metadata.len() < 2 {
        return 0;
    }
    i16::from_be_bytes([metadata[0], metadata[1]]).clamp(0, MAX_VERSION)
}

/// A message's version (newer ones read as the newest known: their fields
/// come after) and its body.
fn versioned(bytes: &Bytes) -> Result<(i16, Bytes), Malformed> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(Malformed);
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(Malformed);
    }
    Ok((version.min(MAX_VERSION), buf))
}

pub fn decode_subscription(metadata: &Bytes) -> Result<Subscription, Malformed> {
    let (version, mut buf) = versioned(metadata)?;
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version).map_err(|_| Malformed)?;
    Ok(Subscription {
        topics: sub.topics.iter().map(|t| t.to_string()).collect(),
        owned: sub
            .owned_partitions
            .iter()
            .map(|tp| (tp.topic.to_string(), tp.partitions.clone()))
            .collect(),
        rack_id: sub.rack_id.map(|r| r.to_string()),
    })
}

/// An assignment by topic name; empty bytes are an empty assignment (a
/// member of a group that never completed a rebalance).
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<(String, Vec<i32>)>, Malformed> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut buf) = versioned(bytes)?;
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).map_err(|_| Malformed)?;
    Ok(a.assigned_partitions
        .iter()
        .map(|tp| (tp.topic.to_string(), tp.partitions.clone()))
        .collect())
}

/// An assignment in the member's version of the protocol.
pub fn encode_assignment(assignment: &Assignment, topics: &TopicView, version: i16) -> Bytes {
    let assigned_partitions = assignment
        .iter()
        .filter(|(_, parts)| !parts.is_empty())
        .filter_map(|(id, parts)| {
            let name = topics.name_of(*id)?;
            Some(
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(parts.iter().copied().collect()),
            )
        })
        .collect();
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(assigned_partitions);
    let version = version.clamp(0, MAX_VERSION);
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Encoding a message built here cannot fail; an empty assignment is the fallback.
    if message.encode(&mut buf, version).is_err() {
        return Bytes::new();
    }
    buf.freeze()
}

/// Names to ids, for the topics that exist.
pub fn by_id(partitions: &[(String, Vec<i32>)], topics: &TopicView) -> Assignment {
    let mut out = Assignment::new();
    for (name, parts) in partitions {
        if let Some((id, _)) = topics.topics.get(name) {
            out.entry(*id).or_default().extend(parts.iter().copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn an_assignment_reads_back_in_every_version() {
        let id = Uuid::new_v4();
        let mut view = TopicView::default();
        view.topics.insert("t".to_string(), (id, 3));
        let a: Assignment = [(id, [0, 2].into_iter().collect())].into_iter().collect();
        for v in 0..=3 {
            let bytes = encode_assignment(&a, &view, v);
            assert_eq!(version_of(&bytes), v);
            assert_eq!(by_id(&decode_assignment(&bytes).unwrap(), &view), a);
        }
        assert_eq!(decode_assignment(&Bytes::new()), Ok(Vec::new()));
        assert_eq!(decode_assignment(&Bytes::from_static(&[0, 1, 0xff])), Err(Malformed));
    }
}
