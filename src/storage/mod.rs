//! The native log: partitions stored as Kafka stores them, in segments of
//! record batches with sparse offset and time indexes.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod codec;
pub mod compaction;
pub mod index_file;
pub mod loader;
pub mod log;
pub mod log_manager;
pub mod offset_index;
pub mod partition;
pub mod producer_state;
pub mod segment;
pub mod time_index;
pub mod txn_index;

use std::io::{self, Write};
use std::path::Path;

pub use log::{AppendInfo, Log, LogError, ReadPlan};
pub use log_manager::LogManager;
pub use partition::Partition;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
