//! `Partition`: a log shared between connections, behind its own lock (no
//! lock here is shared by independent partitions). File work never runs on
//! the async threads: `append` and `append_batches` leave them once per call
//! (`blocking`), whatever the number of partitions. A roll's fsyncs run in the background; the recovery point
//! follows them. Fetches waiting for data (long-poll) register here and are
//! woken by appends.

use super::batch::PendingBatch;
use super::delayed_removal::{remove_after, Removal};
use super::log::{AppendInfo, FlushPlan, Log, LogError, ReadPlan, Rolled};
use super::now_ms;
use super::segment::DeletedSegment;
use bytes::Bytes;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;
use tracing::warn;

/// Told of every append to a partition this broker leads while other
/// replicas share it (the replication layer moves the high watermark).
pub trait AppendObserver: Send + Sync {
    fn appended(&self, partition: &Partition, log_end_offset: i64);
}

pub struct Partition {
    topic: String,
    index: i32,
    log: Mutex<Log>,
    observer: Mutex<Option<Arc<dyn AppendObserver>>>,
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

/// Runs file work off the async threads. On a multi-threaded runtime the
/// calling thread stops being a worker for the duration (`block_in_place`:
/// its queue of tasks moves to another thread) and does the work itself;
/// elsewhere it goes to the blocking pool (`spawn_blocking`). Measured on 2
/// cores, `spawn_blocking` cost produce acks=1 about 7% of its throughput
/// (two thread wake-ups on each request's path); in place, none.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return Ok(tokio::task::block_in_place(work));
    }
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)
}

impl Partition {
    pub fn new(topic: &str, index: i32, log: Log, checkpoint_wanted: Arc<Notify>) -> Partition {
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            observer: Mutex::new(None),
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
    /// Its methods do file I/O: call them off the async threads.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or clears) what is told of this partition's appends.
    pub fn set_observer(&self, observer: Option<Arc<dyn AppendObserver>>) {
        *self.observer.lock().unwrap_or_else(|e| e.into_inner()) = observer;
    }

    fn observer(&self) -> Option<Arc<dyn AppendObserver>> {
        self.observer.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

    /// Appends one batch off the async threads; answers once it is written,
    /// and fsynced when the flush policy asks for it. What a coordinator
    /// writing its own records awaits.
    pub async fn append(self: &Arc<Self>, batch: Vec<u8>) -> Result<AppendInfo, LogError> {
        let batch = PendingBatch::new(Bytes::from(batch))?;
        let mut results = Partition::append_batches(vec![(self.clone(), batch)]).await;
        results.pop().unwrap_or(Err(LogError::Deleted))
    }

    /// Appends each batch to its partition (a produce request's batches) in
    /// one `blocking` call: see `append_batches_blocking`.
    pub async fn append_batches(batches: Vec<(Arc<Partition>, PendingBatch)>) -> Vec<Result<AppendInfo, LogError>> {
        let count = batches.len();
        match blocking(move || Partition::append_batches_blocking(batches)).await {
            Ok(results) => results,
            Err(e) => (0..count)
                .map(|_| Err(LogError::Io(io::Error::other(e.to_string()))))
                .collect(),
        }
    }

    /// Appends partition by partition, each under its own lock, then runs
    /// the fsyncs the flush policy asks for, outside the locks. File I/O:
    /// call it off the async threads.
    pub fn append_batches_blocking(batches: Vec<(Arc<Partition>, PendingBatch)>) -> Vec<Result<AppendInfo, LogError>> {
        let mut flushes = Vec::new();
        let mut results: Vec<Result<AppendInfo, LogError>> = batches
            .into_iter()
            .enumerate()
            .map(|(i, (partition, mut batch))| {
                let (info, flush) = partition.append_locked(|log, now| log.append_pending(&mut batch, now))?;
                flushes.extend(flush.map(|f| (i, f)));
                Ok(info)
            })
            .collect();
        for (i, flush) in flushes {
            if let Err(e) = flush.run() {
                results[i] = Err(LogError::Io(e));
            }
        }
        results
    }

    /// Appends on the calling thread, without the flush policy's fsync (its
    /// timer still applies). For the coordinators' own small records until
    /// they use `append`.
    pub fn append_now(self: &Arc<Self>, batch: &mut [u8]) -> Result<AppendInfo, LogError> {
        self.append_locked(|log, now| log.append(batch, now))
            .map(|(info, _)| info)
    }

    /// Appends under the lock; after it, wakes fetches and leaves the roll's
    /// fsyncs to the background. Returns the policy's flush, if due.
    fn append_locked(
        self: &Arc<Self>,
        append: impl FnOnce(&mut Log, i64) -> Result<AppendInfo, LogError>,
    ) -> Result<(AppendInfo, Option<FlushPlan>), LogError> {
        let now = now_ms();
        let (mut info, flush, end) = {
            let mut log = self.log();
            let info = append(&mut log, now)?;
            let flush = info.needs_flush.then(|| log.take_flush(now));
            (info, flush, log.log_end_offset())
        };
        if !info.duplicate {
            if let Some(observer) = self.observer() {
                observer.appended(self, end);
            }
            self.wake_waiters();
        }
        if let Some(rolled) = info.rolled.take() {
            self.finish_roll_in_background(rolled);
        }
        Ok((info, flush))
    }

    /// Stores a fetch response's batches as a follower (see
    /// `Log::append_as_follower`), then the leader's high watermark as far as
    /// this log reaches; rolls finish in the background and the flush policy
    /// runs as for a leader's append. Returns the new log end offset. File
    /// I/O: off the async threads.
    pub fn append_as_follower(self: &Arc<Self>, records: &[u8], leader_high_watermark: i64) -> Result<i64, LogError> {
        let now = now_ms();
        let (appended, flush, end) = {
            let mut log = self.log();
            let appended = log.append_as_follower(records, now)?;
            log.update_high_watermark(leader_high_watermark);
            let flush = appended.needs_flush.then(|| log.take_flush(now));
            (appended, flush, log.log_end_offset())
        };
        for rolled in appended.rolled {
            self.finish_roll_in_background(rolled);
        }
        if let Some(flush) = flush {
            flush.run()?;
        }
        self.wake_waiters();
        Ok(end)
    }

    /// Moves the high watermark (a leader's, as its ISR caught up) and wakes
    /// what waits on it: long-polling consumers and acks=all produces.
    pub fn set_high_watermark(&self, high_watermark: i64) {
        let moved = {
            let mut log = self.log();
            let before = log.high_watermark();
            log.update_high_watermark(high_watermark);
            log.high_watermark() != before
        };
        if moved {
            self.wake_waiters();
        }
    }

    /// Flushes what a roll sealed on the blocking pool (inline when there is
    /// no runtime, as in unit tests).
    fn finish_roll_in_background(self: &Arc<Self>, rolled: Rolled) {
        let partition = Arc::clone(self);
        let work = move || {
            if let Err(e) = partition.finish_roll(&rolled) {
                warn!(topic = partition.topic(), partition = partition.index(), error = %e, "could not flush a rolled segment");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(work)),
            Err(_) => work(),
        }
    }

    /// Makes the segments below the roll durable, writes its producer
    /// snapshot, then moves the recovery point.
    pub fn finish_roll(&self, rolled: &Rolled) -> io::Result<()> {
        let (plan, dir) = {
            let mut log = self.log();
            if log.is_deleted() {
                return Ok(());
            }
            (log.flush_plan(rolled.flush_below), log.dir().to_path_buf())
        };
        plan.run()?;
        if let Err(e) = rolled.snapshot.write(&dir) {
            // Start-up falls back to an older snapshot and replays more.
            warn!(topic = self.topic(), partition = self.index(), error = %e, "could not write a producer snapshot");
        }
        self.log().advance_recovery_point(rolled.flush_below);
        self.checkpoint_wanted.notify_one();
        Ok(())
    }

    /// Runs the flush.ms flush if it is due. File I/O: off the async threads.
    pub fn flush_if_due(&self, now_ms: i64) -> io::Result<()> {
        let plan = {
            let mut log = self.log();
            log.flush_due(now_ms).then(|| log.take_flush(now_ms))
        };
        plan.map_or(Ok(()), |p| p.run())
    }

    /// Applies retention; the deleted files are unlinked after the lock is
    /// released. Returns how many segments went. File I/O: off the async threads.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let (result, deleted, delay_ms) = {
            let mut log = self.log();
            let result = log.apply_retention(now_ms);
            (result, log.take_deleted(), log.config().file_delete_delay_ms)
        };
        remove_deleted(deleted, delay_ms)?;
        result
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high
    /// watermark). Returns the new log start offset. File I/O: off the async threads.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let (result, deleted, delay_ms) = {
            let mut log = self.log();
            let offset = if offset == -1 { log.high_watermark() } else { offset };
            let result = log.delete_records_before(offset);
            (result, log.take_deleted(), log.config().file_delete_delay_ms)
        };
        remove_deleted(deleted, delay_ms)?;
        result
    }

    /// Plans a read (see `Log::plan_read`). File I/O: off the async threads.
    pub fn plan_read(&self, offset: i64, max_offset: i64) -> Result<Option<ReadPlan>, LogError> {
        self.log().plan_read(offset, max_offset)
    }

    /// Waits until the high watermark reaches `offset` (what was appended
    /// below it is on every in-sync replica); false if `timeout` passed first.
    pub async fn wait_for_high_watermark(&self, offset: i64, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let waiter = Arc::new(Notify::new());
        loop {
            // Registered before checking, so that a move in between still wakes us.
            self.register_waiter(&waiter);
            if self.log().high_watermark() >= offset {
                return true;
            }
            tokio::select! {
                _ = waiter.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return self.log().high_watermark() >= offset,
            }
        }
    }

    /// Asks to be woken by the next append. Dead registrations are pruned here
    /// so that an idle partition polled by many fetches does not accumulate them;
    /// the same pass sees whether this waiter is already listed (a long poll
    /// woken by another partition registers again everywhere).
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let mut listed = false;
        waiters.retain(|w| {
            listed |= std::ptr::eq(w.as_ptr(), Arc::as_ptr(waiter));
            w.strong_count() > 0
        });
        if !listed {
            waiters.push(Arc::downgrade(waiter));
        }
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

/// Deleted segments' files: unlinked now with a delay of 0 (the caller is off
/// the async threads), else `delay_ms` later in the background, as Kafka does.
fn remove_deleted(deleted: Vec<DeletedSegment>, delay_ms: i64) -> io::Result<()> {
    if delay_ms <= 0 {
        return deleted.into_iter().try_for_each(|d| d.remove());
    }
    for d in deleted {
        remove_after(delay_ms, Removal::Segment(d));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topic::LogConfig;
    use crate::storage::batch::tests::encode_batch;
    use crate::storage::segment::file_name;
    use kafka_protocol::records::Compression;
    use std::time::Duration;

    fn partition(dir: &std::path::Path, segment_bytes: u64) -> Arc<Partition> {
        let config = LogConfig {
            segment_bytes,
            flush_messages: 1,
            ..LogConfig::default()
        };
        let log = Log::create(dir, config, now_ms()).unwrap();
        Arc::new(Partition::new("t", 0, log, Arc::new(Notify::new())))
    }

    fn batch() -> Vec<u8> {
        encode_batch(2, now_ms(), Compression::None).to_vec()
    }

    #[tokio::test]
    async fn a_request_appends_in_one_hop_and_wakes_fetches() {
        appends_in_one_hop_and_wakes_fetches().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_appends_in_place_on_a_multi_threaded_runtime() {
        appends_in_one_hop_and_wakes_fetches().await;
    }

    async fn appends_in_one_hop_and_wakes_fetches() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (pa, pb) = (partition(a.path(), 1 << 20), partition(b.path(), 1 << 20));
        let waiter = Arc::new(Notify::new());
        pb.register_waiter(&waiter);
        let pending = || PendingBatch::new(Bytes::from(batch())).unwrap();
        let appends = vec![
            (pa.clone(), pending()),
            (pb.clone(), pending()),
            (pa.clone(), pending()),
        ];
        let offsets: Vec<i64> = Partition::append_batches(appends)
            .await
            .into_iter()
            .map(|r| r.unwrap().base_offset)
            .collect();
        assert_eq!(offsets, vec![0, 0, 2]);
        assert_eq!((pa.offsets().high_watermark, pb.offsets().high_watermark), (4, 2));
        tokio::time::timeout(Duration::from_secs(5), waiter.notified())
            .await
            .expect("woken");
        // flush.messages=1: flushed before answering, nothing left due.
        assert!(!pa.log().flush_due(i64::MAX));
        // The coordinators' await: the same path, one batch.
        assert_eq!(pb.append(batch()).await.unwrap().base_offset, 2);
    }

    #[tokio::test]
    async fn a_roll_is_flushed_in_the_background_then_the_recovery_point_moves() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), 200);
        for _ in 0..3 {
            p.append(batch()).await.unwrap();
        }
        let sealed_below = p.log().segment_base_offsets()[1];
        assert!(sealed_below > 0, "rolled");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while p.log().recovery_point() < sealed_below {
            assert!(tokio::time::Instant::now() < deadline, "recovery point never moved");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(dir.path().join(file_name(sealed_below, ".snapshot")).exists());
    }

    /// Descriptors this process holds on files of `dir`.
    fn descriptors_in(dir: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    #[test]
    fn a_new_partition_is_a_directory_two_files_and_one_descriptor() {
        let root = tempfile::tempdir().unwrap();
        let logs = crate::storage::LogManager::open(&[root.path().to_path_buf()]).unwrap();
        let config = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let (p, _) = logs.open_partition("t", 0, uuid::Uuid::new_v4(), config).unwrap();
        let dir = root.path().join("t-0");
        assert_eq!(descriptors_in(&dir), 1, "the empty .log only");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![file_name(0, ".log"), "partition.metadata".to_string()]);
        // Index entries open the active segment's indexes; a roll closes the sealed one's.
        for _ in 0..40 {
            p.append_now(&mut batch()).unwrap();
        }
        let segments = p.log().segment_count();
        assert!(segments > 1);
        assert!(descriptors_in(&dir) <= segments + 2);
    }

    #[test]
    fn a_waiter_registered_again_is_listed_once_and_dead_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), 1 << 20);
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        p.register_waiter(&a);
        p.register_waiter(&b);
        p.register_waiter(&a);
        assert_eq!(p.waiters.lock().unwrap().len(), 2);
        drop(b);
        p.register_waiter(&a);
        assert_eq!(p.waiters.lock().unwrap().len(), 1);
    }
}
