//! The aborted-transaction index: one `.txnindex` file per segment, in
//! Kafka's layout (34-byte entries: version i16, producer id i64, first
//! offset i64, last offset i64, last stable offset i64), naming each aborted
//! transaction by the segment that holds its abort marker. read_committed
//! fetches hand these ranges to the client, which skips their records.

use super::batch::{BatchHeader, ControlType};
use super::producer_state::ProducerState;
use super::segment::file_name;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const ENTRY_LEN: usize = 34;
const VERSION: i16 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        (i16::from_be_bytes([b[0], b[1]]) == VERSION).then(|| AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Appends one entry to the index of the segment at `segment_base`.
pub fn append(dir: &Path, segment_base: i64, entry: &AbortedTxn) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file_name(segment_base, ".txnindex")))?;
    file.write_all(&entry.encode())
}

/// Reads a segment's entries; a missing file means none, a torn last entry
/// is ignored (recovery rebuilds what the log holds past the recovery point).
pub fn read(dir: &Path, segment_base: i64) -> io::Result<Vec<AbortedTxn>> {
    match std::fs::read(dir.join(file_name(segment_base, ".txnindex"))) {
        Ok(bytes) => Ok(bytes.chunks_exact(ENTRY_LEN).filter_map(AbortedTxn::decode).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Removes a deleted segment's index.
pub fn delete(dir: &Path, segment_base: i64) -> io::Result<()> {
    match std::fs::remove_file(dir.join(file_name(segment_base, ".txnindex"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The aborted transactions of a log's retained segments, in memory, in
/// marker order, mirrored to each segment's `.txnindex`.
#[derive(Debug)]
pub struct AbortedTxns {
    dir: PathBuf,
    entries: Vec<AbortedTxn>,
}

impl AbortedTxns {
    pub fn empty(dir: &Path) -> Self {
        AbortedTxns {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Reads the index files of the segments at `segment_bases`, keeping the
    /// entries of markers below `log_end` (later ones were lost in a crash).
    pub fn load(dir: &Path, segment_bases: impl Iterator<Item = i64>, log_end: i64) -> io::Result<Self> {
        let mut entries = Vec::new();
        for base in segment_bases {
            entries.extend(read(dir, base)?);
        }
        entries.retain(|a| a.last_offset < log_end);
        entries.sort_by_key(|a| a.last_offset);
        Ok(AbortedTxns {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// A marker was stored in the segment at `segment_base`: its producer's
    /// transaction is over, and an aborted one is indexed (once: start-up
    /// replays markers that may be indexed already).
    pub fn complete(
        &mut self,
        producers: &mut ProducerState,
        segment_base: i64,
        marker: &BatchHeader,
        kind: Option<ControlType>,
        high_watermark: i64,
    ) -> io::Result<()> {
        let first = producers.complete_txn(marker.producer_id, 0);
        if kind != Some(ControlType::Abort) {
            return Ok(());
        }
        let marker_offset = marker.base_offset;
        if self.entries.last().is_some_and(|a| a.last_offset >= marker_offset) {
            return Ok(());
        }
        let entry = AbortedTxn {
            producer_id: marker.producer_id,
            first_offset: first.unwrap_or(marker_offset),
            last_offset: marker_offset,
            last_stable_offset: producers
                .first_unstable_offset()
                .map_or(high_watermark, |f| f.min(high_watermark)),
        };
        append(&self.dir, segment_base, &entry)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Aborted transactions that overlap `[from, upper)`: (producer id, first
    /// offset), what a read_committed fetch tells the client to skip.
    pub fn overlapping(&self, from: i64, upper: i64) -> Vec<(i64, i64)> {
        // Sorted by marker offset: skip those that ended before `from`.
        let start = self.entries.partition_point(|a| a.last_offset < from);
        self.entries[start..]
            .iter()
            .filter(|a| a.first_offset < upper)
            .map(|a| (a.producer_id, a.first_offset))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.entries.iter()
    }

    /// Entries go with the segment of their marker: those before `first_segment` are gone.
    pub fn forget_before(&mut self, first_segment: i64) {
        self.entries.retain(|a| a.last_offset >= first_segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let a = AbortedTxn {
            producer_id: 7,
            first_offset: 10,
            last_offset: 15,
            last_stable_offset: 16,
        };
        let b = AbortedTxn {
            producer_id: 8,
            first_offset: 12,
            last_offset: 20,
            last_stable_offset: 21,
        };
        append(dir.path(), 0, &a).unwrap();
        append(dir.path(), 0, &b).unwrap();
        assert_eq!(read(dir.path(), 0).unwrap(), vec![a, b]);
        let path = dir.path().join(file_name(0, ".txnindex"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(ENTRY_LEN + 5);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read(dir.path(), 0).unwrap(), vec![a]);
        assert_eq!(read(dir.path(), 99).unwrap(), vec![]);
        delete(dir.path(), 0).unwrap();
        assert_eq!(read(dir.path(), 0).unwrap(), vec![]);
    }
}
