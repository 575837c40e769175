//! The native log: partitions stored as Kafka stores them, in segments of
//! record batches with sparse offset and time indexes. Disk I/O runs off the
//! async threads (`blocking`), under locks that are each one partition's own.
//!
//! From the bytes up: `batch` (the v2 batch header), `records` (records in
//! a batch, read in place), `codec`; `validator` (a produced batch's one
//! check); `index_file`, `offset_index`, `time_index`, `txn_index`;
//! `segment` (one segment's files), `segments` (a log's ordered segments),
//! `swap` (cleaned segments in, crash-safely);
//! `producer_state` and `producer_snapshot`; `log` (offsets, appends, reads,
//! rolls, retention); `loader` (start-up and recovery); `cleaner`
//! (compaction); `partition` (a shared log and its blocking-pool hops);
//! `log_manager` (the log directories); `maintenance` (periodic work).

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod codec;
pub mod codec_stream;
pub mod delayed_removal;
pub mod index_file;
pub mod leader_epochs;
pub mod loader;
pub mod log;
pub mod log_manager;
pub mod maintenance;
pub mod offset_index;
pub mod partition;
pub mod producer_snapshot;
pub mod producer_state;
pub mod record_stream;
pub mod records;
pub mod segment;
pub mod segments;
pub mod swap;
pub mod time_index;
pub mod txn_index;
pub mod validator;

use std::io::{self, Write};
use std::path::Path;

pub use log::{AppendInfo, Log, LogError, ReadPlan};
pub use log_manager::LogManager;
pub use partition::{blocking, Partition};
pub use validator::{LogValidator, ValidBatch, ValidationError};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether a write failed because the filesystem is full (or the user's quota
/// is): the log directory is still sound, and writes may succeed again once
/// space returns, so it is not taken out of service as a failed disk is.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Writes `bytes` to `path` so that readers see the old or the new content,
/// never a mix: a temporary file, fsync, rename, fsync of the directory.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file_atomically_with_mode(path, bytes, 0o644)
}

/// As `write_file_atomically`, with the file's Unix permissions.
pub fn write_file_atomically_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        // A half-written temporary file would hold space a full disk needs.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// fsyncs a file if it exists (an index that was never written may not).
pub fn fsync_if_present(path: &Path) -> io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory, so that the files created or renamed in it last.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
