//! `MetadataStore`: the durable cluster metadata of a single-node cluster
//! (cluster id, topics with ids, partition counts and config overrides, the
//! producer id high-water mark), one JSON file replaced atomically on change.
//! The log directory also gets Kafka's `meta.properties`.

use crate::auth::acl::AclBinding;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const METADATA_FILE: &str = "sluice-metadata.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    /// Kafka's base64 form.
    pub id: String,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct MetadataRecord {
    pub cluster_id: String,
    #[serde(default)]
    pub topics: Vec<TopicRecord>,
    /// Producer ids below this may have been handed out.
    #[serde(default)]
    pub producer_id_block_end: i64,
    /// Broker configs changed at run time for this broker (DYNAMIC_BROKER_CONFIG).
    #[serde(default)]
    pub broker_configs: BTreeMap<String, String>,
    /// Broker configs changed at run time for every broker (DYNAMIC_DEFAULT_BROKER_CONFIG).
    #[serde(default)]
    pub default_broker_configs: BTreeMap<String, String>,
    /// SCRAM credentials by user and mechanism (salted and iterated; never passwords).
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    #[serde(default)]
    pub acls: Vec<AclBinding>,
    #[serde(default)]
    pub client_quotas: Vec<ClientQuota>,
}

/// One entity's client quotas: the entity as (type, name) pairs sorted by type,
/// a None name being the type's default ("<default>"), and its values by key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientQuota {
    pub entity: Vec<(String, Option<String>)>,
    pub values: BTreeMap<String, f64>,
}

pub struct MetadataStore {
    path: PathBuf,
}

impl MetadataStore {
    pub fn new(dir: &Path) -> MetadataStore {
        MetadataStore {
            path: dir.join(METADATA_FILE),
        }
    }

    pub fn load(&self) -> io::Result<Option<MetadataRecord>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves the record, readable by the broker's user only: it holds SCRAM
    /// keys, which let anyone who reads them act as the server.
    pub fn save(&self, record: &MetadataRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        crate::storage::write_file_atomically_with_mode(&self.path, &bytes, 0o600)
    }
}

/// Writes Kafka's `meta.properties` (so the directory reads like a Kafka log dir).
pub fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<()> {
    let path = dir.join("meta.properties");
    let text = format!("#Written by Sluice\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    crate::storage::write_file_atomically(&path, text.as_bytes())
}
