//! `OffsetIndex`: sparse map from a batch's last offset to the file position
//! where the batch starts, in Kafka's `.index` format (relative offset u32,
//! position u32, big-endian).

use super::index_file::{IndexEntry, IndexFile};
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetPosition {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetPosition {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile<OffsetPosition>,
}

impl OffsetIndex {
    pub fn new(base_offset: i64, file: IndexFile<OffsetPosition>) -> Self {
        OffsetIndex { base_offset, file }
    }

    pub fn file_mut(&mut self) -> &mut IndexFile<OffsetPosition> {
        &mut self.file
    }

    /// Records that the batch ending at `last_offset` starts at `position`.
    pub fn append(&mut self, last_offset: i64, position: u32) -> io::Result<()> {
        let relative = (last_offset - self.base_offset) as u32;
        if let Some(last) = self.file.last()? {
            if relative <= last.relative_offset {
                return Ok(());
            }
        }
        self.file.append(OffsetPosition {
            relative_offset: relative,
            position,
        })
    }

    /// The position to start scanning from to find `offset`: the start of the
    /// batch of the greatest indexed offset below `offset`, or 0.
    pub fn lookup(&mut self, offset: i64) -> io::Result<u32> {
        let target = offset - self.base_offset;
        if target <= 0 {
            return Ok(0);
        }
        let entries = self.file.entries()?;
        // Entries are keyed by a batch's last offset: an entry equal to the target
        // is the batch holding it; otherwise the greatest entry below the target
        // is a batch that ends before it, a safe place to start scanning.
        let idx = entries.partition_point(|e| (e.relative_offset as i64) < target);
        if idx < entries.len() && entries[idx].relative_offset as i64 == target {
            return Ok(entries[idx].position);
        }
        Ok(if idx == 0 { 0 } else { entries[idx - 1].position })
    }

    /// Drops entries that point at or beyond `position` (after truncating the log).
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = self.file.entries()?.partition_point(|e| e.position < position);
        self.file.truncate_to(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_batch_start_at_or_before_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut index = OffsetIndex::new(100, IndexFile::create(path.clone()));
        // Batches: [100..=109]@0, [110..=119]@500, [120..=129]@1000
        index.append(109, 0).unwrap();
        index.append(119, 500).unwrap();
        index.append(129, 1000).unwrap();
        assert_eq!(index.lookup(100).unwrap(), 0);
        assert_eq!(index.lookup(109).unwrap(), 0);
        assert_eq!(index.lookup(110).unwrap(), 0);
        assert_eq!(index.lookup(119).unwrap(), 500);
        assert_eq!(index.lookup(125).unwrap(), 500);
        assert_eq!(index.lookup(500).unwrap(), 1000);

        // The file holds Kafka's 8-byte entries and reloads the same.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        let mut reloaded = OffsetIndex::new(100, IndexFile::lazy(path));
        assert_eq!(reloaded.lookup(125).unwrap(), 500);

        index.truncate_to_position(600).unwrap();
        assert_eq!(index.lookup(500).unwrap(), 500);
    }
}
