//! `LogSegment`: one `.log` file of record batches plus its `.index` and
//! `.timeindex`, named by the segment's base offset as Kafka names them.

use super::batch::{BatchHeader, BATCH_HEADER_LEN};
use super::index_file::{read_last_entry, IndexFile};
use super::offset_index::OffsetIndex;
use super::time_index::{TimeIndex, TimestampOffset};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files of a segment besides its `.log`.
const INDEX_SUFFIXES: [&str; 3] = [".index", ".timeindex", ".txnindex"];
/// All the files of a segment.
pub const SUFFIXES: [&str; 4] = [".log", ".index", ".timeindex", ".txnindex"];

pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The greatest timestamp in a segment and the offset of the batch that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxTimestamp {
    pub timestamp: i64,
    pub offset: i64,
}

/// What a scan over a segment's batches found.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Bytes of whole, valid batches from the start of the segment.
    pub valid_bytes: u64,
    /// Offset after the last valid batch (None when the segment holds no batch).
    pub next_offset: Option<i64>,
    /// Headers of the batches scanned, in order (for rebuilding producer state).
    pub batches: Vec<BatchHeader>,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped_by: Option<String>,
}

pub struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    file: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u64,
    bytes_since_last_index_entry: u64,
    /// Known for the active segment; found lazily for sealed ones.
    max_timestamp: Option<MaxTimestamp>,
    /// Timestamp of the first batch, which time-based rolling counts from.
    first_batch_timestamp: Option<i64>,
    created_at_ms: i64,
    sealed: bool,
}

impl LogSegment {
    /// Creates a new, empty, active segment: one file and one descriptor
    /// (the indexes appear with their first entry).
    pub fn create(dir: &Path, base_offset: i64, index_interval_bytes: u64, now_ms: i64) -> io::Result<LogSegment> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.join(file_name(base_offset, ".log")))?;
        Ok(LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            size: 0,
            offset_index: OffsetIndex::new(
                base_offset,
                IndexFile::create(dir.join(file_name(base_offset, ".index"))),
            ),
            time_index: TimeIndex::new(
                base_offset,
                IndexFile::create(dir.join(file_name(base_offset, ".timeindex"))),
            ),
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: None,
            first_batch_timestamp: None,
            created_at_ms: now_ms,
            sealed: false,
        })
    }

    /// Opens an existing segment without reading it: indexes load on first use.
    pub fn open(dir: &Path, base_offset: i64, index_interval_bytes: u64) -> io::Result<LogSegment> {
        let path = dir.join(file_name(base_offset, ".log"));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let meta = file.metadata()?;
        let created_at_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Ok(LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            size: meta.len(),
            offset_index: OffsetIndex::new(base_offset, IndexFile::lazy(dir.join(file_name(base_offset, ".index")))),
            time_index: TimeIndex::new(
                base_offset,
                IndexFile::lazy(dir.join(file_name(base_offset, ".timeindex"))),
            ),
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: None,
            first_batch_timestamp: None,
            created_at_ms,
            sealed: true,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }

    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
    }

    /// Appends one batch whose offsets are already assigned.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> io::Result<()> {
        self.append_parts(batch, &[], header)
    }

    /// As `append`, for a batch held as its header and its records (two
    /// writes rather than a copy into one buffer).
    pub fn append_parts(&mut self, head: &[u8], records: &[u8], header: &BatchHeader) -> io::Result<()> {
        let position = self.size;
        let written = (|| {
            self.file.write_all_at(head, position)?;
            if !records.is_empty() {
                self.file.write_all_at(records, position + head.len() as u64)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // A part written before the error (a full disk) is cut, so the
            // file never holds a torn batch past what the log knows of.
            if let Err(cut) = self.file.set_len(position) {
                tracing::warn!(segment = self.base_offset, error = %cut, "could not cut a failed append");
            }
            return Err(e);
        }
        self.size += (head.len() + records.len()) as u64;
        self.track_batch(header, position as u32);
        Ok(())
    }

    /// Updates timestamps and indexes for a batch stored at `position`. The
    /// batch is stored whatever happens here: an index entry that cannot be
    /// written (a full disk) is left out, as the indexes are sparse and are
    /// rebuilt from the log at recovery.
    fn track_batch(&mut self, header: &BatchHeader, position: u32) {
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(header.max_timestamp);
        }
        let newer = match self.max_timestamp {
            Some(m) => header.max_timestamp > m.timestamp,
            None => true,
        };
        if newer {
            self.max_timestamp = Some(MaxTimestamp {
                timestamp: header.max_timestamp,
                offset: header.last_offset(),
            });
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            let indexed =
                self.offset_index
                    .append(header.last_offset(), position)
                    .and_then(|()| match self.max_timestamp {
                        Some(m) => self.time_index.maybe_append(m.timestamp, m.offset),
                        None => Ok(()),
                    });
            match indexed {
                Ok(()) => self.bytes_since_last_index_entry = 0,
                // Tried again at the next batch.
                Err(e) => tracing::warn!(segment = self.base_offset, error = %e, "index entry not written"),
            }
        }
        self.bytes_since_last_index_entry += header.total_size() as u64;
    }

    /// Reads the batch header at `position`, if a whole header is there.
    pub fn read_header_at(&self, position: u64, end: u64) -> io::Result<Option<BatchHeader>> {
        if position + BATCH_HEADER_LEN as u64 > end {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file.read_exact_at(&mut buf, position)?;
        match BatchHeader::parse(&buf) {
            Ok(h) if position + h.total_size() as u64 <= end => Ok(Some(h)),
            _ => Ok(None),
        }
    }

    /// Finds the first batch that holds `offset` or comes after it, reading no
    /// further than `end`. Returns its position and header.
    pub fn find_batch(&mut self, offset: i64, end: u64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut position = self.offset_index.lookup(offset)? as u64;
        while let Some(header) = self.read_header_at(position, end)? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Finds the first batch whose greatest timestamp is at or after `timestamp`.
    pub fn find_batch_by_timestamp(&mut self, timestamp: i64, end: u64) -> io::Result<Option<(u64, BatchHeader)>> {
        let start_offset = self.time_index.lookup(timestamp)?;
        let mut position = self.offset_index.lookup(start_offset)? as u64;
        while let Some(header) = self.read_header_at(position, end)? {
            if header.max_timestamp >= timestamp {
                return Ok(Some((position, header)));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// The greatest timestamp in the segment, reading the time index of a
    /// sealed segment (whose last entry is its greatest) only when asked.
    pub fn max_timestamp(&mut self) -> io::Result<Option<MaxTimestamp>> {
        if self.max_timestamp.is_none() && self.sealed {
            let path = self.dir.join(file_name(self.base_offset, ".timeindex"));
            self.max_timestamp = read_last_entry::<TimestampOffset>(&path)?.map(|e| MaxTimestamp {
                timestamp: e.timestamp,
                offset: self.base_offset + e.relative_offset as i64,
            });
        }
        Ok(self.max_timestamp)
    }

    /// Scans every batch from the start, checking CRCs; stops at the first
    /// invalid or incomplete one. Rebuilds the indexes when `rebuild` is set.
    pub fn scan(&mut self, max_batch_size: usize, rebuild: bool) -> io::Result<ScanOutcome> {
        if rebuild {
            self.offset_index.file_mut().truncate_to(0)?;
            self.time_index.file_mut().truncate_to(0)?;
            self.bytes_since_last_index_entry = 0;
            self.max_timestamp = None;
            self.first_batch_timestamp = None;
        }
        let mut outcome = ScanOutcome::default();
        let file_len = self.file.metadata()?.len();
        let mut position = 0u64;
        let mut expected_min_offset = self.base_offset;
        let mut buf = Vec::new();
        loop {
            if position == file_len {
                break;
            }
            let mut head = [0u8; BATCH_HEADER_LEN];
            if position + BATCH_HEADER_LEN as u64 > file_len {
                outcome.stopped_by = Some(format!(
                    "{} bytes at position {position} are too short for a batch",
                    file_len - position
                ));
                break;
            }
            self.file.read_exact_at(&mut head, position)?;
            let header = match BatchHeader::parse(&head) {
                Ok(h) => h,
                Err(e) => {
                    outcome.stopped_by = Some(format!("{e} at position {position}"));
                    break;
                }
            };
            let total = header.total_size();
            if total > max_batch_size || position + total as u64 > file_len {
                outcome.stopped_by = Some(format!(
                    "batch of {total} bytes at position {position} runs past the end or the size limit"
                ));
                break;
            }
            if header.base_offset < expected_min_offset {
                outcome.stopped_by = Some(format!(
                    "batch offset {} at position {position} goes backwards",
                    header.base_offset
                ));
                break;
            }
            buf.resize(total, 0);
            self.file.read_exact_at(&mut buf, position)?;
            if let Err(e) = BatchHeader::parse_and_verify(&buf) {
                outcome.stopped_by = Some(format!("{e} at position {position}"));
                break;
            }
            if rebuild {
                self.track_batch(&header, position as u32);
            }
            expected_min_offset = header.next_offset();
            outcome.next_offset = Some(header.next_offset());
            outcome.batches.push(header);
            position += total as u64;
        }
        outcome.valid_bytes = position;
        Ok(outcome)
    }

    /// Reads the headers from the last offset index entry to the end: enough,
    /// after a clean shutdown, to learn the next offset and latest timestamps.
    pub fn scan_tail(&mut self) -> io::Result<Option<i64>> {
        let start = match self.offset_index.file_mut().last()? {
            Some(e) => e.position as u64,
            None => 0,
        };
        if let Some(last) = self.time_index.last()? {
            self.max_timestamp = Some(MaxTimestamp {
                timestamp: last.timestamp,
                offset: self.base_offset + last.relative_offset as i64,
            });
        }
        if let Some(first) = self.read_header_at(0, self.size)? {
            self.first_batch_timestamp = Some(first.max_timestamp);
        }
        let mut position = start;
        let mut next = None;
        while let Some(header) = self.read_header_at(position, self.size)? {
            let newer = self.max_timestamp.is_none_or(|m| header.max_timestamp > m.timestamp);
            if newer {
                self.max_timestamp = Some(MaxTimestamp {
                    timestamp: header.max_timestamp,
                    offset: header.last_offset(),
                });
            }
            position += header.total_size() as u64;
            self.bytes_since_last_index_entry += header.total_size() as u64;
            next = Some(header.next_offset());
        }
        Ok(next)
    }

    /// Cuts the segment at `position` (a batch boundary), dropping index
    /// entries that pointed past it.
    pub fn truncate_to(&mut self, position: u64, next_offset: i64) -> io::Result<()> {
        self.file.set_len(position)?;
        self.size = position;
        self.offset_index.truncate_to_position(position as u32)?;
        self.time_index.truncate_to_offset(next_offset)?;
        Ok(())
    }

    /// Reopens a segment for appending after a scan that has rebuilt its state.
    pub fn reopen_for_append(&mut self) -> io::Result<()> {
        let offset_file = IndexFile::open_for_append(self.dir.join(file_name(self.base_offset, ".index")))?;
        let time_file = IndexFile::open_for_append(self.dir.join(file_name(self.base_offset, ".timeindex")))?;
        self.offset_index = OffsetIndex::new(self.base_offset, offset_file);
        self.time_index = TimeIndex::new(self.base_offset, time_file);
        self.sealed = false;
        Ok(())
    }

    /// What an fsync of this segment needs, to run outside the log's lock.
    /// The indexes of the active segment are left out: recovery rebuilds
    /// them for every segment past the recovery point.
    pub fn flush_handle(&self) -> SegmentFlush {
        SegmentFlush {
            file: self.file.clone(),
            indexes: self.sealed.then(|| (self.dir.clone(), self.base_offset)),
        }
    }

    /// Stops appending: writes the final time index entry (so a sealed
    /// segment's greatest timestamp is its last entry) and closes the
    /// indexes. Nothing is synced here: see `flush_handle`.
    pub fn seal(&mut self) -> io::Result<()> {
        if self.sealed {
            return Ok(());
        }
        if let Some(m) = self.max_timestamp {
            self.time_index.maybe_append(m.timestamp, m.offset)?;
        }
        self.offset_index.file_mut().seal()?;
        self.time_index.file_mut().seal()?;
        self.sealed = true;
        Ok(())
    }

    pub fn delete(mut self) -> io::Result<()> {
        self.offset_index.file_mut().delete()?;
        self.time_index.file_mut().delete()?;
        super::txn_index::delete(&self.dir, self.base_offset)?;
        remove_if_present(&self.dir.join(file_name(self.base_offset, ".log")))
    }

    /// The segment's files were moved to `dir` (its descriptor follows them).
    pub fn moved_to(&mut self, dir: &Path) {
        let base = self.base_offset;
        self.dir = dir.to_path_buf();
        self.offset_index = OffsetIndex::new(base, IndexFile::lazy(dir.join(file_name(base, ".index"))));
        self.time_index = TimeIndex::new(base, IndexFile::lazy(dir.join(file_name(base, ".timeindex"))));
    }

    /// Takes the segment out of the log at once: see `mark_deleted`.
    pub fn mark_deleted(self) -> io::Result<DeletedSegment> {
        mark_deleted(&self.dir, self.base_offset)
    }

    /// Reads bytes `[position, position + len)` of the segment.
    pub fn read_at(file: &File, position: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = file.read_at(&mut buf[done..], position + done as u64)?;
            if n == 0 {
                buf.truncate(done);
                break;
            }
            done += n;
        }
        Ok(buf)
    }
}

/// Renames the files of the segment at `base` aside (`.deleted`, which
/// start-up removes), to be unlinked later, outside the log's lock, by
/// `DeletedSegment::remove`. Readers holding the file keep it.
pub fn mark_deleted(dir: &Path, base: i64) -> io::Result<DeletedSegment> {
    let mut renamed = Vec::with_capacity(SUFFIXES.len());
    for suffix in SUFFIXES {
        let from = dir.join(file_name(base, suffix));
        let to = dir.join(format!("{}.deleted", file_name(base, suffix)));
        match std::fs::rename(&from, &to) {
            Ok(()) => renamed.push(to),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(DeletedSegment { renamed })
}

/// A segment's files, renamed aside and waiting to be unlinked.
pub struct DeletedSegment {
    renamed: Vec<PathBuf>,
}

impl DeletedSegment {
    pub fn remove(self) -> io::Result<()> {
        self.renamed.iter().try_for_each(|path| remove_if_present(path))
    }
}

/// An fsync of one segment: its log, and the indexes of a sealed one.
pub struct SegmentFlush {
    file: Arc<File>,
    indexes: Option<(PathBuf, i64)>,
}

impl SegmentFlush {
    pub fn run(&self) -> io::Result<()> {
        self.file.sync_data()?;
        if let Some((dir, base)) = &self.indexes {
            for suffix in INDEX_SUFFIXES {
                super::fsync_if_present(&dir.join(file_name(*base, suffix)))?;
            }
        }
        Ok(())
    }
}

pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
