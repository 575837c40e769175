//! How a node that is not a voter (`process.roles=broker`) reaches the
//! controllers: requests go to the leader it last heard of, else to each
//! voter in turn until one answers as leader. Kafka's brokers find the
//! active controller the same way, from `controller.quorum.voters`.

use super::network::Peers;
use super::rpc::{ForwardedResponse, QuorumRequest, QuorumResponse};
use super::types::NodeId;
use super::QuorumError;
use crate::metadata::ControllerError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const UNKNOWN: u64 = u64::MAX;

pub struct QuorumClient {
    voters: BTreeMap<NodeId, String>,
    peers: Peers,
    leader: AtomicU64,
    next: AtomicU64,
}

impl QuorumClient {
    pub fn new(voters: BTreeMap<NodeId, String>) -> QuorumClient {
        QuorumClient {
            voters,
            peers: Peers::default(),
            leader: AtomicU64::new(UNKNOWN),
            next: AtomicU64::new(0),
        }
    }

    /// The leader last heard of.
    pub fn leader(&self) -> Option<NodeId> {
        Some(self.leader.load(Ordering::Relaxed)).filter(|l| *l != UNKNOWN)
    }

    pub fn set_leader(&self, leader: Option<NodeId>) {
        self.leader.store(leader.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    /// The next voter to try: the known leader, else each in turn.
    fn target(&self) -> Option<(NodeId, &String)> {
        if let Some(leader) = self.leader() {
            if let Some(address) = self.voters.get(&leader) {
                return Some((leader, address));
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        self.voters
            .iter()
            .nth(n % self.voters.len().max(1))
            .map(|(id, a)| (*id, a))
    }

    /// Sends to one voter (the leader if known); a failure forgets the leader.
    pub async fn call_any(
        &self,
        request: &QuorumRequest,
        timeout: Duration,
    ) -> Result<(NodeId, QuorumResponse), QuorumError> {
        let (id, address) = self
            .target()
            .ok_or_else(|| QuorumError::Failed("no controllers configured".into()))?;
        // Given up by the caller (its own timeout) counts as a failure too:
        // a frozen leader would otherwise be asked again and again.
        let mut unanswered = ForgetLeaderUnlessAnswered {
            client: self,
            answered: false,
        };
        let result = self.peers.client(id, address).call(request, timeout).await;
        match result {
            Ok(r) => {
                unanswered.answered = true;
                Ok((id, r))
            }
            Err(e) => Err(QuorumError::Failed(format!("controller {id}: {e}"))),
        }
    }

    /// Sends to the leader, trying voters until one answers as leader.
    pub async fn call_leader(
        &self,
        request: &QuorumRequest,
        timeout: Duration,
    ) -> Result<(NodeId, QuorumResponse), QuorumError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(QuorumError::NoLeader(timeout));
            }
            match self.call_any(request, left).await {
                Ok((_, QuorumResponse::Forward(ForwardedResponse::NotController { leader }))) => {
                    self.set_leader(leader)
                }
                Ok((_, QuorumResponse::Controller(Err(ControllerError::NotController)))) => self.set_leader(None),
                Ok((id, answer)) => {
                    self.set_leader(Some(id));
                    return Ok((id, answer));
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Forgets the leader when dropped before an answer came.
struct ForgetLeaderUnlessAnswered<'a> {
    client: &'a QuorumClient,
    answered: bool,
}

impl Drop for ForgetLeaderUnlessAnswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.client.set_leader(None);
        }
    }
}
