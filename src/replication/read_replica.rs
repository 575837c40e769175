//! Fetch from the nearest replica (KIP-392): with `replica.selector.class`
//! set, a partition's leader tells a consumer that sent its rack
//! (`client.rack`, Fetch v11+) which replica to read from instead; the
//! consumer then fetches there until that replica fails it or its metadata
//! is refreshed. As Kafka's selectors choose: a replica in the client's rack
//! (the leader itself when it is in that rack), the most caught-up first.

use crate::config::replication::ReplicaSelector;
use std::cmp::Ordering;

/// A replica as a selector weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaView<'a> {
    pub id: i32,
    pub rack: Option<&'a str>,
    pub log_end_offset: i64,
    pub since_caught_up_ms: i64,
}

/// The follower a consumer in `client_rack` should read from; None for the
/// leader (Kafka never sends the leader as the preferred read replica).
pub fn preferred_read_replica(
    selector: ReplicaSelector,
    client_rack: &str,
    leader: &ReplicaView,
    followers: &[ReplicaView],
) -> Option<i32> {
    match selector {
        ReplicaSelector::Leader => None,
        ReplicaSelector::RackAware => {
            if client_rack.is_empty() || leader.rack == Some(client_rack) {
                return None;
            }
            followers
                .iter()
                .filter(|f| f.rack == Some(client_rack))
                .max_by(|a, b| most_caught_up(a, b))
                .map(|f| f.id)
        }
    }
}

/// Kafka's ReplicaView comparator: the higher log end, then the more recently caught up.
fn most_caught_up(a: &ReplicaView, b: &ReplicaView) -> Ordering {
    a.log_end_offset
        .cmp(&b.log_end_offset)
        .then(b.since_caught_up_ms.cmp(&a.since_caught_up_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: i32, rack: &'static str, log_end_offset: i64, since_caught_up_ms: i64) -> ReplicaView<'static> {
        ReplicaView {
            id,
            rack: Some(rack),
            log_end_offset,
            since_caught_up_ms,
        }
    }

    #[test]
    fn a_consumer_reads_from_the_most_caught_up_replica_in_its_rack() {
        let leader = view(1, "a", 100, 0);
        let followers = [
            view(2, "b", 90, 0),
            view(3, "b", 100, 50),
            view(4, "b", 100, 10),
            view(5, "c", 100, 0),
        ];
        let pick = |rack| preferred_read_replica(ReplicaSelector::RackAware, rack, &leader, &followers);
        assert_eq!(pick("b"), Some(4));
        assert_eq!(pick("c"), Some(5));
        // The leader's own rack, a rack with no replica, no rack: the leader.
        assert_eq!(pick("a"), None);
        assert_eq!(pick("z"), None);
        assert_eq!(pick(""), None);
        assert_eq!(
            preferred_read_replica(ReplicaSelector::Leader, "b", &leader, &followers),
            None
        );
    }
}
