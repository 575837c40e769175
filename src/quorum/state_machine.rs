//! The quorum's state machine: the metadata image. Applying an entry replays
//! its records into the next image, which goes to this node's publisher as
//! on a single node. A snapshot is the image as records (the same form as
//! the single-node checkpoint), kept in one file.

use super::types::{Applied, Entry, LogId, Node, NodeId, QuorumTypes, StorageError};
use crate::metadata::delta::{MetadataChanges, MetadataDelta};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;
use crate::metadata::Publication;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tracing::info;

const SNAPSHOT_FILE: &str = "snapshot.json";

/// A snapshot's data: the image at `offset`, as records.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    offset: i64,
    records: Vec<MetadataRecord>,
}

/// A snapshot on disk: its meta and data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    data: Vec<u8>,
}

struct State {
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, Node>,
    image: Arc<MetadataImage>,
    snapshot: Option<StoredSnapshot>,
    snapshot_seq: u64,
    /// Bytes of records applied since the last snapshot (taken or installed).
    bytes_since_snapshot: u64,
}

/// The state machine and its snapshot builder (clones share it).
#[derive(Clone)]
pub struct MetadataStateMachine {
    state: Arc<Mutex<State>>,
    publications: mpsc::UnboundedSender<Publication>,
    latest: watch::Sender<Arc<MetadataImage>>,
}

/// The image a snapshot's records describe.
pub fn image_from(offset: i64, records: &[MetadataRecord]) -> MetadataImage {
    let mut delta = MetadataDelta::new(&MetadataImage::default());
    delta.replay_snapshot(offset, records);
    delta.apply().0
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
}

impl MetadataStateMachine {
    /// Opens the state machine in `dir` from its snapshot, if any. `base` is
    /// the image before any entry (the node's bootstrap records).
    pub fn open(
        dir: &Path,
        base: Arc<MetadataImage>,
        publications: mpsc::UnboundedSender<Publication>,
    ) -> io::Result<MetadataStateMachine> {
        let path = dir.join(SNAPSHOT_FILE);
        let snapshot: Option<StoredSnapshot> = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| invalid(&path, e))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (last_applied, membership, image) = match &snapshot {
            Some(s) => {
                let data: SnapshotData = serde_json::from_slice(&s.data).map_err(|e| invalid(&path, e))?;
                (
                    s.meta.last_log_id,
                    s.meta.last_membership.clone(),
                    Arc::new(image_from(data.offset, &data.records)),
                )
            }
            None => (None, StoredMembership::default(), base),
        };
        let from_snapshot = snapshot.is_some();
        let machine = MetadataStateMachine {
            state: Arc::new(Mutex::new(State {
                dir: dir.to_path_buf(),
                last_applied,
                membership,
                image: image.clone(),
                snapshot,
                snapshot_seq: 0,
                bytes_since_snapshot: 0,
            })),
            publications,
            latest: watch::Sender::new(image.clone()),
        };
        if from_snapshot {
            // The broker starts from nothing: what the snapshot holds is all new to it.
            let changes = MetadataChanges::between(&MetadataImage::default(), &image);
            machine.publish(image, changes);
        }
        Ok(machine)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest image applied here (committed metadata).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.latest.borrow().clone()
    }

    /// Bytes of records applied since the last snapshot (Kafka snapshots by
    /// `metadata.log.max.record.bytes.between.snapshots`).
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.lock().bytes_since_snapshot
    }

    /// Watches the latest image applied here.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.latest.subscribe()
    }

    fn publish(&self, image: Arc<MetadataImage>, changes: MetadataChanges) {
        self.latest.send_replace(image.clone());
        // The publisher is gone only when the node shuts down.
        let _ = self.publications.send(Publication { image, changes });
    }
}

impl RaftSnapshotBuilder<QuorumTypes> for MetadataStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<QuorumTypes>, StorageError> {
        let (meta, image, dir) = {
            let mut state = self.lock();
            state.snapshot_seq += 1;
            let last = state.last_applied;
            let id = match last {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, state.snapshot_seq),
                None => format!("none-{}", state.snapshot_seq),
            };
            state.bytes_since_snapshot = 0;
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: state.membership.clone(),
                snapshot_id: id,
            };
            (meta, state.image.clone(), state.dir.clone())
        };
        let data = SnapshotData {
            offset: image.offset,
            records: image.to_records(),
        };
        let bytes = serde_json::to_vec(&data).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes.clone(),
        };
        let file = serde_json::to_vec(&stored).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let path = dir.join(SNAPSHOT_FILE);
        crate::storage::blocking(move || crate::storage::write_file_atomically_with_mode(&path, &file, 0o600))
            .await
            .and_then(|r| r)
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        self.lock().snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<QuorumTypes> for MetadataStateMachine {
    type SnapshotBuilder = MetadataStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership<NodeId, Node>), StorageError> {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut answers = Vec::new();
        for entry in entries {
            let published = {
                let mut state = self.lock();
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m);
                        None
                    }
                    EntryPayload::Normal(batch) if batch.records.is_empty() => None,
                    EntryPayload::Normal(batch) => {
                        let bytes: usize = batch.records.iter().map(|r| r.encode().len()).sum();
                        state.bytes_since_snapshot += bytes as u64;
                        let mut delta = MetadataDelta::new(&state.image);
                        delta.replay_all(state.image.offset + 1, &batch.records);
                        let (image, changes) = delta.apply();
                        let image = Arc::new(image);
                        state.image = image.clone();
                        Some((image, changes))
                    }
                }
            };
            let offset = match published {
                Some((image, changes)) => {
                    let offset = image.offset;
                    self.publish(image, changes);
                    offset
                }
                None => self.lock().image.offset,
            };
            answers.push(Applied { offset });
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> MetadataStateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData =
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let image = Arc::new(image_from(data.offset, &data.records));
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        let file =
            serde_json::to_vec(&stored).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let path = self.lock().dir.join(SNAPSHOT_FILE);
        crate::storage::blocking(move || crate::storage::write_file_atomically_with_mode(&path, &file, 0o600))
            .await
            .and_then(|r| r)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let changes = {
            let mut state = self.lock();
            let changes = MetadataChanges::between(&state.image, &image);
            state.image = image.clone();
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.snapshot = Some(stored);
            state.bytes_since_snapshot = 0;
            changes
        };
        info!(snapshot = %meta.snapshot_id, offset = data.offset, "installed a metadata snapshot from the leader");
        self.publish(image, changes);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<QuorumTypes>>, StorageError> {
        let state = self.lock();
        Ok(state.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
