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
}

/// Why a voter could not be added or removed (KIP-853's errors).
#[derive(Debug, Error)]
pub enum VoterChangeError {
    #[error("this node is not the active controller")]
    NotLeader,
    #[error("The voter id for ReplicaKey(id={0}) is already part of the set of voters.")]
    Duplicate(NodeId),
    #[error("Cannot remove voter ReplicaKey(id={0}) since it is not part of the voter set.")]
    NotAVoter(NodeId),
    #[error("The voter's directory id {given} does not match {known}.")]
    WrongDirectory { given: uuid::Uuid, known: uuid::Uuid },
    #[error("{0}")]
    Failed(String),
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
        // A controller formatted without initial voters (KIP-853) waits to be
        // added: the leader replicates to it once it is a learner.
        if fresh && !config.voters.is_empty() {
            let members: BTreeMap<NodeId, Node> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, Node::new(addr.clone(), config.directories.get(id).copied())))
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
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The voters of the latest membership this node knows.
    pub fn voters(&self) -> BTreeMap<NodeId, Node> {
        self.members(true)
    }

    /// Members that replicate the log without voting (controllers waiting
    /// to be added as voters, or removed ones).
    pub fn learners(&self) -> BTreeMap<NodeId, Node> {
        self.members(false)
    }

    fn members(&self, voting: bool) -> BTreeMap<NodeId, Node> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let ids: Vec<NodeId> = if voting {
            membership.voter_ids().collect()
        } else {
            membership.learner_ids().collect()
        };
        ids.into_iter()
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
            .collect()
    }

    /// A voter's metadata directory id (dynamic quorums only).
    pub fn directory_of(&self, id: NodeId) -> Option<uuid::Uuid> {
        self.voters().get(&id).and_then(|n| n.directory_id)
    }

    /// As the leader: makes `id` a voter (KIP-853's AddRaftVoter). It first
    /// replicates the log as a learner until caught up, then joins the
    /// voters in a membership change; answered once that is committed.
    pub async fn add_voter(&self, id: NodeId, node: Node) -> Result<(), VoterChangeError> {
        if !self.is_leader() {
            return Err(VoterChangeError::NotLeader);
        }
        if self.voters().contains_key(&id) {
            return Err(VoterChangeError::Duplicate(id));
        }
        let failed = |e: String| VoterChangeError::Failed(e);
        self.raft
            .add_learner(id, node, true)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let voters: std::collections::BTreeSet<NodeId> = [id].into();
        self.raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(|e| failed(e.to_string()))?;
        info!(voter = id, "added a voter to the controller quorum");
        Ok(())
    }

    /// As the leader: takes `id` out of the voters (RemoveRaftVoter); a
    /// leader that removes itself hands over once the change is committed.
    pub async fn remove_voter(&self, id: NodeId, directory_id: uuid::Uuid) -> Result<(), VoterChangeError> {
        if !self.is_leader() {
            return Err(VoterChangeError::NotLeader);
        }
        let voters = self.voters();
        let Some(node) = voters.get(&id) else {
            return Err(VoterChangeError::NotAVoter(id));
        };
        if let Some(known) = node
            .directory_id
            .filter(|known| *known != directory_id && !directory_id.is_nil())
        {
            return Err(VoterChangeError::WrongDirectory {
                given: directory_id,
                known,
            });
        }
        let gone: std::collections::BTreeSet<NodeId> = [id].into();
        // Kept as a learner: a removed voter goes on as an observer (its
        // broker, if it has one, still needs the metadata), as in Kafka.
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveVoters(gone), true)
            .await
            .map_err(|e| VoterChangeError::Failed(e.to_string()))?;
        info!(voter = id, "removed a voter from the controller quorum");
        Ok(())
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
            .voters()
            .get(&leader)
            .map(|n| n.addr.clone())
            .ok_or_else(|| QuorumError::Failed(format!("no address for controller {leader}")))?;
        let client = self.peers.client(leader, &address);
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
