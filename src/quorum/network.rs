//! Talking to the other controllers: connections per peer, each used for one
//! request at a time and reopened after any failure. openraft's RPCs ride on
//! them, and so do forwarded requests, heartbeats and metadata long-polls: a
//! call takes an idle connection or opens one, so a slow call (a long-poll, a
//! write waiting for its commit) never holds up another.

// openraft's RaftNetwork trait fixes the (large) error type these return.
#![allow(clippy::result_large_err)]

use super::rpc::{decode_response, encode_request, QuorumRequest, QuorumResponse};
use super::types::{Node, NodeId, QuorumTypes};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response a peer may send (a snapshot chunk, a forwarded answer).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Idle connections kept per peer; more are opened when calls overlap.
const MAX_IDLE_CONNECTIONS: usize = 4;

/// One peer's connections.
pub struct PeerClient {
    address: String,
    idle: Mutex<Vec<TcpStream>>,
    correlation: AtomicI32,
}

impl PeerClient {
    fn new(address: String) -> PeerClient {
        PeerClient {
            address,
            idle: Mutex::new(Vec::new()),
            correlation: AtomicI32::new(0),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<TcpStream>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one request and reads its answer within `timeout`.
    pub async fn call(&self, request: &QuorumRequest, timeout: Duration) -> io::Result<QuorumResponse> {
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(correlation_id, request).map_err(io::Error::other)?;
        let pooled = self.idle().pop();
        let result = tokio::time::timeout(timeout, async {
            let mut stream = match pooled {
                Some(stream) => stream,
                None => {
                    let stream = TcpStream::connect(&self.address).await?;
                    let _ = stream.set_nodelay(true);
                    stream
                }
            };
            stream.write_all(&frame).await?;
            let size = stream.read_i32().await?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad quorum response size"))?;
            let mut body = vec![0; size];
            stream.read_exact(&mut body).await?;
            let (id, response) = decode_response(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if id != correlation_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "quorum response out of order",
                ));
            }
            Ok((stream, response))
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "quorum request timed out")));
        // A failed stream may hold half an answer: it is dropped, never reused;
        // and the idle ones are likely as dead (the peer restarted): dropped too.
        let (stream, response) = result.inspect_err(|_| self.idle().clear())?;
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(stream);
        }
        Ok(response)
    }
}

/// Connections to every peer, by node id.
#[derive(Default)]
pub struct Peers {
    clients: Mutex<HashMap<NodeId, (String, Arc<PeerClient>)>>,
}

impl Peers {
    pub fn client(&self, id: NodeId, address: &str) -> Arc<PeerClient> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(&id) {
            Some((a, c)) if a == address => c.clone(),
            _ => {
                let client = Arc::new(PeerClient::new(address.to_string()));
                clients.insert(id, (address.to_string(), client.clone()));
                client
            }
        }
    }
}

/// openraft's view of the network.
#[derive(Clone)]
pub struct Network {
    pub peers: Arc<Peers>,
}

pub struct PeerNetwork {
    target: NodeId,
    client: Arc<PeerClient>,
}

impl RaftNetworkFactory<QuorumTypes> for Network {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerNetwork {
        PeerNetwork {
            target,
            client: self.peers.client(target, &node.addr),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerNetwork {
    async fn send<E: std::error::Error>(
        &self,
        request: QuorumRequest,
        option: &RPCOption,
    ) -> Result<QuorumResponse, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
        match self.client.call(&request, option.hard_ttl()).await {
            Ok(QuorumResponse::Malformed(m)) => Err(RPCError::Network(NetworkError::new(&io::Error::other(m)))),
            Ok(r) => Ok(r),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn remote<T, E: std::error::Error>(
        &self,
        answer: Result<T, RaftError<NodeId, E>>,
    ) -> Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&io::Error::other("unexpected quorum response")))
}

impl RaftNetwork<QuorumTypes> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<QuorumTypes>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.send(QuorumRequest::AppendEntries(rpc), &option).await? {
            QuorumResponse::AppendEntries(answer) => self.remote(answer),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<QuorumTypes>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.send(QuorumRequest::InstallSnapshot(rpc), &option).await? {
            QuorumResponse::InstallSnapshot(answer) => self.remote(answer),
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.send(QuorumRequest::Vote(rpc), &option).await? {
            QuorumResponse::Vote(answer) => self.remote(answer),
            _ => Err(unexpected()),
        }
    }
}
