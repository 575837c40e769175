//! The leader epoch cache (Kafka's LeaderEpochFileCache, KIP-101/KIP-279):
//! for each leader epoch of a partition, the first offset written in it. A
//! follower asks its leader where its last epoch ends (OffsetForLeaderEpoch)
//! and truncates what lies past it, so that replicas never diverge; a
//! consumer's fetch with a stale epoch learns where to resume (KIP-320).
//!
//! Kept in the partition directory as Kafka keeps it,
//! `leader-epoch-checkpoint`: a version line (0), a count line, then one
//! `epoch start_offset` line per entry.

use std::io;
use std::path::{Path, PathBuf};

pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's answer for an epoch it knows nothing of.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Epochs in increasing order, start offsets increasing with them.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

impl LeaderEpochCache {
    /// Reads the cache of the partition in `dir` (empty when there is no file).
    pub fn open(dir: &Path) -> io::Result<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let entries = if text.is_empty() {
            Vec::new()
        } else {
            parse(&path, &text)?
        };
        Ok(LeaderEpochCache { path, entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` begins at `start_offset` (a leader's first append
    /// in a new epoch, or a follower's first batch of one). Entries that it
    /// contradicts (an epoch as high, or a start as late) are dropped, as
    /// Kafka drops them. Returns whether anything changed; the file is
    /// rewritten then.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<bool> {
        if epoch < 0 || start_offset < 0 {
            return Ok(false);
        }
        let needed = self
            .latest()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return Ok(false);
        }
        let before = self.entries.clone();
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        if let Err(e) = self.flush() {
            // Not on disk (a full disk): the next append tries again.
            self.entries = before;
            return Err(e);
        }
        Ok(true)
    }

    /// Where `requested` ends: (the largest epoch ≤ requested, the first
    /// offset of the next epoch), with `log_end_offset` for the latest epoch,
    /// and (-1, -1) for an epoch after the latest or an empty cache — Kafka's
    /// `endOffsetFor`, what OffsetForLeaderEpoch answers.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest().is_some_and(|l| l.epoch == requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            // Older than anything kept: the requested epoch ends where the log's history starts.
            None => (requested, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// The epoch of the batch at `offset`, as far as the cache knows.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// The log was truncated to `end_offset`: epochs starting there or later go.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> io::Result<()> {
        if self.latest().is_some_and(|l| l.start_offset >= end_offset) {
            self.entries.retain(|e| e.start_offset < end_offset);
            self.flush()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset` (retention, DeleteRecords): the
    /// epoch it falls in starts there, older ones go.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> io::Result<()> {
        let Some(keep) = self.entries.iter().rposition(|e| e.start_offset <= start_offset) else {
            return Ok(());
        };
        if keep == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..keep);
        self.entries[0].start_offset = start_offset;
        self.flush()
    }

    fn flush(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        super::write_file_atomically(&self.path, text.as_bytes())
    }
}

fn parse(path: &Path, text: &str) -> io::Result<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(invalid(path, "unsupported leader epoch checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| invalid(path, "missing entry count"))?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(path, "malformed entry"));
        };
        let epoch: i32 = epoch.parse().map_err(|_| invalid(path, "malformed epoch"))?;
        let start_offset: i64 = start.parse().map_err(|_| invalid(path, "malformed offset"))?;
        if entries
            .last()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset > start_offset)
        {
            return Err(invalid(path, "entries out of order"));
        }
        entries.push(EpochEntry { epoch, start_offset });
    }
    if entries.len() != count {
        return Err(invalid(path, "fewer entries than its count"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = LeaderEpochCache::open(dir.path()).expect("open");
        for (epoch, start) in entries {
            c.assign(*epoch, *start).expect("assign");
        }
        (dir, c)
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn survives_a_reopen_in_kafkas_file_format() {
        let (dir, c) = cache(&[(0, 0), (2, 10), (5, 42)]);
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).expect("file");
        assert_eq!(text, "0\n3\n0 0\n2 10\n5 42\n");
        let again = LeaderEpochCache::open(dir.path()).expect("reopen");
        assert_eq!(pairs(&again), pairs(&c));
    }

    #[test]
    fn the_same_epoch_again_changes_nothing_a_conflicting_one_replaces() {
        let (_dir, mut c) = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15).expect("assign"));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10)]);
        // An epoch that starts earlier than the latest's start: the later entries go.
        assert!(c.assign(1, 5).expect("assign"));
        assert_eq!(pairs(&c), vec![(0, 0), (1, 5)]);
        // Undefined epochs are never recorded.
        assert!(!c.assign(-1, 20).expect("assign"));
    }

    #[test]
    fn end_offsets_as_kafka_answers_offset_for_leader_epoch() {
        let (_dir, c) = cache(&[(1, 0), (3, 10), (4, 25)]);
        let leo = 40;
        assert_eq!(
            c.end_offset_for(4, leo),
            (4, 40),
            "the latest epoch ends at the log end"
        );
        assert_eq!(c.end_offset_for(3, leo), (3, 25));
        assert_eq!(
            c.end_offset_for(2, leo),
            (1, 10),
            "an epoch never led: the one before it, to the next start"
        );
        assert_eq!(c.end_offset_for(0, leo), (0, 0), "older than the cache");
        assert_eq!(c.end_offset_for(7, leo), (-1, -1), "newer than the cache");
        assert_eq!(c.end_offset_for(-1, leo), (-1, -1));
        let (_d, empty) = cache(&[]);
        assert_eq!(empty.end_offset_for(0, 0), (-1, -1));
    }

    #[test]
    fn truncation_from_either_end() {
        let (dir, mut c) = cache(&[(1, 0), (3, 10), (4, 25)]);
        c.truncate_from_end(25).expect("truncate");
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        c.truncate_from_end(30).expect("nothing past 30");
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        c.truncate_from_start(12).expect("truncate");
        assert_eq!(pairs(&c), vec![(3, 12)]);
        assert_eq!(c.epoch_at(12), Some(3));
        assert_eq!(c.epoch_at(11), None);
        assert_eq!(
            pairs(&LeaderEpochCache::open(dir.path()).expect("reopen")),
            vec![(3, 12)]
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        for text in [
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n2\n3 0\n1 5\n",
            "0\nx\n",
            "0\n1\n0\n",
            "0\n1\n0 zero\n",
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join(LEADER_EPOCH_FILE), text).expect("write");
            let e = LeaderEpochCache::open(dir.path()).expect_err(text);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{text:?}");
        }
    }
}
