//! The group coordinator: consumer groups (Kafka's classic protocol) and
//! their committed offsets, kept in `__consumer_offsets`. Each partition of
//! that topic is a `GroupShard` run by the coordinator runtime; a group lives
//! in the partition Kafka would put it in. This module routes requests to
//! shards, creates the topic on first use, waits for delayed answers outside
//! the shard, and runs the session and rebalance timers.

pub mod admin;
pub mod assignors;
pub mod classic_group;
mod classic_in_consumer;
pub mod consumer_group;
pub mod consumer_heartbeat;
mod consumer_protocol;
mod consumer_reconcile;
pub mod consumer_records;
mod consumer_target;
mod member_snapshots;
pub mod membership;
mod migration;
pub mod offsets;
pub mod rebalance;
pub mod records;
pub mod shard;
pub mod share_group;
mod streams_assignor;
mod streams_changes;
pub mod streams_group;
pub mod streams_heartbeat;
mod streams_reconcile;
mod streams_records;
mod streams_topology;
#[cfg(test)]
mod tests;

use crate::config::BrokerConfig;
use crate::coordinator::state_topic::{ensure_state_topic, new_state_topic};
use crate::coordinator::{partition_for, CoordinatorResult, CoordinatorRuntime, TxnProducer};
use crate::metadata::records::ConfigResource;
use crate::metadata::{Controller, MetadataCache};
use crate::storage::now_ms;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use shard::{GroupConfig, GroupRecord, GroupShard, Reply};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use admin::{GroupDescription, ListedGroup};
pub use classic_group::{CommittedOffset, GroupState};
pub use consumer_heartbeat::{ConsumerHeartbeat, GroupOverrides, HeartbeatAnswer, TopicView};
pub use membership::{JoinRequest, LeavingMember, SyncRequest};
pub use offsets::{OffsetCommitRequest, TopicOffsets};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub struct GroupCoordinator {
    runtime: CoordinatorRuntime<GroupShard>,
    controller: Arc<Controller>,
    metadata: Arc<MetadataCache>,
    /// Rung when deadlines may have moved, so the timer task looks again.
    timers_changed: Notify,
    offsets_partitions: i32,
    offsets_replication_factor: i16,
    offsets_segment_bytes: u64,
    retention_check_interval: Duration,
}

impl GroupCoordinator {
    pub fn new(config: &BrokerConfig, controller: Arc<Controller>, metadata: Arc<MetadataCache>) -> GroupCoordinator {
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms as i64,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            consumer_session_timeout_ms: config.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            consumer_assignors: config.group_consumer_assignors.clone(),
            consumer_max_size: config.group_consumer_max_size,
            migration_policy: config.group_consumer_migration_policy,
        };
        GroupCoordinator {
            runtime: CoordinatorRuntime::new(OFFSETS_TOPIC, move || GroupShard::new(group_config.clone())),
            controller,
            metadata,
            timers_changed: Notify::new(),
            offsets_partitions: config.offsets_topic_num_partitions,
            // A single node holds every replica there is.
            offsets_replication_factor: if config.cluster.is_cluster(config.node_id) {
                config.offsets_topic_replication_factor
            } else {
                1
            },
            offsets_segment_bytes: config.offsets_topic_segment_bytes,
            retention_check_interval: Duration::from_millis(config.offsets_retention_check_interval_ms),
        }
    }

    /// The runtime, for loading and unloading partitions as they come and go.
    pub fn runtime(&self) -> &CoordinatorRuntime<GroupShard> {
        &self.runtime
    }

    /// The partition of a group, when the topic exists.
    fn partition_of(&self, group: &str) -> Option<i32> {
        match self.runtime.partition_count() {
            0 => None,
            n => Some(partition_for(group, n) as i32),
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet (as Kafka does
    /// on first use); its shards are loaded once this returns.
    pub async fn ensure_topic(&self) -> Result<(), i16> {
        ensure_state_topic(&self.runtime, &self.controller, || {
            new_state_topic(
                OFFSETS_TOPIC,
                self.offsets_partitions,
                self.offsets_replication_factor,
                self.offsets_segment_bytes,
            )
        })
        .await
    }

    /// The `__consumer_offsets` partition of a group (FindCoordinator,
    /// AddOffsetsToTxn), creating the topic on first use.
    pub async fn offsets_partition(&self, group: &str) -> Result<i32, i16> {
        self.ensure_topic().await?;
        self.partition_of(group).ok_or(E::CoordinatorNotAvailable.code())
    }

    /// Runs a write on the group's shard, creating the topic if needed.
    async fn write<T>(
        &self,
        group: &str,
        op: impl FnOnce(&mut GroupShard) -> CoordinatorResult<T, GroupRecord>,
    ) -> Result<T, i16> {
        let index = self.offsets_partition(group).await?;
        let result = self.runtime.write(index, op).await;
        self.timers_changed.notify_one();
        result
    }

    /// Reads the group's shard; `None` when the topic does not exist.
    async fn read<T>(&self, group: &str, f: impl FnOnce(&GroupShard) -> T) -> Result<Option<T>, i16> {
        let Some(index) = self.partition_of(group) else {
            return Ok(None);
        };
        self.runtime.read(index, f).await.map(Some)
    }

    pub async fn join(&self, mut request: JoinRequest, shutdown: &CancellationToken) -> JoinGroupResponse {
        // A classic member of a consumer group names its topics; the group knows ids.
        request.topics = self.topic_view();
        let (group, member_id) = (request.group_id.clone(), request.member_id.clone());
        let fallback = |code: i16| {
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_protocol_name(None)
        };
        match self.write(&group, |g| g.join(request, now_ms())).await {
            Ok(reply) => settle(reply, shutdown, || fallback(E::CoordinatorNotAvailable.code())).await,
            Err(code) => fallback(code),
        }
    }

    pub async fn sync(&self, request: SyncRequest, shutdown: &CancellationToken) -> SyncGroupResponse {
        let group = request.group_id.clone();
        let fallback = |code: i16| SyncGroupResponse::default().with_error_code(code);
        match self.write(&group, |g| g.sync(request, now_ms())).await {
            Ok(reply) => settle(reply, shutdown, || fallback(E::CoordinatorNotAvailable.code())).await,
            Err(code) => fallback(code),
        }
    }

    pub async fn heartbeat(&self, group: &str, generation: i32, member: &str, instance: Option<&str>) -> i16 {
        let result = self
            .write(group, |g| {
                CoordinatorResult::answer(g.heartbeat(group, generation, member, instance, now_ms()))
            })
            .await;
        result.unwrap_or_else(|code| code)
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub async fn consumer_heartbeat(&self, mut request: ConsumerHeartbeat) -> HeartbeatAnswer {
        let topics = self.topic_view();
        let image = self.metadata.image();
        let configs = image.configs_of(&ConfigResource::Group(request.group_id.clone()));
        request.overrides = GroupOverrides::from_configs(configs);
        let fallback = |code: i16| HeartbeatAnswer {
            error_code: code,
            error_message: None,
            member_id: String::new(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        let group = request.group_id.clone();
        let empty_id = group.is_empty();
        let req = request.clone();
        if empty_id {
            // Validated by the shard; no partition to route an empty id to.
            return GroupShard::new(GroupConfig::default())
                .consumer_heartbeat(req, &topics, now_ms())
                .response;
        }
        match self
            .write(&group, |g| g.consumer_heartbeat(req, &topics, now_ms()))
            .await
        {
            Ok(answer) => answer,
            Err(code) => fallback(code),
        }
    }

    /// StreamsGroupHeartbeat (KIP-1071).
    pub async fn streams_heartbeat(
        &self,
        request: streams_heartbeat::StreamsHeartbeat,
    ) -> streams_heartbeat::StreamsAnswer {
        let topics = self.topic_view();
        if request.group_id.is_empty() {
            // Refused by the checks; no partition to route an empty id to.
            return GroupShard::new(GroupConfig::default())
                .streams_heartbeat(request, &topics, now_ms())
                .response;
        }
        let group = request.group_id.clone();
        match self
            .write(&group, |g| g.streams_heartbeat(request, &topics, now_ms()))
            .await
        {
            Ok(answer) => answer,
            Err(code) => streams_heartbeat::StreamsAnswer {
                error_code: code,
                ..Default::default()
            },
        }
    }

    /// StreamsGroupDescribe: the group as it is, or Kafka's error for it.
    pub async fn describe_streams_group(&self, group: &str) -> Result<streams_group::StreamsGroup, (i16, String)> {
        let describe = |g: &GroupShard| match g.group(group) {
            Some(g) => match &g.streams {
                Some(sg) => Ok((**sg).clone()),
                None => Err((
                    E::GroupIdNotFound.code(),
                    format!("Group {group} is not a streams group."),
                )),
            },
            None => Err((E::GroupIdNotFound.code(), format!("Group {group} not found."))),
        };
        match self.read(group, describe).await {
            Ok(Some(r)) => r,
            Ok(None) => Err((E::GroupIdNotFound.code(), format!("Group {group} not found."))),
            Err(code) => Err((code, String::new())),
        }
    }

    /// The topics consumer groups can subscribe to, as the metadata has them now.
    pub fn topic_view(&self) -> TopicView {
        let image = self.metadata.image();
        let mut view = TopicView::default();
        for t in image.topics.iter() {
            view.topics.insert(t.name.clone(), (t.id, t.partitions.len() as i32));
            if t.is_internal() {
                view.internal.insert(t.name.clone());
            }
        }
        view
    }

    pub async fn leave(&self, group: &str, members: &[LeavingMember]) -> (i16, Vec<i16>) {
        match self.write(group, |g| g.leave(group, members, now_ms())).await {
            Ok(answer) => answer,
            Err(code) => (code, vec![code; members.len()]),
        }
    }

    /// Whether a topic partition exists (offsets are committed only for those).
    fn partition_exists(&self) -> impl Fn(&str, i32) -> bool {
        let image = self.metadata.image();
        move |topic: &str, partition: i32| {
            image
                .topics
                .get(topic)
                .is_some_and(|t| t.partition(partition).is_some())
        }
    }

    pub async fn commit_offsets(&self, request: OffsetCommitRequest) -> Vec<i16> {
        let (group, count) = (request.group_id.clone(), request.offsets.len());
        let exists = self.partition_exists();
        self.write(&group, |g| g.commit_offsets(request, &exists, now_ms()))
            .await
            .unwrap_or_else(|code| vec![code; count])
    }

    /// TxnOffsetCommit: offsets that count once `producer`'s transaction commits.
    pub async fn commit_txn_offsets(&self, request: OffsetCommitRequest, producer: TxnProducer) -> Vec<i16> {
        let (group, count) = (request.group_id.clone(), request.offsets.len());
        let exists = self.partition_exists();
        self.write(&group, |g| g.commit_txn_offsets(request, producer, &exists, now_ms()))
            .await
            .unwrap_or_else(|code| vec![code; count])
    }

    /// Ends a transaction in one `__consumer_offsets` partition: its marker
    /// is written there and its offsets take effect (commit) or are dropped.
    pub async fn complete_transaction(&self, partition: i32, producer: TxnProducer, commit: bool) -> Result<(), i16> {
        self.runtime.write_marker(partition, producer, commit).await
    }

    pub async fn fetch_offsets(&self, group: &str, wanted: Option<&[(String, Vec<i32>)]>) -> TopicOffsets {
        self.read(group, |g| g.fetch_offsets(group, wanted))
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| GroupShard::new(GroupConfig::default()).fetch_offsets(group, wanted))
    }

    /// OffsetFetch v9+ from a member of a consumer group (KIP-848): the
    /// member must exist and give its current epoch. No member named: anyone.
    pub async fn check_offset_fetch_member(&self, group: &str, member: Option<&str>, epoch: i32) -> Result<(), i16> {
        let Some(member) = member.filter(|_| epoch >= 0) else {
            return Ok(());
        };
        let check = |g: &GroupShard| -> Result<(), i16> {
            let Some(g) = g.group(group) else {
                return Ok(());
            };
            let member_epoch = match (g.consumer.as_deref(), g.streams.as_deref()) {
                (Some(cg), _) => cg.members.get(member).map(|m| m.member_epoch),
                (None, Some(sg)) => sg.members.get(member).map(|m| m.member_epoch),
                (None, None) => return Ok(()),
            };
            match member_epoch {
                None => Err(E::UnknownMemberId.code()),
                Some(e) if e != epoch => Err(E::StaleMemberEpoch.code()),
                Some(_) => Ok(()),
            }
        };
        self.read(group, check).await.ok().flatten().unwrap_or(Ok(()))
    }

    pub async fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.read(group, |g| g.has_pending_txn_offset(group, topic, partition))
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    pub async fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> (i16, Vec<i16>) {
        match self.read(group, |_| ()).await {
            Ok(Some(())) => self
                .write(group, |g| g.delete_offsets(group, partitions))
                .await
                .unwrap_or_else(|code| (code, vec![0; partitions.len()])),
            Ok(None) => (E::GroupIdNotFound.code(), vec![0; partitions.len()]),
            Err(code) => (code, vec![0; partitions.len()]),
        }
    }

    /// ConsumerGroupDescribe: the group as it is, or Kafka's error for it.
    pub async fn describe_consumer_group(&self, group: &str) -> Result<consumer_group::ConsumerGroup, (i16, String)> {
        let not_found = || (E::GroupIdNotFound.code(), format!("Group {group} not found."));
        match self.read(group, |g| g.describe_consumer(group)).await {
            Ok(Some(r)) => r,
            Ok(None) => Err(not_found()),
            Err(code) => Err((code, String::new())),
        }
    }

    pub async fn share_heartbeat(&self, request: share_group::ShareHeartbeat) -> share_group::ShareHeartbeatAnswer {
        let topics = self.topic_view();
        if request.group_id.is_empty() {
            // Validated by the shard; no partition to route an empty id to.
            return GroupShard::new(GroupConfig::default())
                .share_heartbeat(request, &topics, now_ms())
                .response;
        }
        let group = request.group_id.clone();
        match self
            .write(&group, |g| g.share_heartbeat(request, &topics, now_ms()))
            .await
        {
            Ok(answer) => answer,
            Err(code) => share_group::ShareHeartbeatAnswer::error(code, ""),
        }
    }

    /// AlterShareGroupOffsets and DeleteShareGroupOffsets: Ok when `group`
    /// is a share group without members (`create`: made when missing).
    pub async fn share_group_at_rest(&self, group: &str, create: bool) -> Result<(), (i16, String)> {
        if !create && self.partition_of(group).is_none() {
            return Err((E::GroupIdNotFound.code(), format!("Group {group} not found.")));
        }
        self.write(group, |g| g.share_group_at_rest(group, create, now_ms()))
            .await
            .unwrap_or_else(|code| Err((code, String::new())))
    }

    pub async fn describe_share_group(&self, group: &str) -> Result<share_group::ShareGroup, (i16, String)> {
        let not_found = || (E::GroupIdNotFound.code(), format!("Group {group} not found."));
        match self.read(group, |g| g.describe_share(group)).await {
            Ok(Some(r)) => r,
            Ok(None) => Err(not_found()),
            Err(code) => Err((code, String::new())),
        }
    }

    /// A classic group, or Kafka's message for why it cannot be described.
    pub async fn describe(&self, group: &str) -> Result<GroupDescription, String> {
        match self.read(group, |g| g.describe(group)).await {
            Ok(Some(described)) => described,
            _ => Err(format!("Group {group} not found.")),
        }
    }

    /// Every group of every loaded partition, by id.
    pub async fn list(&self) -> Vec<ListedGroup> {
        let mut out = Vec::new();
        for index in self.runtime.loaded() {
            if let Ok(groups) = self.runtime.read(index, |g| g.list()).await {
                out.extend(groups);
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub async fn delete_group(&self, group: &str) -> i16 {
        if self.partition_of(group).is_none() {
            return if group.is_empty() {
                E::InvalidGroupId.code()
            } else {
                E::GroupIdNotFound.code()
            };
        }
        self.write(group, |g| g.delete_group(group))
            .await
            .unwrap_or_else(|code| code)
    }

    /// Applies timeouts as they fall due, and expires old offsets, until
    /// shutdown. `share_members_gone` is told of share group members whose
    /// session ran out (their records go back at once where they are led).
    pub async fn run_timers(&self, shutdown: &CancellationToken, share_members_gone: impl Fn(Vec<(String, String)>)) {
        let mut last_expiry = std::time::Instant::now();
        loop {
            let mut next: Option<i64> = None;
            for index in self.runtime.loaded() {
                if let Ok(Some(d)) = self.runtime.read(index, |g| g.next_deadline()).await {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
            let wait = next.map(|d| (d - now_ms()).clamp(0, 1000) as u64).unwrap_or(1000);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.timers_changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
            let expire = last_expiry.elapsed() >= self.retention_check_interval;
            if expire {
                last_expiry = std::time::Instant::now();
            }
            let now = now_ms();
            for index in self.runtime.loaded() {
                let due = self
                    .runtime
                    .read(index, |g| g.next_deadline().is_some_and(|d| d <= now))
                    .await;
                if due == Ok(true) {
                    if let Ok(gone) = self.runtime.write(index, |g| g.tick(now)).await {
                        if !gone.is_empty() {
                            share_members_gone(gone);
                        }
                    }
                }
                if expire {
                    if let Ok(n) = self.runtime.write(index, |g| g.expire_offsets(now)).await {
                        if n > 0 {
                            info!(offsets = n, partition = index, "expired committed offsets");
                        }
                    }
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
