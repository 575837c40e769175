//! Producer snapshots: `<offset>.snapshot` files in Kafka's layout (version
//! 1), the producer state as of an offset, so that start-up replays only the
//! batches after it. A snapshot is encoded under the log's lock (`take`) and
//! written outside it (`write`).

use super::producer_state::{BatchMetadata, ProducerEntry, ProducerState};
use super::segment::file_name;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Kafka keeps a few: recovery needs the newest one only.
const KEPT: usize = 3;
const ENTRY_LEN: usize = 46;

/// The producer state as of `offset`, encoded.
#[derive(Debug, Clone)]
pub struct Snapshot {
    offset: i64,
    bytes: Vec<u8>,
}

impl Snapshot {
    pub fn take(state: &ProducerState, offset: i64) -> Snapshot {
        Snapshot {
            offset,
            bytes: encode(state),
        }
    }

    /// Writes the file (synced, renamed into place) and removes the oldest
    /// beyond the newest few.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        // A unique temporary name: a clean close may write the same offset
        // while a roll's snapshot is being written.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = file_name(self.offset, ".snapshot");
        let tmp = dir.join(format!("{name}.{}.tmp", NEXT.fetch_add(1, Ordering::Relaxed)));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&self.bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, dir.join(&name))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        super::fsync_dir(dir)?;
        let snapshots = list(dir)?;
        for old in &snapshots[..snapshots.len().saturating_sub(KEPT)] {
            let _ = std::fs::remove_file(dir.join(file_name(*old, ".snapshot")));
        }
        Ok(())
    }
}

/// The offsets of the snapshots in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(Ok(offset)) = name.strip_suffix(".snapshot").map(str::parse::<i64>) {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest readable snapshot at or below `log_end`, with its offset.
/// Snapshots past the log end (of batches lost in a crash) are removed.
pub fn load_latest(dir: &Path, log_end: i64) -> io::Result<Option<(i64, ProducerState)>> {
    let snapshots = list(dir)?;
    for stale in snapshots.iter().filter(|s| **s > log_end) {
        let _ = std::fs::remove_file(dir.join(file_name(*stale, ".snapshot")));
    }
    for offset in snapshots.iter().rev().filter(|s| **s <= log_end) {
        let bytes = std::fs::read(dir.join(file_name(*offset, ".snapshot")));
        if let Some(state) = bytes.ok().and_then(|b| decode(&b)) {
            return Ok(Some((*offset, state)));
        }
    }
    Ok(None)
}

/// Version i16, crc32c u32 over the rest, then an array of entries.
pub fn encode(state: &ProducerState) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + state.len() * ENTRY_LEN);
    body.extend_from_slice(&(state.len() as i32).to_be_bytes());
    let mut entries: Vec<_> = state.entries().collect();
    entries.sort_unstable_by_key(|(id, _)| **id);
    for (id, entry) in entries {
        let last = entry.batches.back();
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&last.map_or(-1, |b| b.last_seq).to_be_bytes());
        body.extend_from_slice(&last.map_or(-1, |b| b.last_offset).to_be_bytes());
        let delta = last.map_or(0, |b| (b.last_offset - b.first_offset) as i32);
        body.extend_from_slice(&delta.to_be_bytes());
        body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
        body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn decode(bytes: &[u8]) -> Option<ProducerState> {
    let version = i16::from_be_bytes(bytes.get(..2)?.try_into().ok()?);
    let crc = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
    let body = bytes.get(6..)?;
    if version != 1 || crc32c::crc32c(body) != crc {
        return None;
    }
    let count = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    if count < 0 || body.len() != 4 + count as usize * ENTRY_LEN {
        return None;
    }
    let entries = body[4..].chunks_exact(ENTRY_LEN).map(|chunk| {
        let i64_at = |at: usize| i64::from_be_bytes(chunk[at..at + 8].try_into().unwrap_or_default());
        let i32_at = |at: usize| i32::from_be_bytes(chunk[at..at + 4].try_into().unwrap_or_default());
        let (last_seq, last_offset, delta, timestamp) = (i32_at(10), i64_at(14), i32_at(22), i64_at(26));
        let txn_first = i64_at(38);
        let mut entry = ProducerEntry {
            epoch: i16::from_be_bytes([chunk[8], chunk[9]]),
            batches: VecDeque::new(),
            last_timestamp: timestamp,
            current_txn_first_offset: (txn_first >= 0).then_some(txn_first),
            coordinator_epoch: i32_at(34),
        };
        if last_seq >= 0 {
            entry.batches.push_back(BatchMetadata {
                first_seq: last_seq.wrapping_sub(delta).max(0),
                last_seq,
                first_offset: last_offset - delta as i64,
                last_offset,
                timestamp,
            });
        }
        (i64_at(0), entry)
    });
    Some(ProducerState::from_entries(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::producer_state::tests::batch;
    use crate::storage::producer_state::SequenceCheck;

    #[test]
    fn round_trip_keeps_the_last_batch() {
        let mut s = ProducerState::default();
        s.record(&batch(1, 0, 0, 2, 0));
        s.record(&batch(1, 0, 2, 4, 2));
        s.record(&batch(9, 3, 10, 1, 6));
        let bytes = encode(&s);
        let r = decode(&bytes).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.check(&batch(1, 0, 2, 4, 0)),
            Ok(SequenceCheck::Duplicate(BatchMetadata {
                first_seq: 2,
                last_seq: 5,
                first_offset: 2,
                last_offset: 5,
                timestamp: 10
            }))
        );
        assert_eq!(r.check(&batch(1, 0, 6, 1, 0)), Ok(SequenceCheck::Append));
        assert_eq!(r.first_unstable_offset(), None);
        let mut corrupt = bytes.clone();
        corrupt[12] ^= 1;
        assert!(decode(&corrupt).is_none());
        assert!(decode(&bytes[..5]).is_none());
    }

    #[test]
    fn files_newest_readable_first_and_only_a_few_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        for offset in [10, 20, 30, 40] {
            s.record(&batch(1, 0, offset as i32, 1, offset));
            Snapshot::take(&s, offset).write(dir.path()).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![20, 30, 40]);
        std::fs::write(dir.path().join(file_name(30, ".snapshot")), b"torn").unwrap();
        let (offset, state) = load_latest(dir.path(), 35).unwrap().unwrap();
        assert_eq!(
            (offset, state.entry(1).unwrap().batches.back().unwrap().last_offset),
            (20, 20)
        );
        assert_eq!(
            list(dir.path()).unwrap(),
            vec![20, 30],
            "the one past the log end is gone"
        );
        assert!(load_latest(dir.path(), 5).unwrap().is_none());
    }
}
