//! The coordinator runtime shared by the group and transaction coordinators
//! (Kafka's CoordinatorRuntime): one state machine (`Shard`) per partition
//! of the coordinator's internal topic. Operations return the records they
//! make; the runtime appends them to the partition (off the async threads)
//! and replays them; loading a partition replays the same records. Shards
//! load and unload at run time as the partitions come and go.

pub mod flexible;
pub mod loader;
pub mod runtime;
pub mod state_topic;

pub use runtime::{CoordinatorResult, CoordinatorRuntime, Shard};
pub use state_topic::{partition_for, TxnProducer};
