//! Files of deleted partitions and segments are removed `file.delete.delay.ms`
//! after their deletion, as Kafka removes them: they are renamed aside at once
//! (`-delete`, `.deleted`: out of the log, and start-up removes them), and a
//! background thread unlinks them later, so that a large deletion never lands
//! on the disk in the middle of the traffic that caused it, and readers still
//! holding a file finish with it.

use super::segment::DeletedSegment;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::warn;

/// What is removed.
pub enum Removal {
    /// A deleted partition's directory, renamed aside.
    Dir(PathBuf),
    /// A deleted segment's files, renamed aside.
    Segment(DeletedSegment),
}

impl Removal {
    fn run(self) {
        let done = match self {
            Removal::Dir(path) => match std::fs::remove_dir_all(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Removal::Segment(segment) => segment.remove(),
        };
        if let Err(e) = done {
            warn!(error = %e, "could not remove deleted log files");
        }
    }
}

struct Due {
    at: Instant,
    seq: u64,
    removal: Removal,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Queue {
    due: Mutex<(BinaryHeap<Due>, u64)>,
    changed: Condvar,
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<&'static Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let q: &'static Queue = Box::leak(Box::default());
        let spawned = std::thread::Builder::new()
            .name("sluice-delete-logs".into())
            .spawn(move || remove_when_due(q));
        if let Err(e) = spawned {
            warn!(error = %e, "deleted log files are removed at once: no thread for later");
        }
        q
    })
}

fn remove_when_due(q: &'static Queue) {
    let mut due = q.due.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        match due.0.peek().map(|d| d.at) {
            Some(at) if at <= now => {
                let Some(next) = due.0.pop() else { continue };
                drop(due);
                next.removal.run();
                due = q.due.lock().unwrap_or_else(|e| e.into_inner());
            }
            Some(at) => {
                due = q
                    .changed
                    .wait_timeout(due, at - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            None => due = q.changed.wait(due).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Removes `removal` after `delay_ms` (at once, on this thread, when 0).
pub fn remove_after(delay_ms: i64, removal: Removal) {
    if delay_ms <= 0 {
        removal.run();
        return;
    }
    let q = queue();
    let mut due = q.due.lock().unwrap_or_else(|e| e.into_inner());
    due.1 += 1;
    let seq = due.1;
    due.0.push(Due {
        at: Instant::now() + Duration::from_millis(delay_ms as u64),
        seq,
        removal,
    });
    drop(due);
    q.changed.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_removed_after_its_delay_and_not_before() {
        let root = tempfile::tempdir().unwrap();
        let later = root.path().join("t-0.abc-delete");
        let sooner = root.path().join("t-1.def-delete");
        let now = root.path().join("t-2.ghi-delete");
        for d in [&later, &sooner, &now] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("00000000000000000000.log"), b"x").unwrap();
        }
        remove_after(1_500, Removal::Dir(later.clone()));
        remove_after(300, Removal::Dir(sooner.clone()));
        remove_after(0, Removal::Dir(now.clone()));
        assert!(!now.exists(), "a delay of 0 removes at once");
        assert!(later.exists() && sooner.exists());
        let deadline = Instant::now() + Duration::from_secs(10);
        while sooner.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!sooner.exists(), "not removed after its delay");
        assert!(later.exists(), "removed before its delay");
        while later.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!later.exists(), "not removed after its delay");
    }
}
