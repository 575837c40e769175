//! The share coordinator (KIP-932): share groups' delivery state, durable in
//! `__share_group_state` — each partition a `ShareStates` shard run by the
//! coordinator runtime; a share-partition's state lives in the partition
//! its key "group:topicId:partition" hashes to. Share-partition leaders read
//! and write it through the persister (`super::persister`), here or on the
//! broker that leads that partition of the topic.

pub mod batches;
pub mod records;
pub mod shard;

use crate::config::ShareCoordinatorConfig;
use crate::coordinator::state_topic::{ensure_state_topic, new_state_topic};
use crate::coordinator::{partition_for, CoordinatorRuntime};
use crate::metadata::Controller;
use crate::storage::now_ms;
use kafka_protocol::ResponseError as E;
use records::StateKey;
use shard::{ShareStates, StateRead, StateSummary, StateWrite};
use std::sync::Arc;

pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

pub struct ShareStateCoordinator {
    runtime: CoordinatorRuntime<ShareStates>,
    controller: Arc<Controller>,
    config: ShareCoordinatorConfig,
}

impl ShareStateCoordinator {
    pub fn new(config: &ShareCoordinatorConfig, controller: Arc<Controller>) -> ShareStateCoordinator {
        ShareStateCoordinator {
            runtime: CoordinatorRuntime::new(SHARE_STATE_TOPIC, ShareStates::new),
            controller,
            config: config.clone(),
        }
    }

    pub fn runtime(&self) -> &CoordinatorRuntime<ShareStates> {
        &self.runtime
    }

    /// Creates `__share_group_state` if needed (the first lookup of a share
    /// coordinator does, as in Kafka).
    pub async fn ensure_topic(&self) -> Result<(), i16> {
        ensure_state_topic(&self.runtime, &self.controller, || {
            let mut topic = new_state_topic(
                SHARE_STATE_TOPIC,
                self.config.state_topic_partitions,
                self.config.state_topic_replication_factor,
                self.config.state_topic_segment_bytes,
            );
            topic.configs.insert(
                "min.insync.replicas".into(),
                self.config.state_topic_min_isr.to_string(),
            );
            topic
        })
        .await
    }

    fn index_of(&self, key: &StateKey) -> Result<i32, i16> {
        match self.runtime.partition_count() {
            0 => Err(E::CoordinatorNotAvailable.code()),
            n => Ok(partition_for(&key.coordinator_key(), n) as i32),
        }
    }

    /// Whether this node holds the key's shard.
    pub fn holds(&self, key: &StateKey) -> bool {
        self.index_of(key)
            .is_ok_and(|index| self.runtime.loaded().binary_search(&index).is_ok())
    }

    pub async fn initialize(&self, key: &StateKey, state_epoch: i32, start_offset: i64) -> i16 {
        let Ok(index) = self.index_of(key) else {
            return E::CoordinatorNotAvailable.code();
        };
        let now = now_ms();
        self.runtime
            .write(index, |s| s.initialize(key, state_epoch, start_offset, now))
            .await
            .unwrap_or_else(|code| code)
    }

    pub async fn write(&self, key: &StateKey, write: StateWrite) -> i16 {
        let Ok(index) = self.index_of(key) else {
            return E::CoordinatorNotAvailable.code();
        };
        let now = now_ms();
        self.runtime
            .write(index, |s| s.write(key, write, now))
            .await
            .unwrap_or_else(|code| code)
    }

    pub async fn read(&self, key: &StateKey, leader_epoch: i32) -> Result<StateRead, i16> {
        let index = self.index_of(key)?;
        let now = now_ms();
        self.runtime.write(index, |s| s.read(key, leader_epoch, now)).await?
    }

    pub async fn summary(&self, key: &StateKey) -> Result<StateSummary, i16> {
        let index = self.index_of(key)?;
        self.runtime.read(index, |s| s.summary(key)).await
    }

    pub async fn delete(&self, key: &StateKey) -> i16 {
        let Ok(index) = self.index_of(key) else {
            // No topic: no state to delete.
            return 0;
        };
        self.runtime
            .write(index, |s| s.delete(key))
            .await
            .unwrap_or_else(|code| code)
    }

    /// Every key with state of `group` in the shards held here.
    pub async fn keys_of(&self, group: &str) -> Vec<StateKey> {
        let mut out = Vec::new();
        for index in self.runtime.loaded() {
            if let Ok(keys) = self.runtime.read(index, |s| s.keys_of(group)).await {
                out.extend(keys);
            }
        }
        out.sort();
        out
    }
}
