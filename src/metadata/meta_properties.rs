//! Kafka's `meta.properties`: the file in every log directory that says
//! which cluster and node the directory belongs to, and (KIP-858) the
//! directory's own id. Kept in Kafka's format so either side's tools read it.

use super::ids::{parse_topic_id, topic_id_string};
use crate::config::properties;
use std::io;
use std::path::Path;
use uuid::Uuid;

pub const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: Option<String>,
    pub node_id: Option<i32>,
    /// Written by `format` (and by Kafka); None in files an older Sluice wrote.
    pub directory_id: Option<Uuid>,
}

/// Reads `dir/meta.properties`: Ok(None) when there is none (the directory
/// may not exist yet either), an error when it cannot be read or makes no sense.
pub fn read(dir: &Path) -> io::Result<Option<MetaProperties>> {
    let path = dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let props = properties::parse(&text);
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    let node_id = match props.get("node.id") {
        Some(n) => Some(n.parse().map_err(|_| bad(format!("node.id '{n}' is not a number")))?),
        None => None,
    };
    let directory_id = match props.get("directory.id") {
        Some(d) => Some(parse_topic_id(d).ok_or_else(|| bad(format!("directory.id '{d}' is not a Kafka uuid")))?),
        None => None,
    };
    Ok(Some(MetaProperties {
        cluster_id: props.get("cluster.id").cloned(),
        node_id,
        directory_id,
    }))
}

/// Writes `dir/meta.properties` (version 1, Kafka's KRaft version), whole or
/// not at all.
pub fn write(dir: &Path, meta: &MetaProperties) -> io::Result<()> {
    let mut text = String::from("#Written by Sluice\nversion=1\n");
    if let Some(cluster_id) = &meta.cluster_id {
        text.push_str(&format!("cluster.id={}\n", escape(cluster_id)));
    }
    if let Some(node_id) = meta.node_id {
        text.push_str(&format!("node.id={node_id}\n"));
    }
    if let Some(directory_id) = meta.directory_id {
        text.push_str(&format!("directory.id={}\n", topic_id_string(directory_id)));
    }
    crate::storage::write_file_atomically(&dir.join(META_PROPERTIES), text.as_bytes())
}

/// A value as Java's `Properties.store` writes it, so that any cluster id
/// Kafka accepts reads back the same.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' | '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kafka_writes_and_writes_what_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        // As `kafka-storage format` (4.4) wrote it.
        std::fs::write(
            dir.path().join(META_PROPERTIES),
            "#\n#Tue Dec 01 02:04:42 UTC 2026\nnode.id=1\ndirectory.id=JaFLj9Oh2VzUKzgEpzTDLQ\nversion=1\ncluster.id=MjpJvG0KSauIJkzPM2xAWw\n",
        )
        .unwrap();
        let meta = read(dir.path()).unwrap().unwrap();
        assert_eq!(meta.cluster_id.as_deref(), Some("MjpJvG0KSauIJkzPM2xAWw"));
        assert_eq!(meta.node_id, Some(1));
        assert_eq!(
            meta.directory_id.map(topic_id_string).as_deref(),
            Some("JaFLj9Oh2VzUKzgEpzTDLQ")
        );
        for cluster_id in ["x=y", " a b", "c:d#e!f\\g"] {
            let meta = MetaProperties {
                cluster_id: Some(cluster_id.to_string()),
                ..meta.clone()
            };
            write(dir.path(), &meta).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(meta));
        }
    }

    #[test]
    fn nonsense_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_PROPERTIES), "version=1\nnode.id=one\n").unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("meta.properties") && err.contains("'one'"), "{err}");
    }
}
