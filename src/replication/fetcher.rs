//! Followers' fetching (Kafka's ReplicaFetcherManager and
//! ReplicaFetcherThread): for each leader, `num.replica.fetchers` loops that
//! send Fetch with this replica's id and broker epoch for every partition
//! followed from it, store what comes back as it is (`append_as_follower`),
//! take the leader's high watermark, and truncate where the leader says the
//! histories diverge (KIP-320's DivergingEpoch, so no separate
//! OffsetForLeaderEpoch round trip).

use super::broker_client::BrokerConnection;
use super::throttle::ReplicationQuotas;
use crate::config::replication::ReplicationConfig;
use crate::storage::{blocking, now_ms, LogError, Partition};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// The Fetch version followers send (topic ids, ReplicaState).
const FETCH_VERSION: i16 = 17;

/// A partition followed from its leader.
#[derive(Clone)]
pub struct Followed {
    pub topic_id: Uuid,
    pub partition: Arc<Partition>,
    /// The leader epoch this broker's metadata gives (sent as the current
    /// leader epoch: the leader refuses a fetch from another epoch).
    pub leader_epoch: i32,
    /// No fetch before this time (after an error).
    backoff_until_ms: i64,
    /// The leader's high watermark in its last answer (-1: none yet),
    /// shared by the clones a fetch takes: a replica short of it is out of
    /// sync, which is when a replication throttle applies.
    leader_high_watermark: Arc<AtomicI64>,
}

impl Followed {
    pub fn new(topic_id: Uuid, partition: Arc<Partition>, leader_epoch: i32) -> Followed {
        Followed {
            topic_id,
            partition,
            leader_epoch,
            backoff_until_ms: 0,
            leader_high_watermark: Arc::new(AtomicI64::new(-1)),
        }
    }
}

pub type Key = (Uuid, i32);

/// Where a fetcher fetches from, and which of its loops.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FetcherId {
    leader: i32,
    address: String,
    slot: usize,
}

struct Fetcher {
    partitions: Arc<Mutex<HashMap<Key, Followed>>>,
    changed: Arc<Notify>,
    stop: CancellationToken,
}

pub struct FetcherManager {
    node_id: i32,
    quotas: Arc<ReplicationQuotas>,
    config: ReplicationConfig,
    /// This broker's epoch (its registration's), sent with every fetch.
    broker_epoch: Arc<AtomicI64>,
    fetchers: Mutex<HashMap<FetcherId, Fetcher>>,
    /// Each followed partition's leader, leader address and leader epoch.
    following: Mutex<HashMap<Key, (i32, String, i32)>>,
    shutdown: CancellationToken,
}

impl FetcherManager {
    pub fn new(node_id: i32, config: ReplicationConfig, quotas: Arc<ReplicationQuotas>) -> FetcherManager {
        FetcherManager {
            quotas,
            node_id,
            config,
            broker_epoch: Arc::new(AtomicI64::new(-1)),
            fetchers: Mutex::new(HashMap::new()),
            following: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Relaxed);
    }

    fn fetchers(&self) -> std::sync::MutexGuard<'_, HashMap<FetcherId, Fetcher>> {
        self.fetchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The leader and leader epoch a partition is followed in, if it is.
    pub fn following(&self, topic_id: Uuid, index: i32) -> Option<(i32, String, i32)> {
        self.following
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic_id, index))
            .cloned()
    }

    /// Stops following every partition not in `keep`.
    pub fn retain(&self, keep: &std::collections::HashSet<Key>) {
        let gone: Vec<Key> = {
            let following = self.following.lock().unwrap_or_else(|e| e.into_inner());
            following.keys().filter(|k| !keep.contains(k)).copied().collect()
        };
        for (topic_id, index) in gone {
            self.unfollow(topic_id, index);
        }
    }

    /// Follows a partition from `leader` at `address` (and from no one else).
    pub fn follow(&self, leader: i32, address: String, followed: Followed) {
        let key = (followed.topic_id, followed.partition.index());
        let slot = slot_of(&key, self.config.num_replica_fetchers);
        let id = FetcherId { leader, address, slot };
        self.following
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (leader, id.address.clone(), followed.leader_epoch));
        let mut fetchers = self.fetchers();
        remove_from(&mut fetchers, key, Some(&id));
        let fetcher = fetchers.entry(id.clone()).or_insert_with(|| self.start(id.clone()));
        fetcher
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, followed);
        fetcher.changed.notify_one();
    }

    /// Stops following a partition (it is led here now, or by no one, or
    /// it is not a replica here any more).
    pub fn unfollow(&self, topic_id: Uuid, index: i32) {
        let was = self
            .following
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(topic_id, index));
        if was.is_some() {
            remove_from(&mut self.fetchers(), (topic_id, index), None);
        }
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        self.fetchers().clear();
        self.following.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn start(&self, id: FetcherId) -> Fetcher {
        let fetcher = Fetcher {
            partitions: Arc::new(Mutex::new(HashMap::new())),
            changed: Arc::new(Notify::new()),
            stop: self.shutdown.child_token(),
        };
        let run = FetchLoop {
            id,
            node_id: self.node_id,
            config: self.config.clone(),
            quotas: self.quotas.clone(),
            broker_epoch: self.broker_epoch.clone(),
            partitions: fetcher.partitions.clone(),
            changed: fetcher.changed.clone(),
            stop: fetcher.stop.clone(),
        };
        tokio::spawn(run.run());
        fetcher
    }
}

/// Removes a partition from every fetcher but `keep`; fetchers left with
/// nothing stop.
fn remove_from(fetchers: &mut HashMap<FetcherId, Fetcher>, key: Key, keep: Option<&FetcherId>) {
    fetchers.retain(|id, f| {
        if Some(id) == keep {
            return true;
        }
        let mut partitions = f.partitions.lock().unwrap_or_else(|e| e.into_inner());
        partitions.remove(&key);
        if partitions.is_empty() {
            f.stop.cancel();
            return false;
        }
        true
    });
}

/// Kafka spreads partitions over the fetchers of a leader by hash.
fn slot_of(key: &Key, fetchers: usize) -> usize {
    let h = key.0.as_u128() as u64 ^ (key.0.as_u128() >> 64) as u64 ^ key.1 as u64;
    (h % fetchers.max(1) as u64) as usize
}

struct FetchLoop {
    id: FetcherId,
    node_id: i32,
    config: ReplicationConfig,
    quotas: Arc<ReplicationQuotas>,
    broker_epoch: Arc<AtomicI64>,
    partitions: Arc<Mutex<HashMap<Key, Followed>>>,
    changed: Arc<Notify>,
    stop: CancellationToken,
}

/// What a fetch asked for one partition, to act on its answer.
pub(super) struct Asked {
    pub(super) followed: Followed,
    pub(super) fetch_offset: i64,
    /// Under the follower's replication throttle: its bytes count against it.
    pub(super) throttled: bool,
}

impl FetchLoop {
    async fn run(self) {
        debug!(leader = self.id.leader, address = %self.id.address, slot = self.id.slot, "replica fetcher started");
        let mut connection: Option<BrokerConnection> = None;
        let backoff = Duration::from_millis(self.config.fetch_backoff_ms.max(10));
        let mut failures = 0u32;
        while !self.stop.is_cancelled() {
            let asked = self.due_partitions();
            if asked.is_empty() {
                tokio::select! {
                    _ = self.stop.cancelled() => break,
                    _ = self.changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
            if connection.is_none() {
                let client_id = format!("broker-{}-fetcher-{}", self.node_id, self.id.slot);
                let connect = BrokerConnection::connect(
                    &self.id.address,
                    &client_id,
                    Duration::from_millis(self.config.socket_timeout_ms.max(1)),
                );
                match tokio::select! { c = connect => c, _ = self.stop.cancelled() => break } {
                    Ok(c) => connection = Some(c),
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(50) {
                            info!(leader = self.id.leader, address = %self.id.address, error = %e,
                                "cannot reach the leader to fetch from it; retrying");
                        }
                        self.pause(backoff).await;
                        continue;
                    }
                }
            }
            let Some(conn) = connection.as_mut() else { continue };
            let request = self.request(&asked);
            let timeout = Duration::from_millis(self.config.socket_timeout_ms + self.config.fetch_wait_max_ms as u64);
            let sent = tokio::select! {
                r = conn.send(&request, FETCH_VERSION, timeout) => r,
                _ = self.stop.cancelled() => break,
            };
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    debug!(leader = self.id.leader, error = %e, "replica fetch failed");
                    connection = None;
                    failures += 1;
                    self.pause(backoff).await;
                    continue;
                }
            };
            failures = 0;
            if response.error_code != 0 {
                debug!(
                    leader = self.id.leader,
                    code = response.error_code,
                    "replica fetch refused"
                );
                self.pause(backoff).await;
                continue;
            }
            let mut answers = Vec::new();
            for topic in response.responses {
                for p in topic.partitions {
                    answers.push(((topic.topic_id, p.partition_index), p));
                }
            }
            let mut by_key: HashMap<Key, Asked> = asked
                .into_iter()
                .map(|a| ((a.followed.topic_id, a.followed.partition.index()), a))
                .collect();
            let work: Vec<(Asked, PartitionData)> = answers
                .into_iter()
                .filter_map(|(key, data)| by_key.remove(&key).map(|a| (a, data)))
                .collect();
            let throttled_bytes: usize = work
                .iter()
                .filter(|(a, _)| a.throttled)
                .map(|(_, d)| d.records.as_ref().map_or(0, |r| r.len()))
                .sum();
            self.quotas.follower.record(throttled_bytes as u64);
            let failed = match blocking(move || {
                work.into_iter()
                    .filter_map(|(a, d)| handle_answer(a, d))
                    .collect::<Vec<Key>>()
            })
            .await
            {
                Ok(failed) => failed,
                Err(e) => {
                    warn!(error = %e, "replica fetch answers not stored");
                    Vec::new()
                }
            };
            if !failed.is_empty() {
                let until = now_ms() + backoff.as_millis() as i64;
                let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
                for key in failed {
                    if let Some(p) = partitions.get_mut(&key) {
                        p.backoff_until_ms = until;
                    }
                }
            }
        }
        debug!(leader = self.id.leader, slot = self.id.slot, "replica fetcher stopped");
    }

    async fn pause(&self, backoff: Duration) {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(backoff) => {}
        }
    }

    /// The partitions to fetch now: not backing off, and not held back by
    /// the follower's replication throttle (Kafka's shouldFollowerThrottle).
    fn due_partitions(&self) -> Vec<Asked> {
        let now = now_ms();
        let over_quota = self.quotas.follower.is_limited() && self.quotas.follower.is_exceeded();
        let partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        partitions
            .values()
            .filter(|p| p.backoff_until_ms <= now)
            .filter_map(|p| {
                let fetch_offset = p.partition.log().log_end_offset();
                let leader_hw = p.leader_high_watermark.load(Ordering::Relaxed);
                let in_sync = leader_hw >= 0 && fetch_offset >= leader_hw;
                let throttled = !in_sync && self.quotas.follower_throttles(p.topic_id, p.partition.index());
                if throttled && over_quota {
                    return None;
                }
                Some(Asked {
                    followed: p.clone(),
                    fetch_offset,
                    throttled,
                })
            })
            .collect()
    }

    fn request(&self, asked: &[Asked]) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for a in asked {
            let (last_epoch, log_start) = {
                let log = a.followed.partition.log();
                (log.epochs().latest().map_or(-1, |e| e.epoch), log.log_start_offset())
            };
            let partition = FetchPartition::default()
                .with_partition(a.followed.partition.index())
                .with_current_leader_epoch(a.followed.leader_epoch)
                .with_fetch_offset(a.fetch_offset)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(self.config.fetch_max_bytes);
            match topics.iter_mut().find(|t| t.topic_id == a.followed.topic_id) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic_id(a.followed.topic_id)
                        .with_partitions(vec![partition]),
                ),
            }
        }
        FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(self.node_id))
                    .with_replica_epoch(self.broker_epoch.load(Ordering::Relaxed)),
            )
            .with_max_wait_ms(self.config.fetch_wait_max_ms)
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }
}

/// Acts on one partition's answer (file I/O: off the async threads).
/// Returns the partition's key when it should back off.
pub(super) fn handle_answer(asked: Asked, data: PartitionData) -> Option<Key> {
    let partition = &asked.followed.partition;
    let key = (asked.followed.topic_id, partition.index());
    if data.error_code == 0 && data.high_watermark >= 0 {
        asked
            .followed
            .leader_high_watermark
            .store(data.high_watermark, Ordering::Relaxed);
    }
    let result = match ResponseError::try_from_code(data.error_code) {
        None if data.diverging_epoch.epoch >= 0 => {
            truncate_diverged(partition, data.diverging_epoch.epoch, data.diverging_epoch.end_offset)
        }
        None => {
            let records = data.records.unwrap_or_default();
            if records.is_empty() {
                partition.set_high_watermark(data.high_watermark);
                Ok(())
            } else {
                partition.append_as_follower(&records, data.high_watermark).map(|_| ())
            }
        }
        Some(ResponseError::OffsetOutOfRange) => out_of_range(partition, asked.fetch_offset, &data),
        Some(e) => {
            debug!(topic = partition.topic(), partition = partition.index(), error = ?e,
                "the leader refused a replica fetch; waiting for the metadata");
            return Some(key);
        }
    };
    match result {
        Ok(()) => None,
        Err(e) => {
            warn!(topic = partition.topic(), partition = partition.index(), error = %e, "replica fetch not stored");
            Some(key)
        }
    }
}

/// The leader's history diverges from ours after `end_offset` of `epoch`:
/// truncate to where both agree (KIP-101, KIP-279); the next fetch checks
/// again from there.
fn truncate_diverged(partition: &Partition, epoch: i32, end_offset: i64) -> Result<(), LogError> {
    let deleted = {
        let mut log = partition.log();
        let (_, ours) = log.end_offset_for_epoch(epoch);
        let to = if ours < 0 { end_offset } else { ours.min(end_offset) };
        let before = log.log_end_offset();
        let after = log.truncate_to(to)?;
        info!(
            topic = partition.topic(),
            partition = partition.index(),
            epoch,
            from = before,
            to = after,
            "truncated a diverged log to the leader's history"
        );
        log.take_deleted()
    };
    deleted.into_iter().try_for_each(|d| d.remove())?;
    Ok(())
}

/// The fetch offset is outside the leader's log: behind its start (the
/// leader deleted what we lack: start over from its log start), or past
/// its end (an unclean election: truncate to its high watermark).
fn out_of_range(partition: &Partition, fetch_offset: i64, data: &PartitionData) -> Result<(), LogError> {
    let deleted = {
        let mut log = partition.log();
        if data.log_start_offset > fetch_offset {
            log.truncate_fully_and_start_at(data.log_start_offset, now_ms())?;
            info!(
                topic = partition.topic(),
                partition = partition.index(),
                offset = data.log_start_offset,
                "the leader no longer has our log end: started over at its log start"
            );
        } else if data.high_watermark >= 0 && data.high_watermark < fetch_offset {
            log.truncate_to(data.high_watermark)?;
            info!(
                topic = partition.topic(),
                partition = partition.index(),
                to = data.high_watermark,
                "our log ends past the leader's: truncated to its high watermark"
            );
        }
        log.take_deleted()
    };
    deleted.into_iter().try_for_each(|d| d.remove())?;
    Ok(())
}
