//! The controller quorum: the metadata log replicated by openraft among the
//! controllers (Kafka's KRaft quorum). An entry is one batch of metadata
//! records; every node applies committed entries to its image and publishes
//! it as a single node does. The active controller is the Raft leader.

pub mod client;
pub mod log_store;
pub mod network;
pub mod rpc;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

use crate::metadata::image::MetadataImage;
use crate::metadata::Publication;
use log_store::LogStore;
use network::{Network, Peers};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use rpc::{QuorumRequest, QuorumResponse};
use state_machine::MetadataStateMachine;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::info;
use types::{MetadataBatch, Node, NodeId, Raft};

/// How often a voter checks whether a snapshot is due.
const SNAPSHOT_CHECK_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum QuorumError {
    #[error("this node is not the active controller")]
    NotLeader(Option<NodeId>),
    #[error("no active controller within {0:?}")]
    NoLeader(Duration),
    #[error("the quorum failed: {0}")]
    Failed(String),
}

/// The quorum's settings, from Kafka's `controller.quorum.*` keys.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// The voters and their controller listener addresses ("host:port").
    pub voters: BTreeMap<NodeId, String>,
    /// The voters' metadata directory ids of a dynamic quorum (KIP-853,
    /// from the format step); none in a static one.
    pub directories: BTreeMap<NodeId, uuid::Uuid>,
    pub election_timeout: Duration,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub snapshot_after_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms`; None: never by time.
    pub snapshot_interval: Option<Duration>,
}

pub struct Quorum {
    node_id: NodeId,
    raft: Raft,
    state_machine: MetadataStateMachine,
    peers: Arc<Peers>,
    voters: BTreeMap<NodeId, String>,
    directories: BTreeMap<NodeId, uuid::Uuid>,
}

/// openraft's timers for one voter, from `controller.quorum.election.timeout.ms`
/// (T). A follower of a live leader stands for election once it has heard
/// nothing for its leader lease (openraft's `election_timeout_max`) plus its
/// election timeout (drawn once per process from [min, max)), and a voter
/// refuses to vote while its own lease runs. So each voter gets a lease of its
/// own, T/2 plus a step by its rank among the voters, and a timeout just
/// under it: voter k stands about 2·(T/2 + k·T/4n) after the leader went
/// silent, between T and 1.5·T, when every other voter's lease (at most
/// 0.75·T) has run out — the first one to stand wins, and no two stand at
/// the same moment round after round (openraft draws the timeout only once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ElectionTimers {
    min_ms: u64,
    max_ms: u64,
    heartbeat_ms: u64,
}

impl ElectionTimers {
    fn of(config: &QuorumConfig) -> ElectionTimers {
        let t = (config.election_timeout.as_millis() as u64).max(40);
        let n = config.voters.len().max(1) as u64;
        let rank = config.voters.keys().position(|id| *id == config.node_id).unwrap_or(0) as u64;
        let max_ms = t / 2 + rank * t / (4 * n);
        ElectionTimers {
            min_ms: max_ms - (t / 50).max(1),
            max_ms,
            heartbeat_ms: (t / 10).max(2),
        }
    }
}

/// Takes a snapshot of the state machine once `after_bytes` of records were
/// applied since the last one, or `interval` passed with any applied (Kafka's
/// `metadata.log.max.record.bytes.between.snapshots` and
/// `metadata.log.max.snapshot.interval.ms`); openraft then purges the log
/// before it, and a voter too far behind gets the snapshot. Ends with the
/// Raft instance.
async fn snapshot_when_due(raft: Raft, machine: MetadataStateMachine, after_bytes: u64, interval: Option<Duration>) {
    let mut metrics = raft.metrics();
    let mut last = tokio::time::Instant::now();
    // An interval, not a sleep per turn: metrics change more often than it ticks.
    let mut tick = tokio::time::interval(SNAPSHOT_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        let bytes = machine.bytes_since_snapshot();
        let by_time = interval.is_some_and(|i| bytes > 0 && last.elapsed() >= i);
        if bytes < after_bytes && !by_time {
            continue;
        }
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        last = tokio::time::Instant::now();
    }
}

impl Quorum {
    /// Opens the quorum's log and state machine in `dir` and joins the
    /// quorum. With static voters every voter initializes the same first
    /// membership, so no one node has to go first.
    pub async fn start(
        config: QuorumConfig,
        dir: &Path,
        base: Arc<MetadataImage>,
        publications: mpsc::UnboundedSender<Publication>,
    ) -> io::Result<Quorum> {
        let log = LogStore::open(dir)?;
        let fresh = log.is_empty();
        let state_machine = MetadataStateMachine::open(dir, base, publications)?;
        let timers = ElectionTimers::of(&config);
        let raft_config = Config {
            cluster_name: "sluice".into(),
            election_timeout_min: timers.min_ms,
            election_timeout_max: timers.max_ms,
            heartbeat_interval: timers.heartbeat_ms,
            // Snapshots are taken by bytes and time, as Kafka's (`snapshot_when_due`).
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let peers = Arc::new(Peers::default());
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network { peers: peers.clone() },
            log,
            state_machine.clone(),
        )
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
        if fresh {
            let members: BTreeMap<NodeId, Node> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, Node::new(addr.clone())))
                .collect();
            // Another voter may have initialized us already: that is fine.
            if let Err(e) = raft.initialize(members).await {
                info!(error = %e, "quorum already initialized");
            }
        }
        tokio::spawn(snapshot_when_due(
            raft.clone(),
            state_machine.clone(),
            config.snapshot_after_bytes.max(1),
            config.snapshot_interval,
        ));
        Ok(Quorum {
            node_id: config.node_id,
            raft,
            state_machine,
            peers,
            voters: config.voters,
            directories: config.directories,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn voters(&self) -> &BTreeMap<NodeId, String> {
        &self.voters
    }

    /// A voter's metadata directory id (dynamic quorums only).
    pub fn directory_of(&self, id: NodeId) -> Option<uuid::Uuid> {
        self.directories.get(&id).copied()
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The latest committed image applied here.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.state_machine.image()
    }

    /// Watches the latest committed image applied here.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<MetadataImage>> {
        self.state_machine.subscribe()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// Waits until some node leads, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, QuorumError> {
        let mut metrics = self.raft.metrics();
        let found = tokio::time::timeout(timeout, metrics.wait_for(|m| m.current_leader.is_some())).await;
        match found {
            Ok(Ok(m)) => m.current_leader.ok_or(QuorumError::NoLeader(timeout)),
            Ok(Err(_)) => Err(QuorumError::Failed("raft stopped".into())),
            Err(_) => Err(QuorumError::NoLeader(timeout)),
        }
    }

    /// As the leader: returns once every entry committed before now is
    /// applied here, so that what is read next is the latest.
    pub async fn ensure_leader(&self) -> Result<(), QuorumError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(_)) => Err(QuorumError::NotLeader(self.leader())),
            Err(e) => Err(QuorumError::Failed(e.to_string())),
        }
    }

    /// Appends one batch as the leader; returns the metadata offset it left
    /// the image at, once it is committed and applied here.
    pub async fn append(&self, batch: MetadataBatch) -> Result<i64, QuorumError> {
        match self.raft.client_write(batch).await {
            Ok(written) => Ok(written.data.offset),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(QuorumError::NotLeader(f.leader_id)),
            Err(e) => Err(QuorumError::Failed(e.to_string())),
        }
    }

    /// Sends a request to the current leader (waiting for one to exist).
    pub async fn call_leader(
        &self,
        request: &QuorumRequest,
        timeout: Duration,
    ) -> Result<(NodeId, QuorumResponse), QuorumError> {
        let leader = self.wait_for_leader(timeout).await?;
        let address = self
            .voters
            .get(&leader)
            .ok_or_else(|| QuorumError::Failed(format!("no address for controller {leader}")))?;
        let client = self.peers.client(leader, address);
        client
            .call(request, timeout)
            .await
            .map(|r| (leader, r))
            .map_err(|e| QuorumError::Failed(format!("controller {leader}: {e}")))
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
