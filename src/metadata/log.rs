//! `MetadataLog`: the metadata log of a single node, a local file. Each
//! append is one frame — length, CRC-32C, base offset, the records — written
//! and fsynced before the change counts, so a batch is applied whole or not
//! at all: a torn frame at the tail (a crash mid-write) fails its CRC and is
//! cut at start-up. A snapshot (the image's records at an offset) lets the
//! log start over instead of growing forever.
//!
//! In a cluster the log is replicated among the controllers instead; what
//! it holds is the same records.

use super::image::MetadataImage;
use super::records::MetadataRecord;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

pub const METADATA_DIR: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "metadata.log";
const SNAPSHOT_FILE: &str = "metadata.checkpoint";
/// Frame header: length (of what follows it), CRC-32C, base offset.
const FRAME_HEADER: usize = 4 + 4 + 8;
/// Take a snapshot once the log has grown by this much since the last one.
const SNAPSHOT_AFTER_BYTES: u64 = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The offset of the last record the snapshot includes.
    offset: i64,
    records: Vec<MetadataRecord>,
}

/// What the log held at start-up, in order: a snapshot's records (numbered
/// as if they were the log's first records) then the batches after it.
pub struct LoadedLog {
    pub snapshot: Option<(i64, Vec<MetadataRecord>)>,
    pub batches: Vec<(i64, Vec<MetadataRecord>)>,
    /// Bytes cut from a torn tail.
    pub truncated_bytes: u64,
}

pub struct MetadataLog {
    dir: PathBuf,
    file: File,
    next_offset: i64,
    bytes: u64,
}

impl MetadataLog {
    /// Opens (creating if needed) the log in `dir`, reading what it holds.
    pub fn open(dir: &Path) -> io::Result<(MetadataLog, LoadedLog)> {
        std::fs::create_dir_all(dir)?;
        let snapshot = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let s: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", dir.join(SNAPSHOT_FILE).display()),
                    )
                })?;
                Some((s.offset, s.records))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let snapshot_end = snapshot.as_ref().map_or(-1, |(offset, _)| *offset);
        let mut next_offset = snapshot_end + 1;
        let mut batches = Vec::new();
        let mut pos = 0usize;
        while let Some((frame_len, base_offset, records)) = read_frame(&bytes[pos..]) {
            pos += frame_len;
            let records = match records {
                Ok(r) => r,
                Err(e) => {
                    // A whole frame with a good CRC that does not decode was
                    // written by a newer or broken program: refuse to guess.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: a batch at offset {base_offset} does not decode: {e}",
                            path.display()
                        ),
                    ));
                }
            };
            let end = base_offset + records.len() as i64;
            if end <= snapshot_end + 1 {
                continue; // already in the snapshot (a crash between snapshot and reset)
            }
            next_offset = end;
            batches.push((base_offset, records));
        }
        let truncated_bytes = (bytes.len() - pos) as u64;
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if truncated_bytes > 0 {
            warn!(bytes = truncated_bytes, "cut a torn tail of the metadata log");
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        let log = MetadataLog {
            dir: dir.to_path_buf(),
            file,
            next_offset,
            bytes: pos as u64,
        };
        Ok((
            log,
            LoadedLog {
                snapshot,
                batches,
                truncated_bytes,
            },
        ))
    }

    /// The offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Appends records as one batch and waits until they are on disk.
    /// Returns the offset of the first.
    pub fn append(&mut self, records: &[MetadataRecord]) -> io::Result<i64> {
        let base = self.next_offset;
        let frame = encode_frame(base, records);
        let written = self.file.write_all(&frame).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A torn frame left in the file would end the log there at the
            // next load, hiding every frame appended after it: cut it.
            let _ = self.file.set_len(self.bytes);
            return Err(e);
        }
        self.next_offset += records.len() as i64;
        self.bytes += frame.len() as u64;
        Ok(base)
    }

    /// True when the log has grown enough that a snapshot is worth taking.
    pub fn wants_snapshot(&self) -> bool {
        self.bytes >= SNAPSHOT_AFTER_BYTES
    }

    /// Writes the image as a snapshot and starts the log over after it.
    pub fn snapshot(&mut self, image: &MetadataImage) -> io::Result<()> {
        let snapshot = Snapshot {
            offset: image.offset,
            records: image.to_records(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
        // Holds SCRAM keys: readable by the broker's user only.
        crate::storage::write_file_atomically_with_mode(&self.dir.join(SNAPSHOT_FILE), &bytes, 0o600)?;
        // Frames up to the snapshot's offset are skipped at load, so a crash
        // before this reset loses nothing.
        let path = self.dir.join(LOG_FILE);
        crate::storage::write_file_atomically_with_mode(&path, &[], 0o600)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.next_offset = image.offset + 1;
        self.bytes = 0;
        Ok(())
    }
}

fn encode_frame(base_offset: i64, records: &[MetadataRecord]) -> Vec<u8> {
    let payload = serde_json::to_vec(records).unwrap_or_default();
    let mut body = Vec::with_capacity(8 + payload.len());
    body.extend_from_slice(&base_offset.to_be_bytes());
    body.extend_from_slice(&payload);
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

type Frame = (usize, i64, Result<Vec<MetadataRecord>, serde_json::Error>);

/// One whole frame at the start of `bytes`: (its length, base offset,
/// records), or None when there is no whole frame with a good CRC.
fn read_frame(bytes: &[u8]) -> Option<Frame> {
    let len = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    if len < 12 {
        return None;
    }
    let end = 4usize.checked_add(len)?;
    let crc = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(8..end)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let base_offset = i64::from_be_bytes(body[0..8].try_into().ok()?);
    Some((end, base_offset, serde_json::from_slice(&body[8..])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::delta::MetadataDelta;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
        }
    }

    fn replay(loaded: &LoadedLog) -> MetadataImage {
        let mut delta = MetadataDelta::new(&MetadataImage::default());
        if let Some((offset, records)) = &loaded.snapshot {
            delta.replay_snapshot(*offset, records);
        }
        for (base, records) in &loaded.batches {
            delta.replay_all(*base, records);
        }
        delta.apply().0
    }

    #[test]
    fn batches_survive_a_reopen_and_a_torn_tail_is_cut_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, loaded) = MetadataLog::open(dir.path()).unwrap();
        assert!(loaded.batches.is_empty() && loaded.snapshot.is_none());
        assert_eq!(log.append(&[topic("a"), topic("b")]).unwrap(), 0);
        assert_eq!(log.append(&[topic("c")]).unwrap(), 2);
        drop(log);
        // A crash in the middle of writing a third batch.
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        let torn = encode_frame(3, &[topic("d"), topic("e")]);
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(&path, &bytes).unwrap();

        let (mut log, loaded) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(loaded.truncated_bytes, (torn.len() - 3) as u64);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole as u64);
        let image = replay(&loaded);
        assert_eq!(image.topics.names().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(image.offset, 2);
        assert_eq!(log.append(&[topic("f")]).unwrap(), 3);
    }

    #[test]
    fn a_snapshot_replaces_the_log_and_gives_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a"), topic("b")]).unwrap();
        log.append(&[topic("c")]).unwrap();
        let (_, loaded) = MetadataLog::open(dir.path()).unwrap();
        let before = replay(&loaded);
        log.snapshot(&before).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(), 0);
        assert_eq!(log.append(&[topic("d")]).unwrap(), 3);
        drop(log);
        let (_, loaded) = MetadataLog::open(dir.path()).unwrap();
        let after = replay(&loaded);
        assert_eq!(after.offset, 3);
        assert_eq!(after.topics.names().cloned().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(after.topics.get("a"), before.topics.get("a"));
    }
}
