//! `sluice format`: Kafka's `kafka-storage format` (StorageTool and
//! Formatter). Gives every log directory and the metadata directory a
//! `meta.properties` naming the cluster, the node and the directory, and the
//! metadata directory its `bootstrap.json` (see `format`). Same checks, same
//! messages, same order as Kafka 4.4, so a script written for one works with
//! the other.

use super::format::{check_ids, directories, metadata_dir, write_bootstrap, FormatError};
use super::ids::{parse_topic_id, random_kafka_uuid, topic_id_string};
use super::meta_properties::{self, MetaProperties};
use super::records::MetadataRecord;
use crate::config::cluster::Voter;
use crate::config::BrokerConfig;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

/// How the controller quorum starts (the options that Kafka makes exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialControllers {
    /// None of the options: fine with static `controller.quorum.voters`
    /// and on brokers; a controller of a dynamic quorum must choose.
    NotGiven,
    /// `--standalone`: this controller alone, a quorum of one to grow.
    Standalone,
    /// `--initial-controllers id@host:port:directory,...` (KIP-853).
    Given(String),
    /// `--no-initial-controllers`: the node joins a quorum that exists.
    NoInitialControllers,
}

#[derive(Debug, Clone)]
pub struct FormatOptions {
    pub cluster_id: String,
    pub ignore_formatted: bool,
    pub initial_controllers: InitialControllers,
    /// `--add-scram` specs, as for `kafka-storage`.
    pub add_scram: Vec<String>,
}

/// What a directory is to the format, in Kafka's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectoryType {
    Data,
    StaticMetadata,
    DynamicMetadata,
    DynamicMetadataVoter,
}

impl DirectoryType {
    fn description(self) -> &'static str {
        match self {
            DirectoryType::Data => "data directory",
            DirectoryType::StaticMetadata => "metadata directory",
            DirectoryType::DynamicMetadata => "dynamic metadata directory",
            DirectoryType::DynamicMetadataVoter => "dynamic metadata voter directory",
        }
    }
}

/// Formats the node's directories, telling `out` what it does as Kafka does.
pub fn format(config: &BrokerConfig, options: &FormatOptions, out: &mut dyn Write) -> Result<(), FormatError> {
    // Kafka takes any string, even an empty one (an unset shell variable);
    // an empty id is refused here.
    if options.cluster_id.trim().is_empty() {
        return Err(FormatError::EmptyClusterId);
    }
    let voters = initial_voters(config, &options.initial_controllers)?;
    let records = scram_records(&options.add_scram)?;
    let meta_dir = metadata_dir(config).to_path_buf();

    let mut formatted: Vec<(PathBuf, MetaProperties)> = Vec::new();
    let mut empty: Vec<PathBuf> = Vec::new();
    let mut unreadable: Vec<PathBuf> = Vec::new();
    for dir in directories(config) {
        match meta_properties::read(&dir) {
            Ok(Some(meta)) => formatted.push((dir, meta)),
            Ok(None) => empty.push(dir),
            // Kafka goes on without the metadata directory and leaves a node
            // that cannot start; stopping here says why.
            Err(source) if dir == meta_dir => {
                return Err(FormatError::MetadataDirectoryUnreadable { path: dir, source })
            }
            Err(_) => unreadable.push(dir),
        }
    }
    for (dir, meta) in &formatted {
        check_ids(dir, meta, &options.cluster_id, config.node_id)?;
    }
    if let Some((dir, _)) = formatted.first().filter(|_| !options.ignore_formatted) {
        return Err(FormatError::AlreadyFormatted(dir.clone()));
    }
    for dir in &unreadable {
        say(
            out,
            &format!("I/O error trying to read log directory {}. Ignoring...", dir.display()),
        );
    }
    if empty.is_empty() && formatted.is_empty() {
        return Err(FormatError::NoAvailableDirectories);
    }
    if empty.is_empty() {
        say(out, "All of the log directories are already formatted.");
        return Ok(());
    }
    say(out, &bootstrap_summary(&records, voters.as_deref()));

    let mut taken: HashSet<uuid::Uuid> = formatted.iter().filter_map(|(_, m)| m.directory_id).collect();
    for dir in &empty {
        let kind = match (&voters, *dir == meta_dir) {
            (_, false) => DirectoryType::Data,
            (None, true) => DirectoryType::StaticMetadata,
            (Some(v), true) if v.iter().any(|v| v.id == config.node_id) => DirectoryType::DynamicMetadataVoter,
            (Some(_), true) => DirectoryType::DynamicMetadata,
        };
        // A voter's metadata directory is the one its voter entry names.
        let voter_directory = voters
            .iter()
            .flatten()
            .find(|v| v.id == config.node_id)
            .and_then(|v| v.directory_id)
            .filter(|_| kind == DirectoryType::DynamicMetadataVoter);
        let directory_id = voter_directory.unwrap_or_else(|| loop {
            let id = random_kafka_uuid();
            if !taken.contains(&id) {
                break id;
            }
        });
        taken.insert(directory_id);
        say(
            out,
            &format!(
                "Formatting {} {} with cluster.id {}.",
                kind.description(),
                dir.display(),
                options.cluster_id
            ),
        );
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            // meta.properties last: its presence means the directory is done.
            if *dir == meta_dir {
                write_bootstrap(dir, voters.as_deref(), &records)?;
            }
            meta_properties::write(
                dir,
                &MetaProperties {
                    cluster_id: Some(options.cluster_id.clone()),
                    node_id: Some(config.node_id),
                    directory_id: Some(directory_id),
                },
            )
        };
        write().map_err(|source| FormatError::Write {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Output on stdout is a courtesy: a closed pipe does not undo a format.
fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

fn bootstrap_summary(records: &[MetadataRecord], voters: Option<&[Voter]>) -> String {
    let mut text = format!("Bootstrap metadata: {} record(s)", records.len());
    if let Some(voters) = voters {
        let list: Vec<String> = voters
            .iter()
            .map(|v| {
                let host = if v.host.contains(':') {
                    format!("[{}]", v.host)
                } else {
                    v.host.clone()
                };
                let dir = v.directory_id.map(topic_id_string).unwrap_or_default();
                format!("{}@{}:{}:{}", v.id, host, v.port, dir)
            })
            .collect();
        text.push_str(&format!(", initial controllers {}", list.join(",")));
    }
    text.push('.');
    text
}

/// The initial voters of a dynamic quorum, checked against the
/// configuration as Kafka's StorageTool checks them.
fn initial_voters(config: &BrokerConfig, option: &InitialControllers) -> Result<Option<Vec<Voter>>, FormatError> {
    let cluster = &config.cluster;
    let static_voters = !cluster.voters.is_empty();
    match option {
        InitialControllers::NoInitialControllers => Ok(None),
        InitialControllers::NotGiven => match cluster.roles {
            Some(roles) if roles.controller && !static_voters => Err(FormatError::InitialControllersRequired),
            _ => Ok(None),
        },
        InitialControllers::Standalone => {
            let roles = cluster.roles.ok_or(FormatError::NotKraft("--standalone"))?;
            if !roles.controller {
                return Err(FormatError::StandaloneOnBroker);
            }
            if static_voters {
                return Err(FormatError::StaticVotersWithInitialControllers);
            }
            let (host, port) = cluster
                .controller_endpoint(&config.listeners, &config.advertised_listeners)
                .ok_or(FormatError::NoControllerListener)?;
            Ok(Some(vec![Voter {
                id: config.node_id,
                host,
                port,
                directory_id: Some(random_kafka_uuid()),
            }]))
        }
        InitialControllers::Given(spec) => {
            if cluster.roles.is_none() {
                return Err(FormatError::NotKraft("--initial-controllers"));
            }
            if static_voters {
                return Err(FormatError::StaticVotersWithInitialControllers);
            }
            parse_initial_controllers(spec)
                .map(Some)
                .map_err(|reason| FormatError::BadInitialControllers {
                    spec: spec.clone(),
                    reason,
                })
        }
    }
}

/// KIP-853's `id@host:port:directory,...`, with Kafka's messages (DynamicVoters).
pub fn parse_initial_controllers(spec: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in spec.trim().split(',').filter(|s| !s.is_empty()) {
        let voter = parse_dynamic_voter(entry.trim())?;
        if voters.iter().any(|v| v.id == voter.id) {
            return Err(format!("Node id {} was specified more than once.", voter.id));
        }
        voters.push(voter);
    }
    if voters.is_empty() {
        return Err("No voters given.".into());
    }
    Ok(voters)
}

fn parse_dynamic_voter(input: &str) -> Result<Voter, String> {
    let at = input.find('@').ok_or("No @ found in dynamic voter string.")?;
    if at == 0 {
        return Err("Invalid @ at beginning of dynamic voter string.".into());
    }
    let id: i32 = input[..at]
        .parse()
        .map_err(|_| "Failed to parse node id in dynamic voter string.")?;
    if id < 0 {
        return Err(format!("Invalid negative node id {id} in dynamic voter string."));
    }
    let rest = &input[at + 1..];
    if rest.is_empty() {
        return Err("No hostname found after node id.".into());
    }
    let (host, rest) = if let Some(bracketed) = rest.strip_prefix('[') {
        let end = bracketed
            .find(']')
            .ok_or("Hostname began with left bracket, but no right bracket was found.")?;
        (&bracketed[..end], &bracketed[end + 1..])
    } else {
        let end = rest.find(':').ok_or("No colon following hostname could be found.")?;
        (&rest[..end], &rest[end..])
    };
    // Kafka lets an empty host through; a voter nobody can reach is refused here.
    if host.is_empty() {
        return Err("No hostname found after node id.".into());
    }
    let rest = rest.strip_prefix(':').ok_or("Port section must start with a colon.")?;
    let end = rest.find(':').ok_or("No colon following port could be found.")?;
    let port: i64 = rest[..end]
        .parse()
        .map_err(|_| "Failed to parse port in dynamic voter string.")?;
    let port = u16::try_from(port).map_err(|_| format!("Invalid port {port} in dynamic voter string."))?;
    let directory_id =
        parse_topic_id(&rest[end + 1..]).ok_or("Failed to parse directory ID in dynamic voter string.")?;
    Ok(Voter {
        id,
        host: host.to_string(),
        port,
        directory_id: Some(directory_id),
    })
}

/// `--add-scram` specs as metadata records (the same parser as at start).
fn scram_records(specs: &[String]) -> Result<Vec<MetadataRecord>, FormatError> {
    specs
        .iter()
        .map(|spec| {
            let (name, mechanism, credential) =
                crate::auth::scram::parse_add_scram(spec).map_err(FormatError::BadScram)?;
            Ok(MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "formatter_tests.rs"]
mod tests;
