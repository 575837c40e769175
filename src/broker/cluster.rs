//! Starting a node of a cluster: the cluster id comes from the format step,
//! the metadata from the controller quorum (this node is a voter), and the
//! first leader writes the cluster's initial records.

use crate::config::BrokerConfig;
use crate::metadata::image::MetadataImage;
use crate::metadata::log::METADATA_DIR;
use crate::metadata::records::{ConfigResource, MetadataRecord};
use crate::metadata::{Controller, Publication};
use crate::quorum::{Quorum, QuorumConfig};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Where the quorum keeps its log: `metadata.log.dir`, else the first log dir.
pub fn metadata_dir(config: &BrokerConfig) -> io::Result<PathBuf> {
    let dir = config
        .cluster
        .metadata_log_dir
        .clone()
        .or_else(|| config.log_dirs.first().cloned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log.dirs names no directory"))?;
    Ok(dir.join(METADATA_DIR))
}

/// The cluster id the format step wrote; a cluster node does not start
/// unformatted (as Kafka's does not), so that every node has the same one.
pub fn formatted_cluster_id(config: &BrokerConfig) -> io::Result<String> {
    let mut dirs: Vec<PathBuf> = config.cluster.metadata_log_dir.iter().cloned().collect();
    dirs.extend(config.log_dirs.iter().cloned());
    for dir in &dirs {
        let text = match std::fs::read_to_string(dir.join("meta.properties")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let id = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == "cluster.id")
            .map(|(_, v)| v.trim().to_string());
        if let Some(id) = id {
            return Ok(id);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "No `meta.properties` found in {} (have you run `sluice format` to format the directory?)",
            dirs.first().map_or_else(String::new, |d| d.display().to_string())
        ),
    ))
}

/// Joins the controller quorum as one of its voters.
pub async fn start_quorum(
    config: &BrokerConfig,
    base: Arc<MetadataImage>,
    publications: mpsc::UnboundedSender<Publication>,
) -> io::Result<Arc<Quorum>> {
    let voters = config
        .cluster
        .voters
        .iter()
        .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
        .collect();
    let quorum_config = QuorumConfig {
        node_id: config.node_id as u64,
        voters,
        election_timeout: Duration::from_millis(config.cluster.election_timeout_ms),
    };
    let dir = metadata_dir(config)?;
    let quorum = Quorum::start(quorum_config, &dir, base, publications).await?;
    Ok(Arc::new(quorum))
}

/// The records a new cluster starts with (Kafka's bootstrap metadata).
fn initial_records() -> Vec<MetadataRecord> {
    vec![MetadataRecord::Config {
        resource: ConfigResource::Broker(None),
        name: "min.insync.replicas".into(),
        value: Some("1".into()),
    }]
}

/// Whoever first leads an empty quorum writes the initial records. They
/// are idempotent, so a second leader that also finds the log empty (the
/// first died before committing) does no harm.
pub async fn write_initial_records(controller: Arc<Controller>, quorum: Arc<Quorum>) {
    loop {
        if quorum.image().offset >= 0 {
            return;
        }
        if quorum.is_leader() {
            let records = initial_records();
            match controller
                .write(move |_, _| crate::metadata::controller::ControllerResult::of(records, ()))
                .await
            {
                Ok(()) => {
                    info!("wrote the cluster's initial metadata");
                    return;
                }
                Err(e) => warn!(error = %e, "could not write the initial metadata yet"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
