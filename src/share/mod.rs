//! Share groups' records (KIP-932, queues): for each share group and
//! partition, the share-partition that hands records out to members under
//! acquisition locks, counts deliveries and takes acknowledgements; and the
//! members' share sessions. Kafka's SharePartitionManager. The group side
//! (membership, assignment) is `crate::group::share_group`.

pub mod durable;
pub mod partition;
pub mod persister;
pub mod sessions;
pub mod state;

use partition::{ShareLimits, SharePartition};
use sessions::ShareSessions;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

impl ShareKey {
    pub fn new(group: &str, topic_id: Uuid, partition: i32) -> ShareKey {
        ShareKey {
            group: group.to_string(),
            topic_id,
            partition,
        }
    }
}

/// A group's settings for its records: its group configs, else the broker's.
#[derive(Debug, Clone)]
pub struct ShareSettings {
    pub limits: ShareLimits,
    /// share.auto.offset.reset: "earliest", "latest" or "by_duration:<ISO-8601>".
    pub auto_offset_reset: String,
    /// share.isolation.level: read_committed reads to the last stable offset.
    pub read_committed: bool,
}

impl ShareSettings {
    pub fn resolve(broker: &BTreeMap<String, String>, group: &BTreeMap<String, String>) -> ShareSettings {
        let int = |group_key: &str, broker_key: &str, default: i64| {
            group
                .get(group_key)
                .or_else(|| broker.get(broker_key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        ShareSettings {
            limits: ShareLimits {
                delivery_count_limit: int("share.delivery.count.limit", "group.share.delivery.count.limit", 5)
                    .clamp(1, i16::MAX as i64) as i16,
                record_lock_ms: int(
                    "share.record.lock.duration.ms",
                    "group.share.record.lock.duration.ms",
                    30_000,
                ),
                max_in_flight: int(
                    "share.partition.max.record.locks",
                    "group.share.partition.max.record.locks",
                    2000,
                ),
            },
            auto_offset_reset: group
                .get("share.auto.offset.reset")
                .cloned()
                .unwrap_or_else(|| "latest".to_string()),
            read_committed: group.get("share.isolation.level").map(String::as_str) == Some("read_committed"),
        }
    }
}

#[derive(Default)]
pub struct ShareManager {
    partitions: Mutex<HashMap<ShareKey, SharePartition>>,
    pub sessions: Mutex<ShareSessions>,
    /// Every share-partition a group has been given (Kafka's initialized
    /// partitions): described even while its state is unwritten.
    assigned: Mutex<std::collections::BTreeSet<ShareKey>>,
    /// Rung when records become available again (released, lock expired).
    pub released: Notify,
    /// One at a time per share-partition: loading its state, writing it.
    key_locks: Mutex<HashMap<ShareKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl ShareManager {
    pub fn new() -> ShareManager {
        ShareManager::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShareKey, SharePartition>> {
        // A panic elsewhere must not take share groups down with it.
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lock_sessions(&self) -> std::sync::MutexGuard<'_, ShareSessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock under which a share-partition's state is loaded or written.
    pub fn key_lock(&self, key: &ShareKey) -> Arc<tokio::sync::Mutex<()>> {
        self.key_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Takes a share-partition loaded from its state (unless one is there).
    pub fn install(&self, key: ShareKey, partition: SharePartition) {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        self.lock().entry(key).or_insert(partition);
    }

    /// Forgets a share-partition's state here (it is reloaded when next used).
    pub fn unload(&self, key: &ShareKey) {
        self.lock().remove(key);
    }

    /// Forgets the share-partitions, of every group, of partitions this
    /// broker no longer leads: their records are handed out by the new
    /// leader, from the state in `__share_group_state`, and read again from
    /// there should leadership come back (Kafka's SharePartitionManager
    /// drops them on becoming a follower). Unwritten acknowledgements are
    /// lost with them: those records are delivered again.
    pub fn unload_partitions(&self, moved: &std::collections::BTreeSet<(Uuid, i32)>) {
        if moved.is_empty() {
            return;
        }
        let mut all = self.lock();
        let before = all.len();
        all.retain(|key, _| !moved.contains(&(key.topic_id, key.partition)));
        if all.len() < before {
            tracing::info!(
                unloaded = before - all.len(),
                "share-partitions led elsewhere now; state unloaded"
            );
        }
    }

    /// Forgets a share-partition no session reads any more whose state is
    /// written: it is loaded again when next read.
    pub fn unload_if_unread(&self, key: &ShareKey) {
        let sessions = self.lock_sessions();
        if sessions.reads(&key.group, (key.topic_id, key.partition)) {
            return;
        }
        let mut all = self.lock();
        if all.get_mut(key).is_some_and(|p| !p.is_dirty()) {
            all.remove(key);
        }
    }

    pub fn is_initialized(&self, key: &ShareKey) -> bool {
        self.lock().contains_key(key)
    }

    /// Runs `f` on a started share-partition.
    pub fn with<R>(&self, key: &ShareKey, f: impl FnOnce(&mut SharePartition) -> R) -> Option<R> {
        self.lock().get_mut(key).map(f)
    }

    /// Records `member` holds in `partitions` go back (its session closed).
    /// A share-partition no session reads any more and whose state was never
    /// written is forgotten, so that it starts afresh (at latest, by default)
    /// when next read, as in Kafka.
    /// The share-partitions touched (their state to be written).
    pub fn release_member(
        &self,
        group: &str,
        member: &str,
        partitions: &[(Uuid, i32)],
        limits: &ShareLimits,
    ) -> Vec<ShareKey> {
        let mut changed = false;
        let mut touched = Vec::new();
        {
            let sessions = self.lock_sessions();
            let mut all = self.lock();
            for (topic_id, partition) in partitions {
                let key = ShareKey {
                    group: group.to_string(),
                    topic_id: *topic_id,
                    partition: *partition,
                };
                if let Some(p) = all.get_mut(&key) {
                    changed |= p.release_member(member, limits);
                    if !p.is_acknowledged() && !sessions.reads(group, (*topic_id, *partition)) {
                        all.remove(&key);
                    } else {
                        touched.push(key);
                    }
                }
            }
        }
        if changed {
            self.released.notify_waiters();
        }
        touched
    }

    /// Records `member` holds anywhere go back (it left its group); the
    /// share-partitions whose records changed.
    pub fn release_member_everywhere(&self, group: &str, member: &str, limits: &ShareLimits) -> Vec<ShareKey> {
        let mut touched = Vec::new();
        for (key, p) in self.lock().iter_mut() {
            if key.group == group && p.release_member(member, limits) {
                touched.push(key.clone());
            }
        }
        if !touched.is_empty() {
            self.released.notify_waiters();
        }
        touched
    }

    /// A share-partition's state was set anew at the share coordinator
    /// (AlterShareGroupOffsets): what is loaded here is stale.
    pub fn reset(&self, key: ShareKey) {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        self.lock().remove(&key);
        self.released.notify_waiters();
    }

    /// A share-partition this broker gave a group (as its group coordinator).
    pub fn note_assigned(&self, key: ShareKey) {
        self.assigned.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    }

    /// The share-partitions a group has been given here.
    pub fn assigned_of(&self, group: &str) -> Vec<ShareKey> {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|k| k.group == group)
            .cloned()
            .collect()
    }

    /// Forgets share-partitions (DeleteShareGroupOffsets, a deleted group);
    /// how many the group had been given or had state for.
    pub fn forget(&self, group: &str, which: impl Fn(&ShareKey) -> bool) -> usize {
        let gone = |k: &ShareKey| k.group == group && which(k);
        let mut forgotten: std::collections::BTreeSet<ShareKey> = std::collections::BTreeSet::new();
        self.assigned.lock().unwrap_or_else(|e| e.into_inner()).retain(|k| {
            let drop = gone(k);
            if drop {
                forgotten.insert(k.clone());
            }
            !drop
        });
        self.lock().retain(|k, _| {
            let drop = gone(k);
            if drop {
                forgotten.insert(k.clone());
            }
            !drop
        });
        self.key_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !gone(k));
        forgotten.len()
    }
}
