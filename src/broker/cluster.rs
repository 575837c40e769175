//! Starting a node of a cluster: the cluster id comes from the format step,
//! the metadata from the controller quorum (this node is a voter), and the
//! first leader writes the cluster's initial records.

use super::Broker;
use crate::config::cluster::Voter;
use crate::config::BrokerConfig;
use crate::metadata::controller::elections::ElectionType;
use crate::metadata::delta::MetadataChanges;
use crate::metadata::format::{require_format, FormatState};
use crate::metadata::image::MetadataImage;
use crate::metadata::log::METADATA_DIR;
use crate::metadata::records::{ConfigResource, MetadataRecord};
use crate::metadata::{Controller, Publication};
use crate::quorum::client::QuorumClient;
use crate::quorum::rpc::{QuorumRequest, QuorumResponse};
use crate::quorum::state_machine::image_from;
use crate::quorum::{Quorum, QuorumConfig};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Where the quorum keeps its log: in the metadata dir (`metadata.log.dir`,
/// else the first log dir), where the format step wrote.
pub fn metadata_dir(config: &BrokerConfig) -> PathBuf {
    crate::metadata::format::metadata_dir(config).join(METADATA_DIR)
}

/// What the format step wrote; a cluster node does not start unformatted (as
/// Kafka's does not), so that every node has the same cluster id.
pub fn formatted(config: &BrokerConfig) -> io::Result<FormatState> {
    require_format(config).map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))
}

/// Joins the controller quorum as one of its voters.
pub async fn start_quorum(
    config: &BrokerConfig,
    format: &FormatState,
    base: Arc<MetadataImage>,
    publications: mpsc::UnboundedSender<Publication>,
) -> io::Result<Arc<Quorum>> {
    // Static voters, or the initial voters of a dynamic quorum (KIP-853).
    // None: formatted with --no-initial-controllers, this controller waits
    // to be added (`kafka-metadata-quorum add-controller`).
    let voters: Vec<Voter> = match (&config.cluster.voters, &format.initial_voters) {
        (v, _) if !v.is_empty() => v.clone(),
        (_, Some(initial)) => initial.clone(),
        _ => Vec::new(),
    };
    let directories = voters
        .iter()
        .filter_map(|v| Some((v.id as u64, v.directory_id?)))
        .collect();
    let voters = voters
        .iter()
        .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
        .collect();
    let quorum_config = QuorumConfig {
        node_id: config.node_id as u64,
        voters,
        directories,
        election_timeout: Duration::from_millis(config.cluster.election_timeout_ms),
        snapshot_after_bytes: config.cluster.snapshot_after_bytes,
        snapshot_interval: Some(config.cluster.snapshot_interval_ms)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
    };
    let dir = metadata_dir(config);
    let quorum = Quorum::start(quorum_config, &dir, base, publications).await?;
    Ok(Arc::new(quorum))
}

/// The records a new cluster starts with (Kafka's bootstrap metadata) and
/// what the format step added (SCRAM credentials).
pub fn initial_records(format: &FormatState, config: &BrokerConfig) -> Vec<MetadataRecord> {
    // As Kafka's formatter: the cluster-wide min.insync.replicas is the
    // formatting node's own (its static key, else Kafka's default 1).
    let min_isr = config
        .properties
        .get("min.insync.replicas")
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "1".into());
    let mut records = vec![MetadataRecord::Config {
        resource: ConfigResource::Broker(None),
        name: "min.insync.replicas".into(),
        value: Some(min_isr),
    }];
    records.extend(format.bootstrap_records.iter().cloned());
    records
}

/// Whoever first leads an empty quorum writes the initial records, even
/// when no one asks the controller for anything: the controller's first
/// write to an empty log writes them (before what was asked).
pub async fn write_initial_records(controller: Arc<Controller>, quorum: Arc<Quorum>) {
    loop {
        if quorum.image().offset >= 0 {
            return;
        }
        if quorum.is_leader() {
            match controller
                .write(|_, _| crate::metadata::controller::ControllerResult::of(Vec::new(), ()))
                .await
            {
                Ok(()) => return,
                Err(e) => warn!(error = %e, "could not write the initial metadata yet"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Heartbeats to the active controller, so that this broker stays unfenced.
/// The first goes as soon as `ready` is notified (its metadata caught up and
/// its roles applied, when Kafka's broker asks to be unfenced), not an
/// interval after the registration: a restarted broker rejoins its ISRs,
/// which take only unfenced replicas, that much sooner.
pub async fn heartbeat(broker: Arc<Broker>, ready: Arc<tokio::sync::Notify>) {
    let interval = Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms);
    let session = Duration::from_millis(broker.config.cluster.broker_session_timeout_ms);
    let attempt = heartbeat_attempt_timeout(interval, session);
    let mut wait = interval;
    let mut ready = Some(ready);
    loop {
        let ready_now = async {
            match ready.take() {
                Some(r) => r.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = ready_now => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if broker.controller.is_leaving() {
            return; // the controlled shutdown's own heartbeat says the rest
        }
        // A heartbeat stuck on a frozen or cut-off controller is given up
        // early and sent again: a new active controller gives every broker
        // one session from its takeover, and one long wait would use it up.
        wait = match tokio::time::timeout(attempt, broker.controller.heartbeat(broker.node_id(), false)).await {
            Ok(Ok(())) => {
                // Kafka's heartbeat names the failed log dirs; here, their replicas.
                let offline = broker.replicas.offline_replicas();
                if !offline.is_empty() {
                    if let Err(e) = broker.controller.replicas_offline(broker.node_id(), offline).await {
                        debug!(error = %e, "offline replicas not reported yet");
                    }
                }
                interval
            }
            Ok(Err(e)) => {
                debug!(error = %e, "heartbeat not answered");
                HEARTBEAT_RETRY
            }
            Err(_) => {
                debug!("heartbeat timed out");
                HEARTBEAT_RETRY
            }
        };
    }
}

const HEARTBEAT_RETRY: Duration = Duration::from_millis(100);

/// How long one heartbeat may take: a quarter of the session (so several
/// tries fit in it), never less than the interval between heartbeats.
fn heartbeat_attempt_timeout(interval: Duration, session: Duration) -> Duration {
    (session / 4).max(interval).min(session)
}

/// As the active controller: fences brokers whose session expired.
pub async fn fence_silent_brokers(broker: Arc<Broker>) {
    let session = Duration::from_millis(broker.config.cluster.broker_session_timeout_ms);
    let every =
        Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms).min(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = broker.controller.fence_silent_brokers(session).await {
            debug!(error = %e, "could not fence silent brokers");
        }
    }
}

/// As the active controller, with `auto.leader.rebalance.enable`: every
/// `leader.imbalance.check.interval.seconds`, a preferred election on every
/// partition whose first replica is in the ISR, unfenced, and not leading
/// (Kafka's periodic leader balancing).
pub async fn rebalance_leaders(broker: Arc<Broker>) {
    if !broker.config.cluster.auto_leader_rebalance {
        return;
    }
    let every = Duration::from_millis(broker.config.cluster.leader_imbalance_check_interval_ms);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if !broker.controller.is_active() {
            continue;
        }
        match broker.controller.elect_leaders(ElectionType::Preferred, None).await {
            Ok(moved) if !moved.is_empty() => {
                info!(
                    partitions = moved.len(),
                    "leaders given back to their preferred replicas"
                )
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "could not balance the leaders"),
        }
    }
}

/// Before stopping: asks the active controller to fence this broker, so
/// that the partitions it leads get other leaders first (Kafka's controlled
/// shutdown).
pub async fn controlled_shutdown(broker: &Broker) {
    broker.controller.begin_leaving();
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        broker.controller.heartbeat(broker.node_id(), true),
    )
    .await;
    match asked {
        Ok(Ok(())) => info!("controlled shutdown: leadership moved off this broker"),
        Ok(Err(e)) => warn!(error = %e, "controlled shutdown not done"),
        Err(_) => warn!("controlled shutdown timed out"),
    }
}

/// Where a broker that is not a voter finds the controllers: the static
/// voters, else `controller.quorum.bootstrap.servers` (ids unknown: numbered
/// here only to address them).
pub fn quorum_client(config: &BrokerConfig) -> QuorumClient {
    let voters = if config.cluster.voters.is_empty() {
        config
            .cluster
            .bootstrap_servers
            .iter()
            .enumerate()
            .map(|(i, (host, port))| (u64::MAX - 1 - i as u64, format!("{host}:{port}")))
            .collect()
    } else {
        config
            .cluster
            .voters
            .iter()
            .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
            .collect()
    };
    QuorumClient::new(voters)
}

/// As a broker that is not a voter: keeps this node's image in step with
/// the controllers' committed metadata, and publishes each new one. Stops
/// when the node does (the publisher goes away).
pub async fn follow_metadata(client: Arc<QuorumClient>, publications: mpsc::UnboundedSender<Publication>) {
    let mut current = Arc::new(MetadataImage::default());
    loop {
        let request = QuorumRequest::FetchMetadata { after: current.offset };
        match client.call_any(&request, Duration::from_secs(5)).await {
            Ok((_, QuorumResponse::Metadata { leader, image })) => {
                client.set_leader(leader);
                if let Some((offset, records)) = image {
                    let next = Arc::new(image_from(offset, &records));
                    let changes = MetadataChanges::between(&current, &next);
                    current = next.clone();
                    if publications.send(Publication { image: next, changes }).is_err() {
                        return;
                    }
                }
            }
            Ok((id, other)) => {
                debug!(controller = id, ?other, "unexpected answer to a metadata fetch");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                if publications.is_closed() {
                    return;
                }
                debug!(error = %e, "metadata fetch failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
