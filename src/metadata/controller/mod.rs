//! The controller: turns admin requests into metadata records. Requests are
//! handled one at a time against the latest image (Kafka's QuorumController
//! event queue): validate, produce records, append them to the metadata log,
//! apply them to the image, hand the new image to the broker's publisher,
//! and answer once it is published here. Produce and Fetch never wait on it.

mod brokers;
mod configs;
mod controllers;
pub mod delegation_tokens;
pub mod elections;
mod errors;
mod features;
mod fencing;
#[cfg(test)]
mod initial_records_tests;
pub mod isr;
#[cfg(test)]
mod large_results_tests;
#[cfg(test)]
mod lifecycle_tests;
mod producer_ids;
mod quotas;
pub mod reassignments;
mod security;
mod topics;

pub use errors::ControllerError;
pub use features::FeatureUpdate;
pub use quotas::QuotaChange;
pub use topics::{CreatedTopic, NewTopic, PartitionCount};

use super::cache::Publication;
use super::delta::MetadataDelta;
use super::image::MetadataImage;
use super::log::MetadataLog;
use super::placement::StripedReplicaPlacer;
use super::records::MetadataRecord;
use crate::config::topic::TopicDefaults;
use crate::quorum::client::QuorumClient;
use crate::quorum::rpc::{ControllerOp, ControllerOpReply, QuorumRequest, QuorumResponse};
use crate::quorum::types::MetadataBatch;
use crate::quorum::{Quorum, QuorumError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
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
    /// The records go in as one batch or not at all (a user's request), and
    /// so at most MAX_RECORDS_PER_USER_OP of them. What the controller does on
    /// its own (fencing a broker, a controlled shutdown, elections) is not
    /// atomic, as in Kafka: any number of records, written in batches of at
    /// most that many — a broker in 25,000 ISRs can still be fenced.
    pub atomic: bool,
}

impl<T> ControllerResult<T> {
    pub fn of(records: Vec<MetadataRecord>, response: T) -> Self {
        ControllerResult {
            records,
            response,
            atomic: true,
        }
    }

    /// Records that may be split over several batches (Kafka's non-atomic results).
    pub fn non_atomic(records: Vec<MetadataRecord>, response: T) -> Self {
        ControllerResult {
            records,
            response,
            atomic: false,
        }
    }

    pub fn none(response: T) -> Self {
        ControllerResult::of(Vec::new(), response)
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

/// Where the controller's records go.
enum Backend {
    /// A single node: the local metadata log, written in turn.
    Local(tokio::sync::Mutex<ControllerState>),
    /// A cluster: the quorum's replicated log; only its leader writes, one
    /// operation at a time.
    Quorum {
        quorum: Arc<Quorum>,
        turn: tokio::sync::Mutex<()>,
        /// What a new cluster's log starts with (the format's bootstrap records).
        initial: Vec<MetadataRecord>,
    },
    /// A broker that is not a controller: everything goes to the active one.
    Remote(Arc<QuorumClient>),
}

pub struct Controller {
    config: ControllerConfig,
    /// Where new partitions go; one random source for all of them, as
    /// Kafka's controller has (taken only in an operation's turn).
    placer: Mutex<StripedReplicaPlacer>,
    /// Brokers' heartbeats, as the active controller.
    heartbeats: Mutex<fencing::Heartbeats>,
    backend: Backend,
    publications: mpsc::UnboundedSender<Publication>,
    published: watch::Receiver<i64>,
    /// This node's broker has begun its controlled shutdown: no more heartbeats.
    leaving: AtomicBool,
    /// This node stops publishing: nothing waits for a publication any more.
    stopping: CancellationToken,
}

/// How long a node waits for an active controller to answer.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

impl Controller {
    pub fn new(
        config: ControllerConfig,
        log: MetadataLog,
        image: Arc<MetadataImage>,
        publications: mpsc::UnboundedSender<Publication>,
        published: watch::Receiver<i64>,
    ) -> Controller {
        let state = ControllerState {
            image,
            log: Arc::new(Mutex::new(log)),
        };
        Self::with_backend(
            config,
            Backend::Local(tokio::sync::Mutex::new(state)),
            publications,
            published,
        )
    }

    /// A controller on a local log whose publications count as published at
    /// once: where no broker applies them (tests, the controller benchmark).
    /// Call within a tokio runtime.
    pub fn published_at_once(config: ControllerConfig, log: MetadataLog, image: Arc<MetadataImage>) -> Controller {
        let (publications, mut received) = mpsc::unbounded_channel::<Publication>();
        let (published, watching) = watch::channel(image.offset);
        tokio::spawn(async move {
            while let Some(p) = received.recv().await {
                published.send_replace(p.image.offset);
            }
        });
        Controller::new(config, log, image, publications, watching)
    }

    fn with_backend(
        config: ControllerConfig,
        backend: Backend,
        publications: mpsc::UnboundedSender<Publication>,
        published: watch::Receiver<i64>,
    ) -> Controller {
        Controller {
            config,
            placer: Mutex::new(StripedReplicaPlacer::from_entropy()),
            heartbeats: Default::default(),
            backend,
            publications,
            published,
            leaving: AtomicBool::new(false),
            stopping: CancellationToken::new(),
        }
    }

    /// This node's broker begins its controlled shutdown.
    pub fn begin_leaving(&self) {
        self.leaving.store(true, Ordering::Relaxed);
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// The node stops: its publisher is gone, so whatever waits for a
    /// publication gets ShuttingDown.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// A controller over the quorum (the quorum publishes what it applies).
    /// `initial`: the records a new cluster's log starts with; the first
    /// leader of an empty log writes them before anything else.
    pub fn over_quorum(
        config: ControllerConfig,
        quorum: Arc<Quorum>,
        initial: Vec<MetadataRecord>,
        publications: mpsc::UnboundedSender<Publication>,
        published: watch::Receiver<i64>,
    ) -> Controller {
        let backend = Backend::Quorum {
            quorum,
            turn: tokio::sync::Mutex::new(()),
            initial,
        };
        Self::with_backend(config, backend, publications, published)
    }

    /// A broker's view of controllers elsewhere (`process.roles=broker`).
    pub fn remote(
        config: ControllerConfig,
        client: Arc<QuorumClient>,
        publications: mpsc::UnboundedSender<Publication>,
        published: watch::Receiver<i64>,
    ) -> Controller {
        Self::with_backend(config, Backend::Remote(client), publications, published)
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    fn placer(&self) -> std::sync::MutexGuard<'_, StripedReplicaPlacer> {
        self.placer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The quorum, on a node that is one of its voters.
    pub fn quorum(&self) -> Option<&Arc<Quorum>> {
        match &self.backend {
            Backend::Quorum { quorum, .. } => Some(quorum),
            Backend::Local(_) | Backend::Remote(_) => None,
        }
    }

    /// Whether this node is part of a cluster (a voter or a broker of one).
    pub fn is_clustered(&self) -> bool {
        !matches!(self.backend, Backend::Local(_))
    }

    /// Whether operations run here: a single node, or the quorum's leader.
    pub fn is_active(&self) -> bool {
        match &self.backend {
            Backend::Local(_) => true,
            Backend::Quorum { quorum, .. } => quorum.is_leader(),
            Backend::Remote(_) => false,
        }
    }

    /// The active controller as this node knows it.
    pub fn active_id(&self) -> Option<i32> {
        match &self.backend {
            Backend::Local(_) => Some(self.config.node_id),
            Backend::Quorum { quorum, .. } => quorum.leader().map(|l| l as i32),
            Backend::Remote(client) => client.leader().map(|l| l as i32),
        }
    }

    /// Sends a request to the active controller.
    pub async fn call_leader(
        &self,
        request: &QuorumRequest,
        timeout: Duration,
    ) -> Result<(u64, QuorumResponse), QuorumError> {
        match &self.backend {
            Backend::Local(_) => Err(QuorumError::Failed("a single node has no other controller".into())),
            Backend::Quorum { quorum, .. } => quorum.call_leader(request, timeout).await,
            Backend::Remote(client) => client.call_leader(request, timeout).await,
        }
    }

    /// Runs one operation: its records are durable and published on this
    /// broker before its answer is returned.
    pub async fn write<T: Send>(
        &self,
        op: impl FnOnce(&MetadataImage, &ControllerConfig) -> ControllerResult<T> + Send,
    ) -> Result<T, ControllerError> {
        let state = match &self.backend {
            Backend::Local(state) => state,
            // Boxed: request handlers (and so every connection) would carry its size.
            Backend::Quorum { quorum, turn, initial } => {
                return Box::pin(self.write_to_quorum(quorum, turn, initial, op)).await
            }
            Backend::Remote(_) => return Err(ControllerError::NotController),
        };
        let mut state = state.lock().await;
        let ControllerResult {
            records,
            response,
            atomic,
        } = op(&state.image, &self.config);
        if records.is_empty() {
            // What the answer was read from is published here before it is given.
            let offset = state.image.offset;
            drop(state);
            self.wait_published(offset).await?;
            return Ok(response);
        }
        if atomic && records.len() > MAX_RECORDS_PER_USER_OP {
            return Err(ControllerError::ExcessivelyLargeBatch);
        }
        // The local log writes any number of records as one frame, all or nothing.
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

    /// As the quorum's leader: the operation sees every committed change,
    /// and its records are committed before it is answered.
    async fn write_to_quorum<T: Send>(
        &self,
        quorum: &Quorum,
        turn: &tokio::sync::Mutex<()>,
        initial: &[MetadataRecord],
        op: impl FnOnce(&MetadataImage, &ControllerConfig) -> ControllerResult<T> + Send,
    ) -> Result<T, ControllerError> {
        let turn = turn.lock().await;
        quorum.ensure_leader().await.map_err(quorum_error)?;
        let mut image = quorum.image();
        if image.offset < 0 && !initial.is_empty() {
            // The first write to a new cluster's log: the bootstrap records
            // (SCRAM credentials from the format step) go first, or a broker's
            // registration would make the log look started without them.
            quorum
                .append(MetadataBatch {
                    records: initial.to_vec(),
                })
                .await
                .map_err(quorum_error)?;
            image = quorum.image();
            tracing::info!(records = initial.len(), "wrote the cluster's initial metadata");
        }
        let ControllerResult {
            records,
            response,
            atomic,
        } = op(&image, &self.config);
        if atomic && records.len() > MAX_RECORDS_PER_USER_OP {
            return Err(ControllerError::ExcessivelyLargeBatch);
        }
        let mut offset = image.offset;
        // A non-atomic result goes in Raft entries of at most the cap each;
        // each one committed is applied by the state machine on its own.
        for chunk in records.chunks(MAX_RECORDS_PER_USER_OP) {
            offset = quorum
                .append(MetadataBatch {
                    records: chunk.to_vec(),
                })
                .await
                .map_err(quorum_error)?;
        }
        drop(turn);
        self.wait_published(offset).await?;
        Ok(response)
    }

    /// Waits until this node has published the image at `offset` (or later).
    pub async fn wait_published(&self, offset: i64) -> Result<(), ControllerError> {
        let mut published = self.published.clone();
        tokio::select! {
            done = published.wait_for(|p| *p >= offset) => done.map(|_| ()).map_err(|_| ControllerError::ShuttingDown),
            _ = self.stopping.cancelled() => Err(ControllerError::ShuttingDown),
        }
    }

    /// The offset this node has published.
    pub fn published_offset(&self) -> i64 {
        *self.published.borrow()
    }

    /// Runs one of the controller's own operations here if this node is the
    /// active controller, else on the active controller; answered once this
    /// node has published its outcome.
    pub async fn run(&self, op: ControllerOp) -> Result<ControllerOpReply, ControllerError> {
        if self.is_active() {
            Box::pin(self.execute(op)).await
        } else {
            Box::pin(self.run_on_leader(op)).await
        }
    }

    /// Sends an operation to the active controller, until one answers.
    async fn run_on_leader(&self, op: ControllerOp) -> Result<ControllerOpReply, ControllerError> {
        let request = QuorumRequest::Controller(op);
        let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let answer = self.call_leader(&request, left).await;
            match answer {
                Ok((_, QuorumResponse::Controller(Ok((reply, offset))))) => {
                    self.wait_published(offset).await?;
                    return Ok(reply);
                }
                Ok((_, QuorumResponse::Controller(Err(ControllerError::NotController)))) | Err(_)
                    if left > Duration::ZERO =>
                {
                    // Leadership moved, or the leader is unreachable: ask again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok((_, QuorumResponse::Controller(Err(e)))) => return Err(e),
                Ok((leader, other)) => {
                    return Err(ControllerError::QuorumUnavailable(format!(
                        "controller {leader} answered {other:?}"
                    )))
                }
                Err(e) => return Err(ControllerError::QuorumUnavailable(e.to_string())),
            }
        }
    }

    /// Runs an operation on this node (the active controller).
    pub async fn execute(&self, op: ControllerOp) -> Result<ControllerOpReply, ControllerError> {
        match op {
            ControllerOp::CreateTopics { topics, validate_only } => self
                .create_topics_here(topics, validate_only)
                .await
                .map(ControllerOpReply::CreateTopics),
            ControllerOp::AllocateProducerIds => self
                .allocate_producer_ids_here()
                .await
                .map(|(first, count)| ControllerOpReply::AllocateProducerIds(first, count)),
            ControllerOp::RegisterBroker {
                broker_id,
                endpoints,
                rack,
                directory_id,
                incarnation_id,
            } => self
                .register_broker_here(broker_id, endpoints, rack, directory_id, incarnation_id)
                .await
                .map(|_| ControllerOpReply::RegisterBroker),
            ControllerOp::Heartbeat {
                broker_id,
                shutting_down,
            } => self
                .heartbeat_here(broker_id, shutting_down)
                .await
                .map(|_| ControllerOpReply::Heartbeat),
            ControllerOp::RegisterController(registration) => self.register_controller_here(registration).await,
            ControllerOp::AlterPartitions(requests) => self.alter_partitions_here(requests).await,
            ControllerOp::ReplicasOffline { broker_id, partitions } => self
                .replicas_offline_here(broker_id, partitions)
                .await
                .map(|_| ControllerOpReply::ReplicasOffline),
        }
    }

    /// The latest image the controller has written (may be ahead of what
    /// this broker has published yet).
    pub async fn image(&self) -> Arc<MetadataImage> {
        match &self.backend {
            Backend::Local(state) => state.lock().await.image.clone(),
            Backend::Quorum { quorum, .. } => quorum.image(),
            // Not a controller: it writes nothing, and nothing here asks it.
            Backend::Remote(_) => Arc::new(MetadataImage::default()),
        }
    }
}

fn quorum_error(e: QuorumError) -> ControllerError {
    match e {
        QuorumError::NotLeader(_) => ControllerError::NotController,
        e => ControllerError::QuorumUnavailable(e.to_string()),
    }
}
