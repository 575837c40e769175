//! `LogManager`: the log directories. It locks them, tells a clean start from
//! a crash, creates, loads and deletes partition directories
//! (`<topic>-<partition>`), and keeps the checkpoint files.

use super::checkpoint::{
    self, Checkpoint, CLEANER_OFFSET_FILE, HIGH_WATERMARK_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use super::delayed_removal::{remove_after, Removal};
use super::loader::{LoadReport, LogLoader};
use super::log::{Log, LogError};
use super::now_ms;
use super::partition::Partition;
use crate::config::topic::LogConfig;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

const CLEAN_SHUTDOWN_FILE: &str = ".sluice_clean_shutdown";
const LOCK_FILE: &str = ".lock";

struct LogDir {
    path: PathBuf,
    /// Held for the broker's lifetime: a second broker on the same directory fails.
    _lock: File,
    clean_shutdown: bool,
    recovery_points: Checkpoint,
    log_start_offsets: Checkpoint,
    /// Where each compacted log's uncleaned part began (Kafka's file too).
    cleaner_offsets: Checkpoint,
    /// Each partition's high watermark at the last checkpoint.
    high_watermarks: Checkpoint,
    /// Writing to it failed: its partitions are out of service, nothing new
    /// goes there (Kafka's offline log dir).
    offline: std::sync::atomic::AtomicBool,
}

pub struct LogManager {
    dirs: Vec<LogDir>,
    checkpoint_wanted: Arc<tokio::sync::Notify>,
    /// Which directory holds each partition.
    placement: Mutex<HashMap<(String, i32), usize>>,
}

pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

fn lock_dir(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join(LOCK_FILE))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by another broker", path.display()),
        ));
    }
    Ok(file)
}

/// Threads closing logs at shutdown: a close is a few fsyncs, which the
/// filesystem groups into one journal commit when they run side by side, so
/// 10,000 partitions stop in a fraction of the time one thread would take.
const CLOSING_THREADS: usize = 8;

/// Closes every log (sealed indexes, fsyncs, a producer snapshot); false if
/// any could not be closed.
fn close_logs(partitions: &[Arc<Partition>]) -> bool {
    let close = |chunk: &[Arc<Partition>]| {
        let mut ok = true;
        for p in chunk {
            if let Err(e) = p.log().close() {
                ok = false;
                warn!(topic = p.topic(), partition = p.index(), error = %e, "could not close log");
            }
        }
        ok
    };
    if partitions.len() < 2 * CLOSING_THREADS {
        return close(partitions);
    }
    let chunk = partitions.len().div_ceil(CLOSING_THREADS);
    std::thread::scope(|scope| {
        let closing: Vec<_> = partitions
            .chunks(chunk)
            .map(|c| scope.spawn(move || close(c)))
            .collect();
        // Every thread is joined, whatever the others found (one that
        // panicked and was left unjoined would panic the scope).
        let closed: Vec<bool> = closing.into_iter().map(|t| t.join().unwrap_or(false)).collect();
        closed.into_iter().all(|ok| ok)
    })
}

impl LogManager {
    /// Opens (creating if needed) and locks every log directory.
    pub fn open(paths: &[PathBuf]) -> io::Result<LogManager> {
        let mut dirs = Vec::new();
        let mut placement = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            std::fs::create_dir_all(path)?;
            let lock = lock_dir(path)?;
            let marker = path.join(CLEAN_SHUTDOWN_FILE);
            let clean_shutdown = marker.exists();
            if clean_shutdown {
                // From now on a crash must look like one.
                std::fs::remove_file(&marker)?;
            }
            for entry in std::fs::read_dir(path)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with("-delete") {
                    // A deletion that a crash interrupted.
                    let _ = std::fs::remove_dir_all(entry.path());
                    continue;
                }
                if let Some((topic, p)) = parse_partition_dir(&name) {
                    placement.insert((topic, p), i);
                }
            }
            dirs.push(LogDir {
                path: path.clone(),
                _lock: lock,
                clean_shutdown,
                recovery_points: checkpoint::read(&path.join(RECOVERY_POINT_FILE))?,
                log_start_offsets: checkpoint::read(&path.join(LOG_START_OFFSET_FILE))?,
                cleaner_offsets: checkpoint::read(&path.join(CLEANER_OFFSET_FILE))?,
                high_watermarks: checkpoint::read(&path.join(HIGH_WATERMARK_FILE))?,
                offline: Default::default(),
            });
        }
        Ok(LogManager {
            dirs,
            checkpoint_wanted: Arc::new(tokio::sync::Notify::new()),
            placement: Mutex::new(placement),
        })
    }

    /// Notified when a partition's recovery point has moved.
    pub fn checkpoint_wanted(&self) -> &Arc<tokio::sync::Notify> {
        &self.checkpoint_wanted
    }

    /// The first log directory, which also holds the cluster metadata.
    pub fn primary_dir(&self) -> &Path {
        &self.dirs[0].path
    }

    pub fn was_clean_shutdown(&self) -> bool {
        self.dirs.iter().all(|d| d.clean_shutdown)
    }

    /// Partition directories found on disk, as (topic, partition).
    pub fn partitions_on_disk(&self) -> Vec<(String, i32)> {
        let placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = placement.keys().cloned().collect();
        out.sort();
        out
    }

    /// Loads a partition found on disk, or creates it if it is not there.
    /// The directory is chosen under the placement lock (shared by all
    /// partitions); the files are read or created without it. A new
    /// partition costs a directory, an empty segment file (one descriptor)
    /// and `partition.metadata`, and no fsync: the metadata log, not the
    /// directory, says that it exists. Callers open a partition once.
    pub fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        topic_id: uuid::Uuid,
        config: LogConfig,
    ) -> Result<(Arc<Partition>, LoadReport), LogError> {
        let key = (topic.to_string(), partition);
        let (dir_index, existing) = {
            let mut placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
            match placement.get(&key) {
                Some(i) => (*i, true),
                None => {
                    // New partitions go to the directory holding the fewest;
                    // taken now, so that concurrent creations spread out.
                    let mut counts = vec![0usize; self.dirs.len()];
                    for i in placement.values() {
                        counts[*i] += 1;
                    }
                    let chosen = (0..self.dirs.len())
                        .filter(|i| !self.is_offline(*i))
                        .min_by_key(|i| counts[*i])
                        .unwrap_or(0);
                    placement.insert(key.clone(), chosen);
                    (chosen, false)
                }
            }
        };
        let opened = self.open_in(dir_index, existing, &key, topic_id, config);
        if opened.is_err() && !existing {
            self.placement.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
        let (log, report) = opened?;
        let partition = Partition::new(topic, partition, log, self.checkpoint_wanted.clone());
        Ok((Arc::new(partition), report))
    }

    fn open_in(
        &self,
        dir_index: usize,
        existing: bool,
        key: &(String, i32),
        topic_id: uuid::Uuid,
        config: LogConfig,
    ) -> Result<(Log, LoadReport), LogError> {
        let dir = &self.dirs[dir_index];
        let path = dir.path.join(partition_dir_name(&key.0, key.1));
        let (mut log, report) = if existing {
            LogLoader {
                dir: &path,
                config,
                clean_shutdown: dir.clean_shutdown,
                recovery_point: dir.recovery_points.get(key).copied().unwrap_or(0),
                log_start_offset: dir.log_start_offsets.get(key).copied().unwrap_or(0),
                now_ms: now_ms(),
            }
            .load()?
        } else {
            (Log::create(&path, config, now_ms())?, LoadReport::default())
        };
        if let Some(cleaned) = dir.cleaner_offsets.get(key).filter(|_| existing) {
            log.mark_cleaned((*cleaned).min(log.log_end_offset()));
        }
        if let Some(hw) = dir.high_watermarks.get(key).filter(|_| existing) {
            log.restore_high_watermark(*hw);
        }
        write_partition_metadata(&path, topic_id, existing)?;
        Ok((log, report))
    }

    /// The log directory a partition's log is in (its index in `log.dirs`).
    pub fn dir_of(&self, partition: &Partition) -> Option<PathBuf> {
        let key = (partition.topic().to_string(), partition.index());
        let placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        placement.get(&key).map(|i| self.dirs[*i].path.clone())
    }

    /// Whether log directory `i` failed.
    pub fn is_offline(&self, i: usize) -> bool {
        self.dirs[i].offline.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes log directory `i` out of service (a write to it failed); true
    /// the first time. Every partition in it must then be marked offline.
    pub fn mark_offline(&self, i: usize) -> bool {
        let first = !self.dirs[i].offline.swap(true, std::sync::atomic::Ordering::Relaxed);
        if first {
            tracing::error!(dir = %self.dirs[i].path.display(), "log directory failed: its partitions are offline");
        }
        first
    }

    /// The partitions (topic, index) whose logs are in log directory `i`.
    pub fn partitions_in(&self, i: usize) -> Vec<(String, i32)> {
        let placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        placement
            .iter()
            .filter(|(_, d)| **d == i)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The configured log directory that is `path` (compared canonically).
    pub fn find_dir(&self, path: &Path) -> Option<usize> {
        let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.dirs
            .iter()
            .position(|d| std::fs::canonicalize(&d.path).unwrap_or_else(|_| d.path.clone()) == wanted)
    }

    /// Moves a partition's log to another of the broker's log directories
    /// (AlterReplicaLogDirs). Appends wait meanwhile: the log is closed,
    /// its directory renamed (copied when the directories are on different
    /// file systems) and loaded again from there, with its high watermark,
    /// cleaner position and role kept. On the same file system this is a
    /// rename, so the wait is short whatever the size.
    pub fn move_partition(&self, partition: &Partition, to: usize) -> Result<(), LogError> {
        let key = (partition.topic().to_string(), partition.index());
        let Some(from) = self
            .placement
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
        else {
            return Err(LogError::Deleted);
        };
        if from == to {
            return Ok(());
        }
        let mut log = partition.log();
        if log.is_deleted() {
            return Err(LogError::Deleted);
        }
        let (config, hw, start, dirty, replicated) = (
            log.config().clone(),
            log.high_watermark(),
            log.log_start_offset(),
            log.first_dirty_offset(),
            log.is_replicated(),
        );
        log.close()?;
        let name = partition_dir_name(&key.0, key.1);
        let (old, new) = (self.dirs[from].path.join(&name), self.dirs[to].path.join(&name));
        if new.exists() {
            // Left by an earlier move that did not finish: this copy is the one in use.
            std::fs::remove_dir_all(&new)?;
        }
        if std::fs::rename(&old, &new).is_err() {
            copy_dir(&old, &new)?;
            std::fs::remove_dir_all(&old)?;
        }
        let (mut moved, _) = LogLoader {
            dir: &new,
            config,
            clean_shutdown: true,
            recovery_point: log.recovery_point(),
            log_start_offset: start,
            now_ms: now_ms(),
        }
        .load()?;
        moved.mark_cleaned(dirty.min(moved.log_end_offset()));
        moved.restore_high_watermark(hw);
        if replicated {
            moved.set_replicated(true);
        }
        *log = moved;
        self.placement.lock().unwrap_or_else(|e| e.into_inner()).insert(key, to);
        Ok(())
    }

    /// Deletes a partition: it stops serving at once; its directory is renamed
    /// aside and removed `file.delete.delay.ms` later, as Kafka removes it.
    pub fn delete_partition(&self, partition: &Partition) {
        let delay_ms = {
            let mut log = partition.log();
            log.mark_deleted();
            log.config().file_delete_delay_ms
        };
        let key = (partition.topic().to_string(), partition.index());
        let removed = self.placement.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        let Some(dir_index) = removed else { return };
        let dir = &self.dirs[dir_index].path;
        let path = dir.join(partition_dir_name(&key.0, key.1));
        let aside = dir.join(format!(
            "{}.{}-delete",
            partition_dir_name(&key.0, key.1),
            uuid::Uuid::new_v4().simple()
        ));
        match std::fs::rename(&path, &aside) {
            // Removed at once, still off the caller's thread.
            Ok(()) if delay_ms <= 0 => drop(std::thread::spawn(move || remove_after(0, Removal::Dir(aside)))),
            Ok(()) => remove_after(delay_ms, Removal::Dir(aside)),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "could not delete partition directory")
            }
        }
    }

    /// Writes every directory's recovery point, log start offset and cleaner
    /// offset checkpoints. A directory that cannot be written is taken out of
    /// service (Kafka's log dir failure): the directories newly failed.
    pub fn checkpoint(&self, partitions: &[Arc<Partition>]) -> Vec<usize> {
        let placement = self.placement.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut recovery: Vec<Checkpoint> = vec![Checkpoint::new(); self.dirs.len()];
        let mut starts: Vec<Checkpoint> = vec![Checkpoint::new(); self.dirs.len()];
        let mut cleaned: Vec<Checkpoint> = vec![Checkpoint::new(); self.dirs.len()];
        let mut high_watermarks: Vec<Checkpoint> = vec![Checkpoint::new(); self.dirs.len()];
        for p in partitions {
            let key = (p.topic().to_string(), p.index());
            let Some(i) = placement.get(&key) else {
                continue;
            };
            let log = p.log();
            if log.is_deleted() {
                continue;
            }
            if log.first_dirty_offset() > 0 {
                cleaned[*i].insert(key.clone(), log.first_dirty_offset());
            }
            recovery[*i].insert(key.clone(), log.recovery_point());
            high_watermarks[*i].insert(key.clone(), log.high_watermark());
            starts[*i].insert(key, log.log_start_offset());
        }
        let mut failed = Vec::new();
        for (i, dir) in self.dirs.iter().enumerate() {
            if self.is_offline(i) {
                continue;
            }
            let written = (|| -> io::Result<()> {
                checkpoint::write(&dir.path.join(RECOVERY_POINT_FILE), &recovery[i])?;
                checkpoint::write(&dir.path.join(LOG_START_OFFSET_FILE), &starts[i])?;
                checkpoint::write(&dir.path.join(CLEANER_OFFSET_FILE), &cleaned[i])?;
                checkpoint::write(&dir.path.join(HIGH_WATERMARK_FILE), &high_watermarks[i])
            })();
            if let Err(e) = written {
                if super::is_out_of_space(&e) {
                    // The old checkpoints stand (they are replaced atomically);
                    // the next round writes them once space returns.
                    warn!(dir = %dir.path.display(), error = %e, "log directory full: checkpoints not written");
                    continue;
                }
                warn!(dir = %dir.path.display(), error = %e, "could not write the log directory's checkpoints");
                if self.mark_offline(i) {
                    failed.push(i);
                }
            }
        }
        failed
    }

    /// Closes every log and leaves the marker that makes the next start fast.
    pub fn shutdown(&self, partitions: &[Arc<Partition>]) -> io::Result<()> {
        let mut ok = close_logs(partitions);
        if !self.checkpoint(partitions).is_empty() {
            ok = false;
        }
        if ok {
            for (i, dir) in self.dirs.iter().enumerate() {
                if !self.is_offline(i) {
                    crate::storage::write_file_atomically(&dir.path.join(CLEAN_SHUTDOWN_FILE), b"")?;
                }
            }
            info!("logs closed cleanly");
        }
        Ok(())
    }
}

/// Copies a partition directory (its files only: it has no subdirectories).
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    let dir = File::open(to)?;
    dir.sync_all()
}

/// Splits `<topic>-<partition>` (topics may contain '-').
pub fn parse_partition_dir(name: &str) -> Option<(String, i32)> {
    let (topic, p) = name.rsplit_once('-')?;
    if topic.is_empty() || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic.to_string(), p.parse().ok()?))
}

/// Kafka's `partition.metadata` file: the topic id of the partition's topic.
/// Not synced: a crash may lose it with the directory, which the metadata
/// log recreates; a torn one is rewritten at the next open.
fn write_partition_metadata(dir: &Path, topic_id: uuid::Uuid, existing: bool) -> io::Result<()> {
    let path = dir.join("partition.metadata");
    let text = format!("version: 0\ntopic_id: {}\n", crate::metadata::topic_id_string(topic_id));
    if existing && std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    std::fs::write(&path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names() {
        assert_eq!(parse_partition_dir("orders-3"), Some(("orders".into(), 3)));
        assert_eq!(parse_partition_dir("my-topic-12"), Some(("my-topic".into(), 12)));
        assert_eq!(parse_partition_dir("nodash"), None);
        assert_eq!(parse_partition_dir("x-1a"), None);
    }

    #[test]
    fn where_the_cleaner_stopped_survives_a_restart() {
        let root = tempfile::tempdir().unwrap();
        let dirs = [root.path().to_path_buf()];
        let id = uuid::Uuid::new_v4();
        {
            let logs = LogManager::open(&dirs).unwrap();
            let (p, _) = logs.open_partition("c", 0, id, LogConfig::default()).unwrap();
            let mut batch =
                crate::storage::batch::tests::encode_batch(10, 0, kafka_protocol::records::Compression::None).to_vec();
            p.append_now(&mut batch).unwrap();
            p.log().mark_cleaned(7);
            logs.shutdown(&[p]).unwrap();
        }
        let logs = LogManager::open(&dirs).unwrap();
        let (p, _) = logs.open_partition("c", 0, id, LogConfig::default()).unwrap();
        assert_eq!(p.log().first_dirty_offset(), 7);
    }

    #[test]
    fn every_log_is_closed_when_many_close_side_by_side() {
        let root = tempfile::tempdir().unwrap();
        let dirs = [root.path().to_path_buf()];
        let id = uuid::Uuid::new_v4();
        let count = 5 * CLOSING_THREADS + 3;
        {
            let logs = LogManager::open(&dirs).unwrap();
            let partitions: Vec<_> = (0..count)
                .map(|i| {
                    let (p, _) = logs.open_partition("wide", i as i32, id, LogConfig::default()).unwrap();
                    let mut batch = crate::storage::batch::tests::encode_batch(
                        i + 1,
                        0,
                        kafka_protocol::records::Compression::None,
                    )
                    .to_vec();
                    p.append_now(&mut batch).unwrap();
                    p
                })
                .collect();
            logs.shutdown(&partitions).unwrap();
        }
        assert!(root.path().join(CLEAN_SHUTDOWN_FILE).exists());
        for i in 0..count {
            let dir = root.path().join(format!("wide-{i}"));
            let snapshot = crate::storage::segment::file_name(i as i64 + 1, ".snapshot");
            assert!(dir.join(&snapshot).exists(), "partition {i} has no snapshot at its end");
        }
        let logs = LogManager::open(&dirs).unwrap();
        for i in 0..count {
            let (p, _) = logs.open_partition("wide", i as i32, id, LogConfig::default()).unwrap();
            assert_eq!(p.log().log_end_offset(), i as i64 + 1);
        }
    }

    #[test]
    fn a_moved_partition_keeps_its_records_and_is_found_in_its_new_dir_after_a_restart() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let id = uuid::Uuid::new_v4();
        let batch =
            || crate::storage::batch::tests::encode_batch(10, 0, kafka_protocol::records::Compression::None).to_vec();
        {
            let logs = LogManager::open(&dirs).unwrap();
            let (p, _) = logs.open_partition("m", 0, id, LogConfig::default()).unwrap();
            p.append_now(&mut batch()).unwrap();
            let from = logs.find_dir(&logs.dir_of(&p).unwrap()).unwrap();
            let to = 1 - from;
            logs.move_partition(&p, to).unwrap();
            assert_eq!(logs.find_dir(&logs.dir_of(&p).unwrap()), Some(to));
            assert!(!dirs[from].join("m-0").exists() && dirs[to].join("m-0").exists());
            // Still serving: the next append lands after the moved records.
            assert_eq!(p.append_now(&mut batch()).unwrap().base_offset, 10);
            logs.shutdown(&[p]).unwrap();
        }
        let logs = LogManager::open(&dirs).unwrap();
        let (p, _) = logs.open_partition("m", 0, id, LogConfig::default()).unwrap();
        assert_eq!(p.log().log_end_offset(), 20);
        assert!(logs.dir_of(&p).is_some_and(|d| d.join("m-0").exists()));
    }

    #[test]
    fn a_directory_that_cannot_be_written_goes_offline_alone() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let logs = LogManager::open(&dirs).unwrap();
        let id = uuid::Uuid::new_v4();
        let (p0, _) = logs.open_partition("f", 0, id, LogConfig::default()).unwrap();
        let (p1, _) = logs.open_partition("f", 1, id, LogConfig::default()).unwrap();
        let broken = logs.find_dir(&logs.dir_of(&p1).unwrap()).unwrap();
        std::fs::remove_dir_all(&dirs[broken]).unwrap();
        assert_eq!(logs.checkpoint(&[p0.clone(), p1.clone()]), vec![broken]);
        assert!(logs.is_offline(broken) && !logs.is_offline(1 - broken));
        assert_eq!(logs.partitions_in(broken), vec![("f".to_string(), 1)]);
        assert!(logs.checkpoint(&[p0, p1]).is_empty(), "reported once");
        // New partitions go to the directory that works.
        let (p2, _) = logs.open_partition("f", 2, id, LogConfig::default()).unwrap();
        assert_eq!(logs.find_dir(&logs.dir_of(&p2).unwrap()), Some(1 - broken));
    }

    #[test]
    fn a_second_broker_cannot_take_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = LogManager::open(&[dir.path().to_path_buf()]).unwrap();
        assert!(LogManager::open(&[dir.path().to_path_buf()]).is_err());
    }
}
