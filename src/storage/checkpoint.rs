//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `cleaner-offset-checkpoint`): a version
//! line, a count line, then `topic partition offset` lines.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";
/// Kafka's name for the high watermarks' checkpoint.
pub const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";

pub type Checkpoint = BTreeMap<(String, i32), i64>;

pub fn read(path: &Path) -> io::Result<Checkpoint> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checkpoint::new()),
        Err(e) => return Err(e),
    };
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(bad("unsupported checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("missing entry count"))?;
    let mut out = Checkpoint::new();
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let (Some(t), Some(p), Some(o)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("malformed entry"));
        };
        let p: i32 = p.parse().map_err(|_| bad("malformed partition"))?;
        let o: i64 = o.parse().map_err(|_| bad("malformed offset"))?;
        out.insert((t.to_string(), p), o);
    }
    Ok(out)
}

pub fn write(path: &Path, entries: &Checkpoint) -> io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for ((topic, partition), offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    super::write_file_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_FILE);
        assert!(read(&path).unwrap().is_empty());
        let mut c = Checkpoint::new();
        c.insert(("orders".into(), 0), 42);
        c.insert(("orders".into(), 3), 7);
        write(&path, &c).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n2\norders 0 42\norders 3 7\n"
        );
        assert_eq!(read(&path).unwrap(), c);
    }
}
