//! `Partition`: a log shared between connections. Appends and read planning
//! take a short lock; data is read and fsynced outside it. Fetches waiting
//! for data (long-poll) register here and are woken by appends.

use super::log::{AppendInfo, Log, LogError, ReadPlan};
use super::now_ms;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

pub struct Partition {
    topic: String,
    index: i32,
    log: Mutex<Log>,
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// Rung when the recovery point moves, so that it reaches the checkpoint
    /// file promptly: a crash then rescans only the active segment.
    checkpoint_wanted: Arc<Notify>,
}

/// Offsets a fetch or ListOffsets reports alongside data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
}

impl Partition {
    pub fn new(topic: &str, index: i32, log: Log, checkpoint_wanted: Arc<Notify>) -> Partition {
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            waiters: Mutex::new(Vec::new()),
            checkpoint_wanted,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    /// The log, locked. A poisoned lock (a panic while appending) still holds
    /// a consistent log: every mutation is completed before state is updated.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn offsets(&self) -> PartitionOffsets {
        let log = self.log();
        PartitionOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            last_stable_offset: log.last_stable_offset(),
            log_end_offset: log.log_end_offset(),
            leader_epoch: log.leader_epoch(),
        }
    }

    /// Appends one validated batch, honours the flush policy, and wakes
    /// waiting fetches.
    pub async fn append(self: &Arc<Self>, mut batch: Vec<u8>) -> Result<AppendInfo, LogError> {
        let now = now_ms();
        let (info, flush) = {
            let mut log = self.log();
            let info = log.append(&mut batch, now)?;
            let flush = info.needs_flush.then(|| log.take_flush(now));
            (info, flush)
        };
        if !info.duplicate {
            self.wake_waiters();
        }
        self.flush_sealed_in_background(&info);
        if let Some(file) = flush {
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| LogError::Io(std::io::Error::other(e)))??;
        }
        Ok(info)
    }

    /// Appends without waiting: no fsync on the caller's path (the flush
    /// policy's timer still applies). For the broker's own small records.
    pub fn append_now(self: &Arc<Self>, batch: &mut [u8]) -> Result<AppendInfo, LogError> {
        let info = self.log().append(batch, now_ms())?;
        self.wake_waiters();
        self.flush_sealed_in_background(&info);
        Ok(info)
    }

    /// A segment sealed by an append is flushed in the background; the
    /// recovery point moves past it once it is on disk.
    fn flush_sealed_in_background(self: &Arc<Self>, info: &AppendInfo) {
        let (Some(sealed), Ok(runtime)) = (info.sealed.clone(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let partition = Arc::clone(self);
        let sealed_below = info.base_offset;
        runtime.spawn(async move {
            if let Ok(Ok(())) = tokio::task::spawn_blocking(move || sealed.sync_data()).await {
                partition.log().advance_recovery_point(sealed_below);
                partition.checkpoint_wanted.notify_one();
            }
        });
    }

    pub fn plan_read(&self, offset: i64, max_offset: i64) -> Result<Option<ReadPlan>, LogError> {
        self.log().plan_read(offset, max_offset)
    }

    /// Asks to be woken by the next append. Dead registrations are pruned here
    /// so that an idle partition polled by many fetches does not accumulate them.
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.retain(|w| w.strong_count() > 0);
        waiters.push(Arc::downgrade(waiter));
    }

    pub fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for w in waiters {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
    }
}
