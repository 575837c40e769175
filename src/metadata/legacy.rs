//! The metadata file of Sluice before the metadata log
//! (`sluice-metadata.json`), read once to turn it into records, so that a
//! data directory written by an older Sluice keeps its topics, configs,
//! credentials, ACLs and quotas.

use super::image::ClientQuota;
use super::records::{ConfigResource, MetadataRecord, PartitionRecord};
use crate::auth::acl::AclBinding;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub const LEGACY_FILE: &str = "sluice-metadata.json";

#[derive(Deserialize)]
struct LegacyTopic {
    name: String,
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LegacyMetadata {
    cluster_id: String,
    #[serde(default)]
    topics: Vec<LegacyTopic>,
    #[serde(default)]
    producer_id_block_end: i64,
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
    #[serde(default)]
    default_broker_configs: BTreeMap<String, String>,
    #[serde(default)]
    scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    #[serde(default)]
    acls: Vec<AclBinding>,
    #[serde(default)]
    client_quotas: Vec<ClientQuota>,
}

/// What an old metadata file held: its cluster id and its records.
pub struct Legacy {
    pub path: PathBuf,
    pub cluster_id: String,
    pub records: Vec<MetadataRecord>,
}

/// Reads `dir`'s old metadata file, if there is one.
pub fn read(dir: &Path, node_id: i32) -> io::Result<Option<Legacy>> {
    let path = dir.join(LEGACY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let old: LegacyMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    let mut records = Vec::new();
    let config = |resource: ConfigResource, configs: &BTreeMap<String, String>| {
        configs
            .iter()
            .map(move |(k, v)| MetadataRecord::Config {
                resource: resource.clone(),
                name: k.clone(),
                value: Some(v.clone()),
            })
            .collect::<Vec<_>>()
    };
    records.extend(config(ConfigResource::Broker(Some(node_id)), &old.broker_configs));
    records.extend(config(ConfigResource::Broker(None), &old.default_broker_configs));
    for t in &old.topics {
        let topic_id = super::parse_topic_id(&t.id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad topic id {} for {}", path.display(), t.id, t.name),
            )
        })?;
        records.push(MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id,
        });
        for partition in 0..t.partitions {
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition,
                replicas: vec![node_id],
                isr: vec![node_id],
                leader: node_id,
                leader_epoch: 0,
                partition_epoch: 0,
                ..Default::default()
            }));
        }
        records.extend(config(ConfigResource::Topic(t.name.clone()), &t.configs));
    }
    for (name, mechanisms) in old.scram_credentials {
        for (mechanism, credential) in mechanisms {
            records.push(MetadataRecord::UserScramCredential {
                name: name.clone(),
                mechanism,
                credential,
            });
        }
    }
    records.extend(old.acls.into_iter().map(MetadataRecord::Acl));
    for q in old.client_quotas {
        for (key, value) in q.values {
            records.push(MetadataRecord::ClientQuota {
                entity: q.entity.clone(),
                key,
                value: Some(value),
            });
        }
    }
    if old.producer_id_block_end > 0 {
        records.push(MetadataRecord::ProducerIds {
            next_producer_id: old.producer_id_block_end,
        });
    }
    Ok(Some(Legacy {
        path,
        cluster_id: old.cluster_id,
        records,
    }))
}
