//! The aborted-transaction index: one `.txnindex` file per segment, in
//! Kafka's layout (34-byte entries: version i16, producer id i64, first
//! offset i64, last offset i64, last stable offset i64), naming each aborted
//! transaction by the segment that holds its abort marker. read_committed
//! fetches hand these ranges to the client, which skips their records.

use super::segment::file_name;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

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
