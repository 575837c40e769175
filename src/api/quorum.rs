//! DescribeQuorum (KIP-595, KIP-853): the metadata quorum's leader, epoch,
//! high watermark and each voter's progress, for `kafka-metadata-quorum
//! describe --status / --replication`. Answered by the active controller
//! (other nodes forward it); a single node is a quorum of one.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use crate::storage::now_ms;
use kafka_protocol::messages::describe_quorum_request::DescribeQuorumRequest;
use kafka_protocol::messages::describe_quorum_response::{
    DescribeQuorumResponse, Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const METADATA_TOPIC: &str = "__cluster_metadata";

fn voter(id: i32, log_end_offset: i64, caught_up: bool) -> ReplicaState {
    let at = if caught_up { now_ms() } else { -1 };
    ReplicaState::default()
        .with_replica_id(BrokerId(id))
        .with_log_end_offset(log_end_offset)
        .with_last_fetch_timestamp(at)
        .with_last_caught_up_timestamp(at)
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, _req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    if !broker.authorize_cluster(ctx, operation::DESCRIBE) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")));
    }
    let image = broker.image();
    let (partition, nodes) = match broker.controller.quorum() {
        None => {
            let end = image.offset + 1;
            let endpoint = broker.endpoint_for(&ctx.listener);
            let node = Node::default()
                .with_node_id(BrokerId(broker.node_id()))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_string(endpoint.listener.clone()))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port)]);
            let p = PartitionData::default()
                .with_leader_id(BrokerId(broker.node_id()))
                .with_leader_epoch(1)
                .with_high_watermark(end)
                .with_current_voters(vec![voter(broker.node_id(), end, true)]);
            (p, vec![node])
        }
        Some(quorum) => {
            let metrics = quorum.raft().metrics().borrow().clone();
            let committed = metrics.last_applied.map_or(0, |l| l.index as i64 + 1);
            let progress = metrics.replication.clone().unwrap_or_default();
            let voters = quorum
                .voters()
                .into_keys()
                .map(|id| {
                    let matched = if id == quorum.node_id() {
                        metrics.last_log_index.map(|i| i as i64 + 1)
                    } else {
                        progress.get(&id).map(|m| m.map_or(0, |l| l.index as i64 + 1))
                    };
                    voter(
                        id as i32,
                        matched.unwrap_or(-1),
                        matched.is_some_and(|m| m >= committed),
                    )
                    .with_replica_directory_id(quorum.directory_of(id).unwrap_or_default())
                })
                .collect();
            let current = quorum.voters();
            let learners = quorum.learners();
            let mut observers: Vec<ReplicaState> = image
                .brokers
                .values()
                .filter(|b| {
                    !current.contains_key(&(b.broker_id as u64)) && !learners.contains_key(&(b.broker_id as u64))
                })
                .map(|b| voter(b.broker_id, -1, false).with_replica_directory_id(b.directory_id.unwrap_or_default()))
                .collect();
            // Controllers replicating the log before they are made voters.
            observers.extend(learners.iter().map(|(id, node)| {
                let matched = progress.get(id).map(|m| m.map_or(0, |l| l.index as i64 + 1));
                voter(
                    *id as i32,
                    matched.unwrap_or(-1),
                    matched.is_some_and(|m| m >= committed),
                )
                .with_replica_directory_id(node.directory_id.unwrap_or_default())
            }));
            let listener = broker
                .config
                .cluster
                .controller_listener_names
                .first()
                .cloned()
                .unwrap_or_default();
            let nodes =
                quorum
                    .voters()
                    .iter()
                    .filter_map(|(id, node)| {
                        let (host, port) = node.addr.rsplit_once(':')?;
                        Some(Node::default().with_node_id(BrokerId(*id as i32)).with_listeners(
                            vec![Listener::default()
                        .with_name(StrBytes::from_string(listener.clone()))
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port.parse().ok()?)],
                        ))
                    })
                    .collect();
            let p = PartitionData::default()
                .with_leader_id(BrokerId(metrics.current_leader.map_or(-1, |l| l as i32)))
                .with_leader_epoch(metrics.current_term as i32)
                .with_high_watermark(committed)
                .with_current_voters(voters)
                .with_observers(observers);
            (p, nodes)
        }
    };
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![partition.with_partition_index(0)])])
        .with_nodes(nodes)
}
