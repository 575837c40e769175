//! The quorum's log on disk: entries in one append-only file (each frame
//! length, CRC32C and JSON), the vote and the committed and purged log ids in
//! small files written atomically. Metadata is small, so the entries are also
//! held in memory; a truncation or purge (rare) rewrites the file.

use super::types::{Entry, LogId, NodeId, QuorumTypes, StorageError};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::warn;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
}

/// The log store and its reader (clones share the log).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    crate::storage::write_file_atomically_with_mode(path, &bytes, 0o600)
}

fn encode_frame(entry: &Entry) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(8 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The next whole, intact frame's entry and length; None at a torn or
/// corrupt tail.
fn decode_frame(bytes: &[u8]) -> Option<(usize, Entry)> {
    let len = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(8..8usize.checked_add(len)?)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    serde_json::from_slice(body).ok().map(|e| (8 + len, e))
}

impl Inner {
    fn rewrite(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        for entry in self.entries.values() {
            bytes.extend_from_slice(&encode_frame(entry)?);
        }
        let path = self.dir.join(LOG_FILE);
        crate::storage::write_file_atomically_with_mode(&path, &bytes, 0o600)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }

    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut bytes = Vec::new();
        for entry in &entries {
            bytes.extend_from_slice(&encode_frame(entry)?);
        }
        self.file.write_all(&bytes)?;
        self.file.sync_data()?;
        for entry in entries {
            self.entries.insert(entry.log_id.index, entry);
        }
        Ok(())
    }
}

impl LogStore {
    /// Opens the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let last_purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;
        let mut entries = BTreeMap::new();
        let mut pos = 0;
        while let Some((len, entry)) = decode_frame(&bytes[pos..]) {
            pos += len;
            if Some(entry.log_id.index) > last_purged.map(|l| l.index) || last_purged.is_none() {
                entries.insert(entry.log_id.index, entry);
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if pos < bytes.len() {
            warn!(bytes = bytes.len() - pos, "cut a torn tail of the quorum log");
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote: read_json(&dir.join(VOTE_FILE))?,
                committed: read_json(&dir.join(COMMITTED_FILE))?,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anything was ever written (a vote or an entry).
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.entries.is_empty() && inner.vote.is_none() && inner.last_purged.is_none()
    }
}

impl RaftLogReader<QuorumTypes> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<QuorumTypes> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<QuorumTypes>, StorageError> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        write_json(&inner.dir.join(VOTE_FILE), vote).map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.committed == committed {
            return Ok(());
        }
        // Not synced to be durable: losing it only means re-applying after a commit.
        write_json(&inner.dir.join(COMMITTED_FILE), &committed).map_err(|e| StorageIOError::write(&e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<QuorumTypes>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let inner = self.inner.clone();
        let result = crate::storage::blocking(move || {
            let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.append(entries)
        })
        .await
        .and_then(|r| r);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                callback.log_io_completed(Err(e));
                Err(StorageIOError::write_logs(&io::Error::other(message)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.entries.retain(|index, _| *index < log_id.index);
        inner.rewrite().map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        write_json(&inner.dir.join(PURGED_FILE), &log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        inner.last_purged = Some(log_id);
        inner.entries.retain(|index, _| *index > log_id.index);
        inner.rewrite().map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
