//! The group coordinator: consumer groups (Kafka's classic protocol) and their
//! committed offsets, kept durable in `__consumer_offsets`.
//!
//! `coordinator` holds the state machine (synchronous, clock passed in);
//! this module wraps it for the request handlers: one lock, delayed answers
//! awaited outside it, a timer task for session and rebalance timeouts.

pub mod classic_group;
pub mod coordinator;
pub mod records;
pub mod store;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::state_topic::TxnProducer;
use crate::storage::now_ms;
use coordinator::{GroupConfig, Groups, Reply};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use store::{OffsetsTopic, TopicWriter};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use classic_group::{CommittedOffset, GroupState};
pub use coordinator::{GroupDescription, JoinRequest, LeavingMember, ListedGroup, OffsetCommitRequest, SyncRequest};

struct State {
    groups: Groups,
    topic: Option<OffsetsTopic>,
}

pub struct GroupCoordinator {
    state: Mutex<State>,
    /// Rung when deadlines may have moved, so the timer task looks again.
    timers_changed: Notify,
    offsets_partitions: i32,
    offsets_segment_bytes: u64,
    retention_check_interval: Duration,
}

impl GroupCoordinator {
    /// Loads every group and committed offset from `__consumer_offsets`.
    pub fn open(cluster: &Cluster, config: &BrokerConfig) -> GroupCoordinator {
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms as i64,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        };
        let mut groups = Groups::new(group_config);
        let topic = OffsetsTopic::existing(cluster, config.offsets_topic_segment_bytes);
        if let Some(t) = &topic {
            let loaded = t.load();
            let count = loaded.records.len();
            groups.load(loaded.records, now_ms());
            groups.load_pending(loaded.pending);
            info!(records = count, groups = groups.list().len(), "loaded consumer groups");
        }
        GroupCoordinator {
            state: Mutex::new(State { groups, topic }),
            timers_changed: Notify::new(),
            offsets_partitions: config.offsets_topic_num_partitions,
            offsets_segment_bytes: config.offsets_topic_segment_bytes,
            retention_check_interval: Duration::from_millis(config.offsets_retention_check_interval_ms),
        }
    }

    /// Runs `f` on the state with a writer for `__consumer_offsets`, then
    /// compacts what it wrote to if needed, and wakes the timer task.
    fn with_state<R>(&self, cluster: &Cluster, f: impl FnOnce(&mut Groups, &mut TopicWriter<'_>) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { groups, topic } = &mut *state;
        let mut writer = TopicWriter {
            topic,
            cluster,
            partitions: self.offsets_partitions,
            segment_bytes: self.offsets_segment_bytes,
            touched: HashSet::new(),
        };
        let result = f(groups, &mut writer);
        let touched = std::mem::take(&mut writer.touched);
        if !touched.is_empty() {
            if let Some(t) = topic.as_mut() {
                t.maybe_rewrite(&touched, || groups.live_records());
            }
        }
        drop(state);
        self.timers_changed.notify_one();
        result
    }

    fn read<R>(&self, f: impl FnOnce(&Groups) -> R) -> R {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&state.groups)
    }

    pub async fn join(
        &self,
        cluster: &Cluster,
        request: JoinRequest,
        shutdown: &CancellationToken,
    ) -> kafka_protocol::messages::JoinGroupResponse {
        let member_id = request.member_id.clone();
        let reply = self.with_state(cluster, |g, w| g.join(w, request, now_ms()));
        settle(reply, shutdown, || {
            kafka_protocol::messages::JoinGroupResponse::default()
                .with_error_code(kafka_protocol::ResponseError::CoordinatorNotAvailable.code())
                .with_generation_id(-1)
                .with_member_id(kafka_protocol::protocol::StrBytes::from_string(member_id.clone()))
                .with_protocol_name(None)
        })
        .await
    }

    pub async fn sync(
        &self,
        cluster: &Cluster,
        request: SyncRequest,
        shutdown: &CancellationToken,
    ) -> kafka_protocol::messages::SyncGroupResponse {
        let reply = self.with_state(cluster, |g, w| g.sync(w, request, now_ms()));
        settle(reply, shutdown, || {
            kafka_protocol::messages::SyncGroupResponse::default()
                .with_error_code(kafka_protocol::ResponseError::CoordinatorNotAvailable.code())
        })
        .await
    }

    pub fn heartbeat(
        &self,
        cluster: &Cluster,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> i16 {
        self.with_state(cluster, |g, _| {
            g.heartbeat(group, generation, member, instance, now_ms())
        })
    }

    pub fn leave(&self, cluster: &Cluster, group: &str, members: &[LeavingMember]) -> (i16, Vec<i16>) {
        self.with_state(cluster, |g, w| g.leave(w, group, members, now_ms()))
    }

    pub fn commit_offsets(&self, cluster: &Cluster, request: OffsetCommitRequest) -> Vec<i16> {
        let exists =
            |topic: &str, partition: i32| cluster.topic(topic).is_some_and(|t| t.partition(partition).is_some());
        self.with_state(cluster, |g, w| g.commit_offsets(w, request, &exists, now_ms()))
    }

    pub fn fetch_offsets(&self, group: &str, wanted: Option<&[(String, Vec<i32>)]>) -> coordinator::TopicOffsets {
        self.read(|g| g.fetch_offsets(group, wanted))
    }

    /// TxnOffsetCommit: offsets that count once `producer`'s transaction commits.
    pub fn commit_txn_offsets(
        &self,
        cluster: &Cluster,
        request: OffsetCommitRequest,
        producer: TxnProducer,
    ) -> Vec<i16> {
        let exists =
            |topic: &str, partition: i32| cluster.topic(topic).is_some_and(|t| t.partition(partition).is_some());
        self.with_state(cluster, |g, w| {
            g.commit_txn_offsets(w, request, producer, &exists, now_ms())
        })
    }

    /// The transaction's marker is written: apply or drop its offsets.
    pub fn complete_txn(&self, producer_id: i64, commit: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.groups.complete_txn(producer_id, commit, now_ms());
    }

    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.read(|g| g.has_pending_txn_offset(group, topic, partition))
    }

    /// The `__consumer_offsets` partition of a group (AddOffsetsToTxn),
    /// creating the topic on first use.
    pub fn offsets_partition(&self, cluster: &Cluster, group: &str) -> Result<i32, i16> {
        self.with_state(cluster, |_, w| {
            let topic = w.topic()?;
            Ok(store::partition_for(group, topic.partition_count()) as i32)
        })
    }

    pub fn delete_offsets(&self, cluster: &Cluster, group: &str, partitions: &[(String, i32)]) -> (i16, Vec<i16>) {
        self.with_state(cluster, |g, w| g.delete_offsets(w, group, partitions))
    }

    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        self.read(|g| g.describe(group))
    }

    pub fn list(&self) -> Vec<ListedGroup> {
        self.read(|g| g.list())
    }

    pub fn delete_group(&self, cluster: &Cluster, group: &str) -> i16 {
        self.with_state(cluster, |g, w| g.delete_group(w, group))
    }

    /// Applies timeouts as they fall due, and expires old offsets, until shutdown.
    pub async fn run_timers(&self, cluster: &Cluster, shutdown: &CancellationToken) {
        let mut last_expiry = std::time::Instant::now();
        loop {
            let wait = self
                .read(|g| g.next_deadline())
                .map(|d| (d - now_ms()).clamp(0, 1000) as u64)
                .unwrap_or(1000);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.timers_changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
            let expire = last_expiry.elapsed() >= self.retention_check_interval;
            if expire {
                last_expiry = std::time::Instant::now();
            }
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let State { groups, topic } = &mut *state;
            let mut writer = TopicWriter {
                topic,
                cluster,
                partitions: self.offsets_partitions,
                segment_bytes: self.offsets_segment_bytes,
                touched: HashSet::new(),
            };
            groups.tick(&mut writer, now_ms());
            if expire {
                let n = groups.expire_offsets(&mut writer, now_ms());
                if n > 0 {
                    info!(offsets = n, "expired committed offsets");
                }
            }
        }
    }
}

/// Waits for a delayed answer; on shutdown (or if the group dropped the
/// request) answers with a retriable error instead.
async fn settle<T>(reply: Reply<T>, shutdown: &CancellationToken, fallback: impl Fn() -> T) -> T {
    match reply {
        Reply::Now(t) => t,
        Reply::Later(rx) => wait(rx, shutdown).await.unwrap_or_else(fallback),
    }
}

async fn wait<T>(rx: oneshot::Receiver<T>, shutdown: &CancellationToken) -> Option<T> {
    tokio::select! {
        r = rx => r.ok(),
        _ = shutdown.cancelled() => None,
    }
}
