//! The partitions this broker hosts and serves: their logs, opened,
//! created and deleted as the metadata image says (Kafka's ReplicaManager).
//! Followers, ISR and leader epochs grow here: `leader_state` is what a
//! leader knows of its followers (high watermark, ISR changes, acks=all).

pub mod leader_state;
pub mod replica_manager;

pub use replica_manager::{OpenReport, ReplicaManager, Topic, TopicStats};
