//! Loading the metadata at start-up: the metadata log (snapshot, then
//! batches) replayed into an image. On the very first start the log is
//! seeded with the cluster's initial records (or with what an older Sluice's
//! metadata file held) and those `sluice format` left, and Kafka's
//! `meta.properties` names the cluster and node in every log directory. A
//! single node needs no format; a formatted one takes its cluster id.

use super::delta::MetadataDelta;
use super::image::MetadataImage;
use super::log::{MetadataLog, METADATA_DIR};
use super::meta_properties::{self, MetaProperties};
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

/// Writes Kafka's `meta.properties` (so the directory reads like a Kafka
/// log dir). One that already names this cluster and node is left as it is:
/// `format` wrote it with the directory's id, or an earlier start did.
fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<()> {
    let existing = meta_properties::read(dir)?;
    if let Some(meta) = &existing {
        if meta.cluster_id.as_deref() == Some(cluster_id) && meta.node_id == Some(node_id) {
            return Ok(());
        }
    }
    meta_properties::write(
        dir,
        &MetaProperties {
            cluster_id: Some(cluster_id.to_string()),
            node_id: Some(node_id),
            directory_id: existing.and_then(|m| m.directory_id),
        },
    )
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
    // A directory `sluice format` prepared: its cluster id, and the records
    // the log starts with.
    let format = super::format::read_format(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut cluster_id = format.as_ref().map(|f| f.cluster_id.clone());
    for dir in &config.log_dirs {
        if let Some(meta) = meta_properties::read(dir)? {
            let (stored_cluster, stored_node) = (meta.cluster_id, meta.node_id);
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
        let (mut records, migrated) = match legacy::read(primary, config.node_id)? {
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
        if let Some(format) = &format {
            records.extend(format.bootstrap_records.iter().cloned());
        }
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
