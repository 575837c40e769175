//! The persister (Kafka's DefaultStatePersister): how a share-partition
//! leader and the group coordinator reach a share-partition's durable state.
//! On a single node, or where this broker leads the key's partition of
//! `__share_group_state`, the share coordinator here answers; elsewhere the
//! request goes to the broker that leads it, as Kafka's brokers send it.

use super::state::records::StateKey;
use super::state::shard::{StateRead, StateSummary, StateWrite};
use super::state::{ShareStateCoordinator, SHARE_STATE_TOPIC};
use crate::coordinator::partition_for;
use crate::metadata::MetadataCache;
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

impl Persister<'_> {
    /// Where a key's state is answered: here (None), or at the address of
    /// the broker leading its partition of `__share_group_state`.
    async fn remote(&self, key: &StateKey) -> Result<Option<String>, i16> {
        self.states.ensure_topic().await?;
        if !self.clustered || self.states.holds(key) {
            return Ok(None);
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
            .map(Some)
            .ok_or(E::CoordinatorNotAvailable.code())
    }

    async fn send<R: Request>(&self, address: &str, request: &R, version: i16) -> Result<R::Response, i16> {
        let client_id = format!("share-persister-{}", self.node_id);
        let answer = self
            .replicas
            .connections
            .send(address, &client_id, request, version, REQUEST_TIMEOUT);
        answer.await.map_err(|e| {
            debug!(address, error = %e, "share coordinator not answered");
            E::CoordinatorNotAvailable.code()
        })
    }

    pub async fn read(&self, key: &StateKey, leader_epoch: i32) -> Result<StateRead, i16> {
        let Some(address) = self.remote(key).await? else {
            return self.states.read(key, leader_epoch).await;
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
        let p = answer_for(key, response.results.into_iter().flat_map(|t| t.partitions))?;
        Ok(StateRead {
            state_epoch: p.state_epoch,
            start_offset: p.start_offset,
            batches: p.state_batches.iter().map(Into::into).collect(),
        })
    }

    pub async fn write(&self, key: &StateKey, write: StateWrite) -> i16 {
        let answer = async {
            let Some(address) = self.remote(key).await? else {
                return ok(self.states.write(key, write).await);
            };
            use write_share_group_state_request::{PartitionData, WriteStateData};
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
                        .with_state_batches(write.batches.iter().map(Into::into).collect())])]);
            let response = self.send(&address, &request, 1).await?;
            answer_for(key, response.results.into_iter().flat_map(|t| t.partitions)).map(drop)
        };
        code_of(answer.await)
    }

    pub async fn initialize(&self, key: &StateKey, state_epoch: i32, start_offset: i64) -> i16 {
        let answer = async {
            let Some(address) = self.remote(key).await? else {
                return ok(self.states.initialize(key, state_epoch, start_offset).await);
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
            let response = self.send(&address, &request, 0).await?;
            answer_for(key, response.results.into_iter().flat_map(|t| t.partitions)).map(drop)
        };
        code_of(answer.await)
    }

    pub async fn summary(&self, key: &StateKey) -> Result<StateSummary, i16> {
        let Some(address) = self.remote(key).await? else {
            return self.states.summary(key).await;
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
        let p = answer_for(key, response.results.into_iter().flat_map(|t| t.partitions))?;
        Ok(StateSummary {
            state_epoch: p.state_epoch,
            leader_epoch: p.leader_epoch,
            start_offset: p.start_offset,
            delivery_complete_count: p.delivery_complete_count,
        })
    }

    pub async fn delete(&self, key: &StateKey) -> i16 {
        let answer = async {
            let Some(address) = self.remote(key).await? else {
                return ok(self.states.delete(key).await);
            };
            use delete_share_group_state_request::{DeleteStateData, PartitionData};
            let request = DeleteShareGroupStateRequest::default()
                .with_group_id(group_id(key))
                .with_topics(vec![DeleteStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![PartitionData::default().with_partition(key.partition)])]);
            let response = self.send(&address, &request, 0).await?;
            answer_for(key, response.results.into_iter().flat_map(|t| t.partitions)).map(drop)
        };
        code_of(answer.await)
    }
}

fn group_id(key: &StateKey) -> StrBytes {
    StrBytes::from_string(key.group.clone())
}

fn ok(code: i16) -> Result<(), i16> {
    if code == 0 {
        Ok(())
    } else {
        Err(code)
    }
}

fn code_of(result: Result<(), i16>) -> i16 {
    result.err().unwrap_or(0)
}

/// A partition's answer in a share-group-state response.
trait PartitionAnswer {
    fn partition(&self) -> i32;
    fn error_code(&self) -> i16;
}

macro_rules! partition_answer {
    ($($answer:ty),*) => {
        $(impl PartitionAnswer for $answer {
            fn partition(&self) -> i32 {
                self.partition
            }
            fn error_code(&self) -> i16 {
                self.error_code
            }
        })*
    };
}

partition_answer!(
    read_share_group_state_response::PartitionResult,
    write_share_group_state_response::PartitionResult,
    initialize_share_group_state_response::PartitionResult,
    read_share_group_state_summary_response::PartitionResult,
    delete_share_group_state_response::PartitionResult
);

/// The key's partition in a response, or its error.
fn answer_for<P: PartitionAnswer>(key: &StateKey, partitions: impl IntoIterator<Item = P>) -> Result<P, i16> {
    let p = partitions
        .into_iter()
        .find(|p| p.partition() == key.partition)
        .ok_or(E::UnknownServerError.code())?;
    ok(p.error_code()).map(|()| p)
}
