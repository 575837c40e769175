//! Loading the metadata at start-up: the metadata log (snapshot, then
//! batches) replayed into an image. On the very first start the log is
//! seeded with the cluster's initial records (or with what an older Sluice's
//! metadata file held), and Kafka's `meta.properties` names the cluster and
//! node in every log directory.

use super::delta::MetadataDelta;
use super::image::MetadataImage;
use super::log::{MetadataLog, METADATA_DIR};
use super::records::{ConfigResource, MetadataRecord};
use super::{legacy, new_uuid, topic_id_string};
use crate::config::BrokerConfig;
use std::io;
use std::path::Path;
use tracing::info;

pub struct LoadedMetadata {
    pub log: MetadataLog,
    pub image: MetadataImage,
    pub cluster_id: String,
}

/// What `meta.properties` says: (cluster id, node id).
fn read_meta_properties(dir: &Path) -> io::Result<Option<(Option<String>, Option<i32>)>> {
    let text = match std::fs::read_to_string(dir.join("meta.properties")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    Ok(Some((
        value("cluster.id"),
        value("node.id").and_then(|n| n.parse().ok()),
    )))
}

/// Writes Kafka's `meta.properties` (so the directory reads like a Kafka log dir).
fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<()> {
    let path = dir.join("meta.properties");
    let text = format!("#Written by Sluice\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    crate::storage::write_file_atomically(&path, text.as_bytes())
}

fn append(log: &mut MetadataLog, image: MetadataImage, records: &[MetadataRecord]) -> io::Result<MetadataImage> {
    let base = log.append(records)?;
    let mut delta = MetadataDelta::new(&image);
    delta.replay_all(base, records);
    Ok(delta.apply().0)
}

/// Opens the metadata log in the first log directory and replays it.
pub fn load(config: &BrokerConfig) -> io::Result<LoadedMetadata> {
    let primary = config
        .log_dirs
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log.dirs names no directory"))?;
    let mut cluster_id = None;
    for dir in &config.log_dirs {
        if let Some((stored_cluster, stored_node)) = read_meta_properties(dir)? {
            if let Some(stored) = stored_node.filter(|n| *n != config.node_id) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "Stored node id {stored} doesn't match previous node id {} in {}",
                        config.node_id,
                        dir.display()
                    ),
                ));
            }
            cluster_id = cluster_id.or(stored_cluster);
        }
    }
    let (mut log, loaded) = MetadataLog::open(&primary.join(METADATA_DIR))?;
    let mut delta = MetadataDelta::new(&MetadataImage::default());
    if let Some((offset, records)) = &loaded.snapshot {
        delta.replay_snapshot(*offset, records);
    }
    for (base, records) in &loaded.batches {
        delta.replay_all(*base, records);
    }
    let mut image = delta.apply().0;
    if image.offset < 0 {
        let (records, migrated) = match legacy::read(primary, config.node_id)? {
            Some(old) => {
                cluster_id = cluster_id.or(Some(old.cluster_id.clone()));
                (old.records, Some(old.path))
            }
            // Kafka's KRaft bootstrap writes this cluster-wide dynamic default.
            None => (
                vec![MetadataRecord::Config {
                    resource: ConfigResource::Broker(None),
                    name: "min.insync.replicas".into(),
                    value: Some("1".into()),
                }],
                None,
            ),
        };
        if !records.is_empty() {
            image = append(&mut log, image, &records)?;
        }
        if let Some(path) = migrated {
            // Kept beside, renamed: it is read only when the log is empty.
            std::fs::rename(&path, path.with_extension("json.migrated"))?;
            info!(
                records = records.len(),
                "moved the metadata file's contents into the metadata log"
            );
        }
    }
    let cluster_id = cluster_id
        .or_else(|| config.cluster_id.clone())
        .unwrap_or_else(|| topic_id_string(new_uuid()));
    for dir in &config.log_dirs {
        write_meta_properties(dir, &cluster_id, config.node_id)?;
    }
    if !config.initial_scram.is_empty() {
        let records: Vec<MetadataRecord> = config
            .initial_scram
            .iter()
            .map(|(name, mechanism, credential)| MetadataRecord::UserScramCredential {
                name: name.clone(),
                mechanism: *mechanism,
                credential: credential.clone(),
            })
            .collect();
        image = append(&mut log, image, &records)?;
        info!(
            credentials = records.len(),
            "added SCRAM credentials given with --add-scram"
        );
    }
    Ok(LoadedMetadata { log, image, cluster_id })
}
