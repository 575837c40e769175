//! The partitions this broker hosts and serves: their logs, opened,
//! created and deleted as the metadata image says (Kafka's ReplicaManager).
//! Followers, ISR and leader epochs grow here.

pub mod replica_manager;

pub use replica_manager::{OpenReport, ReplicaManager, Topic, TopicStats};
