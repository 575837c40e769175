//! `TimeIndex`: sparse map from the greatest timestamp seen so far to the
//! offset that carried it, in Kafka's `.timeindex` format (timestamp i64,
//! relative offset u32, big-endian). Timestamps only grow along the file.

use super::index_file::{IndexEntry, IndexFile};
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimestampOffset {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile<TimestampOffset>,
}

impl TimeIndex {
    pub fn new(base_offset: i64, file: IndexFile<TimestampOffset>) -> Self {
        TimeIndex { base_offset, file }
    }

    pub fn file_mut(&mut self) -> &mut IndexFile<TimestampOffset> {
        &mut self.file
    }

    /// Adds an entry if `timestamp` is greater than the last one.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> io::Result<()> {
        if let Some(last) = self.file.last()? {
            if timestamp <= last.timestamp {
                return Ok(());
            }
        }
        self.file.append(TimestampOffset {
            timestamp,
            relative_offset: (offset - self.base_offset) as u32,
        })
    }

    /// The offset to start scanning from for the first record with a timestamp
    /// at or after `timestamp`: the entry just below it, or the segment start.
    pub fn lookup(&mut self, timestamp: i64) -> io::Result<i64> {
        let entries = self.file.entries()?;
        let idx = entries.partition_point(|e| e.timestamp < timestamp);
        Ok(if idx == 0 {
            self.base_offset
        } else {
            self.base_offset + entries[idx - 1].relative_offset as i64
        })
    }

    pub fn last(&mut self) -> io::Result<Option<TimestampOffset>> {
        self.file.last()
    }

    /// Drops entries for offsets at or past `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let rel = offset - self.base_offset;
        let keep = self
            .file
            .entries()?
            .partition_point(|e| (e.relative_offset as i64) < rel);
        self.file.truncate_to(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_monotonic_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000050.timeindex");
        let mut index = TimeIndex::new(50, IndexFile::create(path.clone()));
        index.maybe_append(1000, 59).unwrap();
        index.maybe_append(900, 65).unwrap(); // ignored: not greater
        index.maybe_append(2000, 69).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        assert_eq!(index.lookup(500).unwrap(), 50);
        assert_eq!(index.lookup(1000).unwrap(), 50);
        assert_eq!(index.lookup(1500).unwrap(), 59);
        assert_eq!(index.lookup(5000).unwrap(), 69);
        index.truncate_to_offset(60).unwrap();
        assert_eq!(index.last().unwrap().unwrap().timestamp, 1000);
    }
}
