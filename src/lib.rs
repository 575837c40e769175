//! Sluice: a Kafka wire-protocol compatible broker.
//!
//! Embed a broker (tests do):
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let config = sluice::BrokerConfig::for_embedding(std::path::Path::new("/tmp/data"));
//! let broker = sluice::RunningBroker::start(config).await?;
//! println!("bootstrap.servers={}", broker.local_addr());
//! broker.shutdown().await
//! # }
//! ```

pub mod api;
pub mod auth;
pub mod broker;
pub mod config;
pub mod coordinator;
pub mod fetch_session;
pub mod group;
pub mod metadata;
pub mod metrics;
pub mod protocol;
pub mod quorum;
pub mod quota;
pub mod replication;
pub mod server;
pub mod share;
pub mod storage;
pub mod txn;

pub use broker::{Broker, RunningBroker};
pub use config::BrokerConfig;

impl BrokerConfig {
    /// A config for an embedded broker: 127.0.0.1 on a free port, data in `dir`.
    pub fn for_embedding(dir: &std::path::Path) -> BrokerConfig {
        let mut props = indexmap::IndexMap::new();
        props.insert("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string());
        props.insert("log.dirs".to_string(), dir.display().to_string());
        props.insert("group.initial.rebalance.delay.ms".to_string(), "0".to_string());
        BrokerConfig::from_properties(props).expect("embedding defaults are valid")
    }
}
