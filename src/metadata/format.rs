//! What `sluice format` leaves on disk and a node reads back at start: Kafka's
//! `meta.properties` in every log directory, and in the metadata directory a
//! `bootstrap.json` with the initial controllers (KIP-853) and the records the
//! metadata log starts with (Kafka keeps the same in its bootstrap checkpoint,
//! `__cluster_metadata-0/00000000000000000000-0000000000.checkpoint`).
//!
//! A directory counts as formatted when its metadata directory holds both
//! files: a single node writes `meta.properties` by itself on its first start,
//! so that file alone says nothing about `format`.

use super::ids::{parse_topic_id, topic_id_string};
use super::meta_properties::{self, META_PROPERTIES};
use super::records::MetadataRecord;
use crate::config::cluster::Voter;
use crate::config::BrokerConfig;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;
use uuid::Uuid;

pub const BOOTSTRAP_FILE: &str = "bootstrap.json";

/// A formatted node's starting point.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatState {
    pub cluster_id: String,
    pub node_id: i32,
    /// The voters a dynamic quorum starts with (`--standalone`,
    /// `--initial-controllers`); None with static `controller.quorum.voters`
    /// or `--no-initial-controllers`.
    pub initial_voters: Option<Vec<Voter>>,
    /// Records the metadata log starts with (SCRAM credentials from `--add-scram`).
    pub bootstrap_records: Vec<MetadataRecord>,
    /// The metadata directory's `directory.id`: the id this node votes with.
    pub metadata_directory_id: Option<Uuid>,
}

/// Errors of formatting and of reading a format back. The wording is
/// Kafka's (`kafka-storage format`, MetaPropertiesEnsemble) where Kafka has one.
#[derive(Debug, Error)]
pub enum FormatError {
    // The command line or the configuration asks for something impossible.
    #[error("the cluster id is empty")]
    EmptyClusterId,
    #[error("--add-scram {0}")]
    BadScram(String),
    #[error("--initial-controllers '{spec}': {reason}")]
    BadInitialControllers { spec: String, reason: String },
    #[error("You can only use --standalone on a controller.")]
    StandaloneOnBroker,
    #[error("{0} needs a KRaft configuration, and process.roles is not set.")]
    NotKraft(&'static str),
    #[error("No controller listeners found.")]
    NoControllerListener,
    #[error(
        "You cannot specify controller.quorum.voters and format the node with --initial-controllers or \
         --standalone. If you want to use dynamic quorum, please remove controller.quorum.voters and specify \
         controller.quorum.bootstrap.servers instead."
    )]
    StaticVotersWithInitialControllers,
    #[error(
        "Because controller.quorum.voters is not set on this controller, you must specify one of the following: \
         --standalone, --initial-controllers, or --no-initial-controllers."
    )]
    InitialControllersRequired,

    // What is on disk does not allow it.
    #[error("Log directory {0} is already formatted. Use --ignore-formatted to ignore this directory and format the others.")]
    AlreadyFormatted(PathBuf),
    #[error("Invalid cluster.id in: {path}. Expected {expected}, but read {found}")]
    ClusterIdMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "Stored node id {stored} doesn't match previous node id {configured} in {path}. If you moved your data, \
         make sure your configured node id matches. If you intend to create a new node, you should remove all \
         data in your data directories."
    )]
    NodeIdMismatch {
        path: PathBuf,
        stored: i32,
        configured: i32,
    },
    #[error("{0} has no cluster.id")]
    NoClusterId(PathBuf),
    #[error("No available log directories to format.")]
    NoAvailableDirectories,
    #[error("I/O error trying to read the metadata directory {path}: {source}")]
    MetadataDirectoryUnreadable { path: PathBuf, source: io::Error },
    #[error("Error while writing meta.properties file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    BadBootstrap { path: PathBuf, reason: String },
    #[error("No {META_PROPERTIES} and {BOOTSTRAP_FILE} found in {0} (have you run `sluice format` to format the directory?)")]
    NotFormatted(PathBuf),
}

impl FormatError {
    /// 2 for a mistake on the command line or in the configuration (the
    /// project's rule for bad input), 1 for what is on disk (as Kafka).
    pub fn exit_code(&self) -> u8 {
        match self {
            FormatError::EmptyClusterId
            | FormatError::BadScram(_)
            | FormatError::BadInitialControllers { .. }
            | FormatError::StandaloneOnBroker
            | FormatError::NotKraft(_)
            | FormatError::NoControllerListener
            | FormatError::StaticVotersWithInitialControllers
            | FormatError::InitialControllersRequired => 2,
            _ => 1,
        }
    }
}

/// Where the metadata log lives: `metadata.log.dir`, else the first log directory.
pub fn metadata_dir(config: &BrokerConfig) -> &Path {
    match &config.cluster.metadata_log_dir {
        Some(dir) => dir,
        // log.dirs is never empty: the config refuses that.
        None => config.log_dirs.first().map_or(Path::new("."), PathBuf::as_path),
    }
}

/// Every directory `format` writes: the log directories and the metadata
/// directory, sorted and each once (Kafka's order).
pub fn directories(config: &BrokerConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = config.log_dirs.clone();
    dirs.push(metadata_dir(config).to_path_buf());
    dirs.sort();
    dirs.dedup();
    dirs
}

/// bootstrap.json as stored.
#[derive(Serialize, Deserialize)]
struct BootstrapFile {
    initial_voters: Option<Vec<VoterEntry>>,
    records: Vec<MetadataRecord>,
}

/// A voter in bootstrap.json; ids in Kafka's text form.
#[derive(Serialize, Deserialize)]
struct VoterEntry {
    id: i32,
    host: String,
    port: u16,
    directory_id: Option<String>,
}

/// Writes `dir/bootstrap.json`. Readable by its owner only: SCRAM
/// credentials are in it (Kafka's checkpoint is 0400).
pub(crate) fn write_bootstrap(dir: &Path, voters: Option<&[Voter]>, records: &[MetadataRecord]) -> io::Result<()> {
    let file = BootstrapFile {
        initial_voters: voters.map(|voters| {
            voters
                .iter()
                .map(|v| VoterEntry {
                    id: v.id,
                    host: v.host.clone(),
                    port: v.port,
                    directory_id: v.directory_id.map(topic_id_string),
                })
                .collect()
        }),
        records: records.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    crate::storage::write_file_atomically_with_mode(&dir.join(BOOTSTRAP_FILE), &bytes, 0o600)
}

/// bootstrap.json as read: the initial voters and the records.
struct Bootstrap {
    initial_voters: Option<Vec<Voter>>,
    records: Vec<MetadataRecord>,
}

fn read_bootstrap(dir: &Path) -> Result<Option<Bootstrap>, FormatError> {
    let path = dir.join(BOOTSTRAP_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FormatError::Read { path, source }),
    };
    let bad = |reason: String| FormatError::BadBootstrap {
        path: path.clone(),
        reason,
    };
    let file: BootstrapFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let voters = match file.initial_voters {
        None => None,
        Some(entries) => Some(
            entries
                .into_iter()
                .map(|v| {
                    let directory_id = match &v.directory_id {
                        None => None,
                        Some(text) => Some(
                            parse_topic_id(text)
                                .ok_or_else(|| bad(format!("voter {}: bad directory id '{text}'", v.id)))?,
                        ),
                    };
                    Ok(Voter {
                        id: v.id,
                        host: v.host,
                        port: v.port,
                        directory_id,
                    })
                })
                .collect::<Result<Vec<_>, FormatError>>()?,
        ),
    };
    Ok(Some(Bootstrap {
        initial_voters: voters,
        records: file.records,
    }))
}

/// The format this node was given, or None when its metadata directory was
/// never formatted. Every directory's `meta.properties` must agree with the
/// metadata directory's cluster id and with this node's id.
pub fn read_format(config: &BrokerConfig) -> Result<Option<FormatState>, FormatError> {
    let meta_dir = metadata_dir(config);
    let read_meta = |dir: &Path| {
        meta_properties::read(dir).map_err(|source| FormatError::Read {
            path: dir.join(META_PROPERTIES),
            source,
        })
    };
    let Some(meta) = read_meta(meta_dir)? else {
        return Ok(None);
    };
    let Some(Bootstrap {
        initial_voters,
        records: bootstrap_records,
    }) = read_bootstrap(meta_dir)?
    else {
        return Ok(None);
    };
    let cluster_id = meta
        .cluster_id
        .clone()
        .ok_or_else(|| FormatError::NoClusterId(meta_dir.join(META_PROPERTIES)))?;
    for dir in directories(config) {
        let Some(other) = read_meta(&dir)? else {
            continue;
        };
        check_ids(&dir, &other, &cluster_id, config.node_id)?;
    }
    Ok(Some(FormatState {
        cluster_id,
        node_id: config.node_id,
        initial_voters,
        bootstrap_records,
        metadata_directory_id: meta.directory_id,
    }))
}

/// As `read_format`, for a node that cannot start without a format (a
/// member of a cluster, as Kafka's KRaft nodes all are).
pub fn require_format(config: &BrokerConfig) -> Result<FormatState, FormatError> {
    read_format(config)?.ok_or_else(|| FormatError::NotFormatted(metadata_dir(config).to_path_buf()))
}

/// Kafka's MetaPropertiesEnsemble.verify: one cluster, this node.
pub(crate) fn check_ids(
    dir: &Path,
    meta: &meta_properties::MetaProperties,
    cluster_id: &str,
    node_id: i32,
) -> Result<(), FormatError> {
    let path = dir.join(META_PROPERTIES);
    if let Some(found) = meta.cluster_id.as_deref().filter(|found| *found != cluster_id) {
        return Err(FormatError::ClusterIdMismatch {
            path,
            expected: cluster_id.to_string(),
            found: found.to_string(),
        });
    }
    if let Some(stored) = meta.node_id.filter(|stored| *stored != node_id) {
        return Err(FormatError::NodeIdMismatch {
            path,
            stored,
            configured: node_id,
        });
    }
    Ok(())
}
