//! Sluice: a Kafka wire-protocol compatible broker.
//!
//! Embed a broker in a Rust test: it listens on 127.0.0.1, port 0, keeps its
//! data where you say, and is ready when `start` returns (milliseconds).
//! Point any Kafka client at `local_addr()`:
//! ```
//! # fn main() -> std::io::Result<()> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // In a #[tokio::test] (multi-threaded runtime) of your own:
//! let data = tempfile::tempdir()?;
//! let config = sluice::BrokerConfig::for_embedding(data.path());
//! let broker = sluice::RunningBroker::start(config).await?;
//! let bootstrap = broker.local_addr().to_string(); // e.g. "127.0.0.1:40987"
//!
//! // ... your client (rdkafka, kafka-protocol, ...) connects to `bootstrap` here;
//! // this example checks that something answers there.
//! tokio::net::TcpStream::connect(&bootstrap).await?;
//!
//! broker.shutdown().await // logs flushed and closed; `data` is removed on drop
//! # })
//! # }
//! ```
//!
//! From any other language, run the binary: `sluice --ephemeral --override
//! listeners=PLAINTEXT://127.0.0.1:0` prints one JSON line on stdout once it
//! answers, naming the bootstrap address (see README.md, "Run it").

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
