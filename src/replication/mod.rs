//! The partitions this broker hosts and serves: their logs, opened,
//! created and deleted as the metadata image says (Kafka's ReplicaManager).
//! Followers, ISR and leader epochs grow here: `leader_state` is what a
//! leader knows of its followers (high watermark, ISR changes, acks=all).

pub mod broker_client;
pub mod connection_pool;
pub mod divergence;
pub mod fetcher;
pub mod leader_partition;
pub mod leader_state;
mod log_creation;
pub mod read_replica;
pub mod replica_manager;
#[cfg(test)]
mod replication_tests;
mod roles;
pub mod throttle;

pub use leader_partition::{IsrChange, LeaderPartition};
pub use replica_manager::{LedPartition, OpenReport, ReplicaManager, Topic, TopicStats};
