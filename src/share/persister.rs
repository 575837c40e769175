//! The persister (Kafka's DefaultStatePersister): how a share-partition
//! leader and the group coordinator reach a share-partition's durable state.
//! On a single node, or where this broker leads the key's partition of
//! `__share_group_state`, the share coordinator here answers; elsewhere the
//! request goes to the broker that leads it, as Kafka's brokers send it.

use super::state::batches::StateBatch;
use super::state::records::StateKey;
use super::state::shard::{StateRead, StateSummary, StateWrite};
use super::state::{ShareStateCoordinator, SHARE_STATE_TOPIC};
use crate::coordinator::partition_for;
use crate::metadata::MetadataCache;
use crate::replication::broker_client::BrokerConnection;
use crate::replication::ReplicaManager;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError as E;
use std::time::Duration;
use tracing::debug;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Persister<'a> {
    pub states: &'a ShareStateCoordinator,
    pub metadata: &'a MetadataCache,
    pub replicas: &'a ReplicaManager,
    pub node_id: i32,
    pub clustered: bool,
}

/// Where a key's state is answered.
enum Route {
    Here,
    At(String),
}

impl Persister<'_> {
    async fn route(&self, key: &StateKey) -> Result<Route, i16> {
        self.states.ensure_topic().await?;
        if !self.clustered || self.states.holds(key) {
            return Ok(Route::Here);
        }
        let image = self.metadata.image();
        let topic = image
            .topics
            .get(SHARE_STATE_TOPIC)
            .ok_or(E::CoordinatorNotAvailable.code())?;
        let index = partition_for(&key.coordinator_key(), topic.partitions.len()) as i32;
        let leader = topic
            .partition(index)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
            .ok_or(E::CoordinatorNotAvailable.code())?;
        if leader == self.node_id {
            // Led here, not loaded yet.
            return Err(E::CoordinatorLoadInProgress.code());
        }
        self.replicas
            .inter_broker_address(&image, leader)
            .map(Route::At)
            .ok_or(E::CoordinatorNotAvailable.code())
    }

    async fn send<R: Request>(&self, address: &str, request: &R, version: i16) -> Result<R::Response, i16> {
        let client_id = format!("share-persister-{}", self.node_id);
        let answer = async {
            let mut connection = BrokerConnection::connect(address, &client_id, REQUEST_TIMEOUT).await?;
            connection.send(request, version, REQUEST_TIMEOUT).await
        };
        answer.await.map_err(|e| {
            debug!(address, error = %e, "share coordinator not answered");
            E::CoordinatorNotAvailable.code()
        })
    }

    pub async fn read(&self, key: &StateKey, leader_epoch: i32) -> Result<StateRead, i16> {
        let address = match self.route(key).await? {
            Route::Here => return self.states.read(key, leader_epoch).await,
            Route::At(a) => a,
        };
        use read_share_group_state_request::{PartitionData, ReadStateData};
        let request = ReadShareGroupStateRequest::default()
            .with_group_id(group_id(key))
            .with_topics(vec![ReadStateData::default()
                .with_topic_id(key.topic_id)
                .with_partitions(vec![PartitionData::default()
                    .with_partition(key.partition)
                    .with_leader_epoch(leader_epoch)])]);
        let response = self.send(&address, &request, 0).await?;
        let p = response
            .results
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition == key.partition)
            .ok_or(E::UnknownServerError.code())?;
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        Ok(StateRead {
            state_epoch: p.state_epoch,
            start_offset: p.start_offset,
            batches: p
                .state_batches
                .iter()
                .map(|b| StateBatch {
                    first: b.first_offset,
                    last: b.last_offset,
                    state: b.delivery_state,
                    count: b.delivery_count,
                })
                .collect(),
        })
    }

    pub async fn write(&self, key: &StateKey, write: StateWrite) -> i16 {
        let address = match self.route(key).await {
            Ok(Route::Here) => return self.states.write(key, write).await,
            Ok(Route::At(a)) => a,
            Err(code) => return code,
        };
        use write_share_group_state_request::{PartitionData, StateBatch as WireBatch, WriteStateData};
        let batches = write
            .batches
            .iter()
            .map(|b| {
                WireBatch::default()
                    .with_first_offset(b.first)
                    .with_last_offset(b.last)
                    .with_delivery_state(b.state)
                    .with_delivery_count(b.count)
            })
            .collect();
        let request = WriteShareGroupStateRequest::default()
            .with_group_id(group_id(key))
            .with_topics(vec![WriteStateData::default()
                .with_topic_id(key.topic_id)
                .with_partitions(vec![PartitionData::default()
                    .with_partition(key.partition)
                    .with_state_epoch(write.state_epoch)
                    .with_leader_epoch(write.leader_epoch)
                    .with_start_offset(write.start_offset)
                    .with_delivery_complete_count(write.delivery_complete_count)
                    .with_state_batches(batches)])]);
        match self.send(&address, &request, 1).await {
            Ok(r) => first_code(r.results.into_iter().flat_map(|t| t.partitions).map(|p| p.error_code)),
            Err(code) => code,
        }
    }

    pub async fn initialize(&self, key: &StateKey, state_epoch: i32, start_offset: i64) -> i16 {
        let address = match self.route(key).await {
            Ok(Route::Here) => return self.states.initialize(key, state_epoch, start_offset).await,
            Ok(Route::At(a)) => a,
            Err(code) => return code,
        };
        use initialize_share_group_state_request::{InitializeStateData, PartitionData};
        let request = InitializeShareGroupStateRequest::default()
            .with_group_id(group_id(key))
            .with_topics(vec![InitializeStateData::default()
                .with_topic_id(key.topic_id)
                .with_partitions(vec![PartitionData::default()
                    .with_partition(key.partition)
                    .with_state_epoch(state_epoch)
                    .with_start_offset(start_offset)])]);
        match self.send(&address, &request, 0).await {
            Ok(r) => first_code(r.results.into_iter().flat_map(|t| t.partitions).map(|p| p.error_code)),
            Err(code) => code,
        }
    }

    pub async fn summary(&self, key: &StateKey) -> Result<StateSummary, i16> {
        let address = match self.route(key).await? {
            Route::Here => return self.states.summary(key).await,
            Route::At(a) => a,
        };
        use read_share_group_state_summary_request::{PartitionData, ReadStateSummaryData};
        let request = ReadShareGroupStateSummaryRequest::default()
            .with_group_id(group_id(key))
            .with_topics(vec![ReadStateSummaryData::default()
                .with_topic_id(key.topic_id)
                .with_partitions(vec![PartitionData::default()
                    .with_partition(key.partition)
                    .with_leader_epoch(-1)])]);
        let response = self.send(&address, &request, 1).await?;
        let p = response
            .results
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition == key.partition)
            .ok_or(E::UnknownServerError.code())?;
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        Ok(StateSummary {
            state_epoch: p.state_epoch,
            leader_epoch: p.leader_epoch,
            start_offset: p.start_offset,
            delivery_complete_count: p.delivery_complete_count,
        })
    }

    pub async fn delete(&self, key: &StateKey) -> i16 {
        let address = match self.route(key).await {
            Ok(Route::Here) => return self.states.delete(key).await,
            Ok(Route::At(a)) => a,
            Err(code) => return code,
        };
        use delete_share_group_state_request::{DeleteStateData, PartitionData};
        let request = DeleteShareGroupStateRequest::default()
            .with_group_id(group_id(key))
            .with_topics(vec![DeleteStateData::default()
                .with_topic_id(key.topic_id)
                .with_partitions(vec![PartitionData::default().with_partition(key.partition)])]);
        match self.send(&address, &request, 0).await {
            Ok(r) => first_code(r.results.into_iter().flat_map(|t| t.partitions).map(|p| p.error_code)),
            Err(code) => code,
        }
    }
}

fn group_id(key: &StateKey) -> StrBytes {
    StrBytes::from_string(key.group.clone())
}

fn first_code(codes: impl Iterator<Item = i16>) -> i16 {
    codes.into_iter().find(|c| *c != 0).unwrap_or(0)
}
