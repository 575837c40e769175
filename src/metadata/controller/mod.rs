//! The controller: turns admin requests into metadata records. Requests are
//! handled one at a time against the latest image (Kafka's QuorumController
//! event queue): validate, produce records, append them to the metadata log,
//! apply them to the image, hand the new image to the broker's publisher,
//! and answer once it is published here. Produce and Fetch never wait on it.

mod brokers;
mod configs;
mod errors;
mod producer_ids;
mod quotas;
mod security;
mod topics;

pub use errors::ControllerError;
pub use quotas::QuotaChange;
pub use topics::{CreatedTopic, NewTopic, PartitionCount};

use super::cache::Publication;
use super::delta::MetadataDelta;
use super::image::MetadataImage;
use super::log::MetadataLog;
use super::placement::StripedReplicaPlacer;
use super::records::MetadataRecord;
use crate::config::topic::TopicDefaults;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Kafka's cap on the records one request may produce
/// (QuorumController.MAX_RECORDS_PER_USER_OP).
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;
/// Kafka's cap on the partitions one CreateTopics or CreatePartitions may
/// add, checked before anything else (MAX_PARTITIONS_PER_BATCH).
pub const MAX_PARTITIONS_PER_BATCH: i64 = 10_000;

/// What an operation produced: the records to write and the answer to give
/// once they are written (Kafka's ControllerResult).
pub struct ControllerResult<T> {
    pub records: Vec<MetadataRecord>,
    pub response: T,
}

impl<T> ControllerResult<T> {
    pub fn of(records: Vec<MetadataRecord>, response: T) -> Self {
        ControllerResult { records, response }
    }

    pub fn none(response: T) -> Self {
        ControllerResult {
            records: Vec::new(),
            response,
        }
    }
}

/// What the controller checks requests against besides the image.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: i32,
    pub delete_topic_enable: bool,
    pub default_partitions: i32,
    pub default_replication_factor: i16,
    /// The broker's static configuration (its file and overrides), which
    /// dynamic broker configs are resolved against.
    pub static_configs: BTreeMap<String, String>,
}

impl ControllerConfig {
    /// Topic defaults with the image's dynamic broker configs applied.
    pub fn topic_defaults(&self, image: &MetadataImage) -> Result<TopicDefaults, crate::config::ConfigError> {
        topic_defaults(image, self.node_id, &self.static_configs)
    }
}

/// Topic defaults from the layers of broker configuration, most specific first.
pub fn topic_defaults(
    image: &MetadataImage,
    node_id: i32,
    static_configs: &BTreeMap<String, String>,
) -> Result<TopicDefaults, crate::config::ConfigError> {
    use super::records::ConfigResource;
    use crate::config::topic::ConfigSource;
    TopicDefaults::from_layers(&[
        (
            image.configs_of(&ConfigResource::Broker(Some(node_id))),
            ConfigSource::DynamicBroker,
        ),
        (
            image.configs_of(&ConfigResource::Broker(None)),
            ConfigSource::DynamicDefaultBroker,
        ),
        (static_configs, ConfigSource::StaticBroker),
    ])
}

/// Writes a snapshot of the latest image off the async threads; appends
/// wait for the log's lock meanwhile, so it is of the latest image.
fn snapshot_in_background(state: &ControllerState) {
    let log = state.log.clone();
    let image = state.image.clone();
    tokio::task::spawn_blocking(move || {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if log.next_offset() == image.offset + 1 {
            if let Err(e) = log.snapshot(&image) {
                warn!(error = %e, "could not snapshot the metadata log");
            }
        }
    });
}

struct ControllerState {
    image: Arc<MetadataImage>,
    log: Arc<Mutex<MetadataLog>>,
}

pub struct Controller {
    config: ControllerConfig,
    /// Where new partitions go; one random source for all of them, as
    /// Kafka's controller has (taken only while `state` is held).
    placer: Mutex<StripedReplicaPlacer>,
    state: tokio::sync::Mutex<ControllerState>,
    publications: mpsc::UnboundedSender<Publication>,
    published: watch::Receiver<i64>,
}

impl Controller {
    pub fn new(
        config: ControllerConfig,
        log: MetadataLog,
        image: Arc<MetadataImage>,
        publications: mpsc::UnboundedSender<Publication>,
        published: watch::Receiver<i64>,
    ) -> Controller {
        Controller {
            config,
            placer: Mutex::new(StripedReplicaPlacer::from_entropy()),
            state: tokio::sync::Mutex::new(ControllerState {
                image,
                log: Arc::new(Mutex::new(log)),
            }),
            publications,
            published,
        }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    fn placer(&self) -> std::sync::MutexGuard<'_, StripedReplicaPlacer> {
        self.placer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one operation: its records are durable and published on this
    /// broker before its answer is returned.
    pub async fn write<T: Send>(
        &self,
        op: impl FnOnce(&MetadataImage, &ControllerConfig) -> ControllerResult<T> + Send,
    ) -> Result<T, ControllerError> {
        let mut state = self.state.lock().await;
        let ControllerResult { records, response } = op(&state.image, &self.config);
        if records.is_empty() {
            // What the answer was read from is published here before it is given.
            let offset = state.image.offset;
            drop(state);
            self.wait_published(offset).await?;
            return Ok(response);
        }
        if records.len() > MAX_RECORDS_PER_USER_OP {
            return Err(ControllerError::ExcessivelyLargeBatch);
        }
        let log = state.log.clone();
        let (base, records, wants_snapshot) = tokio::task::spawn_blocking(move || {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.append(&records).map(|base| (base, records, log.wants_snapshot()))
        })
        .await
        .map_err(|e| ControllerError::Storage(e.to_string()))?
        .map_err(|e| ControllerError::Storage(e.to_string()))?;
        let mut delta = MetadataDelta::new(&state.image);
        delta.replay_all(base, &records);
        let (image, changes) = delta.apply();
        let image = Arc::new(image);
        state.image = image.clone();
        let offset = image.offset;
        if wants_snapshot {
            snapshot_in_background(&state);
        }
        if self.publications.send(Publication { image, changes }).is_err() {
            return Err(ControllerError::ShuttingDown);
        }
        drop(state);
        self.wait_published(offset).await?;
        Ok(response)
    }

    async fn wait_published(&self, offset: i64) -> Result<(), ControllerError> {
        let mut published = self.published.clone();
        published
            .wait_for(|p| *p >= offset)
            .await
            .map(|_| ())
            .map_err(|_| ControllerError::ShuttingDown)
    }

    /// The latest image the controller has written (may be ahead of what
    /// this broker has published yet).
    pub async fn image(&self) -> Arc<MetadataImage> {
        self.state.lock().await.image.clone()
    }
}
