//! ShareFetch and ShareAcknowledge (KIP-932): a share group member's
//! acknowledgements applied, then records acquired for it from the
//! partitions of its share session and returned as stored, whole batches,
//! with the offsets it now holds. Long-polls like Fetch until records are
//! there or `max_wait_ms` passes, woken by appends and by records given back.

use super::groups::group_allowed as group_allowed_op;
use super::share_acks::{acknowledge_durably, load, release_held, Ack};
use super::share_groups::share_settings;
use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::share::partition::{AcquiredRange, LogBatch};
use crate::share::sessions::{SessionError, SessionView, TopicPartition};
use crate::share::{durable, ShareKey, ShareManager, ShareSettings};
use crate::storage::batch::BatchHeader;
use crate::storage::{blocking, now_ms, Partition};
use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch as AckLeader, PartitionData as AckPartition, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// What became of one partition of a request.
#[derive(Default)]
struct Outcome {
    error: i16,
    ack_error: Option<i16>,
    records: Option<Bytes>,
    acquired: Vec<AcquiredRange>,
    leader_epoch: i32,
}

fn session_error(e: SessionError) -> i16 {
    match e {
        SessionError::NotFound => E::ShareSessionNotFound.code(),
        SessionError::InvalidEpoch => E::InvalidShareSessionEpoch.code(),
    }
}

/// The partition a member may read here: known, readable by it, led here.
fn resolve(broker: &Broker, ctx: &RequestContext, tp: TopicPartition) -> Result<Arc<Partition>, i16> {
    let Some(topic) = broker.replicas.topic_by_id(tp.0) else {
        return Err(E::UnknownTopicId.code());
    };
    if !broker.authorize(ctx, operation::READ, resource::TOPIC, &topic.name) {
        return Err(E::TopicAuthorizationFailed.code());
    }
    if super::leadership::led_elsewhere(broker, &broker.image(), tp.0, tp.1) {
        return Err(super::leadership::NOT_LEADER);
    }
    topic.partition(tp.1).cloned().ok_or(E::UnknownTopicOrPartition.code())
}

/// Reads and acquires one partition's next records, off the async threads.
fn fetch_partition(
    shares: &ShareManager,
    key: &ShareKey,
    partition: &Partition,
    member: &str,
    settings: &ShareSettings,
    max_records: i64,
    max_bytes: usize,
) -> Outcome {
    let now = now_ms();
    if !shares.is_initialized(key) {
        // Its state is not loaded yet (see `load`): nothing to hand out now,
        // and no error either, as Kafka answers a partition still starting
        // (the Java share consumer throws on any error it does not expect).
        return Outcome {
            records: Some(Bytes::new()),
            ..Outcome::default()
        };
    }
    let (plan, leader_epoch) = {
        let mut log = partition.log();
        let log_start = log.log_start_offset();
        let end = if settings.read_committed {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        let next = shares
            .with(key, |p| {
                p.move_start_to(log_start);
                if p.expire_locks(now, &settings.limits) {
                    shares.released.notify_waiters();
                }
                p.next_fetch_offset()
            })
            .unwrap_or(end);
        (log.plan_read(next, end), log.leader_epoch())
    };
    let empty = Outcome {
        records: Some(Bytes::new()),
        leader_epoch,
        ..Outcome::default()
    };
    let records = match plan {
        Ok(None) => return empty,
        Ok(Some(plan)) => match plan.read(max_bytes, true) {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    error: super::log_error_code(&crate::storage::LogError::Io(e)),
                    ..empty
                }
            }
        },
        Err(e) => {
            return Outcome {
                error: super::log_error_code(&e),
                ..empty
            }
        }
    };
    // Batch headers only: the records themselves are never decoded.
    let mut batches = Vec::new();
    let mut spans = Vec::new();
    let mut at = 0usize;
    while let Ok(h) = BatchHeader::parse(&records[at..]) {
        let end = at + h.total_size();
        if end > records.len() {
            break;
        }
        batches.push(LogBatch {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            is_control: h.is_control(),
        });
        spans.push((at, end));
        at = end;
    }
    let acquired = shares
        .with(key, |p| p.acquire(member, &batches, max_records, &settings.limits, now))
        .unwrap_or_default();
    // Only the batches holding acquired records go back.
    let holds = |b: &LogBatch| {
        acquired
            .iter()
            .any(|r| r.first <= b.last_offset && r.last >= b.base_offset)
    };
    let first = batches.iter().position(holds);
    let last = batches.iter().rposition(holds);
    let records = match (first, last) {
        (Some(f), Some(l)) => records.slice(spans[f].0..spans[l].1),
        _ => Bytes::new(),
    };
    Outcome {
        records: Some(records),
        acquired,
        ..empty
    }
}

/// The acknowledgements of a request, by partition.
fn acks_of<'a>(
    topics: impl Iterator<Item = (Uuid, i32, Vec<Ack>)> + 'a,
) -> (Vec<TopicPartition>, HashMap<TopicPartition, Vec<Ack>>) {
    let mut order = Vec::new();
    let mut acks = HashMap::new();
    for (topic_id, partition, batches) in topics {
        order.push((topic_id, partition));
        if !batches.is_empty() {
            acks.insert((topic_id, partition), batches);
        }
    }
    (order, acks)
}

fn not_in_session_or_invalid(group: &Option<GroupId>, member: &Option<StrBytes>) -> Option<(String, String)> {
    let group = group.as_ref().map(|g| g.to_string()).filter(|g| !g.is_empty())?;
    let member = member.as_ref().map(|m| m.to_string()).filter(|m| !m.is_empty())?;
    Some((group, member))
}

pub async fn handle_share_fetch(broker: &Broker, ctx: &RequestContext, req: ShareFetchRequest) -> ShareFetchResponse {
    let Some((group, member)) = not_in_session_or_invalid(&req.group_id, &req.member_id) else {
        return ShareFetchResponse::default()
            .with_error_code(E::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str("GroupId and MemberId must be set.")));
    };
    if !group_allowed_op(broker, ctx, operation::READ, &group) {
        return ShareFetchResponse::default().with_error_code(E::GroupAuthorizationFailed.code());
    }
    let settings = share_settings(broker, &group);
    let limits = req_limits(&req);
    let (added, mut acks) = acks_of(req.topics.into_iter().flat_map(|t| {
        t.partitions.into_iter().map(move |p| {
            let batches = p
                .acknowledgement_batches
                .into_iter()
                .map(|b| Ack::new(b.first_offset, b.last_offset, b.acknowledge_types))
                .collect();
            (t.topic_id, p.partition_index, batches)
        })
    }));
    let forgotten: Vec<TopicPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let view = broker
        .shares
        .lock_sessions()
        .fetch(&group, &member, req.share_session_epoch, &added, &forgotten);
    let view: SessionView = match view {
        Ok(v) => v,
        Err(e) => return ShareFetchResponse::default().with_error_code(session_error(e)),
    };
    let mut outcomes: HashMap<TopicPartition, Outcome> = HashMap::new();
    // Acknowledgements first: what they release may be fetched at once.
    let mut order: Vec<TopicPartition> = view.partitions.clone();
    for tp in acks.keys() {
        if !order.contains(tp) {
            order.push(*tp);
        }
    }
    for (tp, batches) in acks.drain() {
        let key = ShareKey::new(&group, tp.0, tp.1);
        let code = match resolve(broker, ctx, tp) {
            Ok(partition) => acknowledge_durably(broker, &key, &partition, &member, &batches, &settings).await,
            Err(code) => code,
        };
        outcomes.entry(tp).or_default().ack_error = Some(code);
    }
    if view.closed {
        release_held(broker, &group, &member, &view, &settings).await;
    } else {
        fetch(broker, ctx, &limits, &group, &member, &settings, &view, &mut outcomes).await;
    }
    let partitions: Vec<TopicPartition> = order
        .into_iter()
        .filter(|tp| {
            view.full
                || outcomes
                    .get(tp)
                    .is_some_and(|o| o.error != 0 || o.ack_error.is_some() || !o.acquired.is_empty())
        })
        .collect();
    let mut responses: Vec<ShareFetchableTopicResponse> = Vec::new();
    for tp in partitions {
        let o = outcomes.remove(&tp).unwrap_or_default();
        let data = PartitionData::default()
            .with_partition_index(tp.1)
            .with_error_code(o.error)
            .with_acknowledge_error_code(o.ack_error.unwrap_or(0))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(if o.error == 0 { broker.node_id() } else { -1 })
                    .with_leader_epoch(if o.error == 0 { o.leader_epoch } else { -1 }),
            )
            .with_records(Some(o.records.unwrap_or_default()))
            .with_acquired_records(
                o.acquired
                    .iter()
                    .map(|r| {
                        AcquiredRecords::default()
                            .with_first_offset(r.first)
                            .with_last_offset(r.last)
                            .with_delivery_count(r.delivery_count)
                    })
                    .collect(),
            );
        match responses.iter_mut().find(|t| t.topic_id == tp.0) {
            Some(t) => t.partitions.push(data),
            None => responses.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(tp.0)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(settings.limits.record_lock_ms.clamp(0, i32::MAX as i64) as i32)
        .with_responses(responses)
}

/// How soon a share-partition whose coordinator was still starting is
/// loaded again.
const LOAD_RETRY: Duration = Duration::from_millis(100);

/// The share coordinator's answers that mean "not yet": its partition of
/// `__share_group_state` has no leader yet, is loading, or moved.
fn coordinator_starting(code: i16) -> bool {
    [
        E::CoordinatorNotAvailable.code(),
        E::CoordinatorLoadInProgress.code(),
        E::NotCoordinator.code(),
        E::UnknownTopicOrPartition.code(),
        E::NotLeaderOrFollower.code(),
        E::RequestTimedOut.code(),
    ]
    .contains(&code)
}

/// A ShareFetch's bounds.
struct FetchLimits {
    max_wait_ms: i64,
    max_bytes: usize,
    max_records: i64,
}

fn req_limits(req: &ShareFetchRequest) -> FetchLimits {
    FetchLimits {
        max_wait_ms: req.max_wait_ms.max(0) as i64,
        max_bytes: req.max_bytes.max(0) as usize,
        // Kafka's default for a request that does not say (max.poll.records).
        max_records: if req.max_records > 0 {
            req.max_records as i64
        } else {
            500
        },
    }
}

/// Acquires records for the session's partitions, waiting for some if none
/// are there yet.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    limits: &FetchLimits,
    group: &str,
    member: &str,
    settings: &ShareSettings,
    view: &SessionView,
    outcomes: &mut HashMap<TopicPartition, Outcome>,
) {
    let targets: Vec<(TopicPartition, Result<Arc<Partition>, i16>)> = view
        .partitions
        .iter()
        .map(|tp| (*tp, resolve(broker, ctx, *tp)))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(limits.max_wait_ms as u64);
    let waiter = Arc::new(Notify::new());
    loop {
        // A state not loaded yet because its share coordinator is still
        // starting is asked again shortly, within the request's wait.
        let mut loading = false;
        let mut refused: HashMap<TopicPartition, i16> = HashMap::new();
        for (tp, t) in &targets {
            if let Ok(p) = t {
                p.register_waiter(&waiter);
                let key = ShareKey::new(group, tp.0, tp.1);
                match load(broker, &key, p, settings).await {
                    Ok(()) => {}
                    Err(code) if coordinator_starting(code) => loading = true,
                    Err(code) => {
                        refused.insert(*tp, code);
                    }
                }
            }
        }
        let released = broker.shares.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        let work: Vec<(TopicPartition, Result<Arc<Partition>, i16>)> = targets.clone();
        let shares = broker.shares.clone();
        let (group_id, member_id, s) = (group.to_string(), member.to_string(), settings.clone());
        let (max_records, max_bytes) = (limits.max_records, limits.max_bytes);
        let read = blocking(move || {
            let mut left_records = max_records;
            let mut left_bytes = max_bytes;
            let mut out = Vec::with_capacity(work.len());
            for (tp, target) in work {
                let target = match refused.get(&tp) {
                    Some(code) => Err(*code),
                    None => target,
                };
                let outcome = match target {
                    Err(code) => Outcome {
                        error: code,
                        records: Some(Bytes::new()),
                        ..Outcome::default()
                    },
                    Ok(_) if left_records <= 0 => Outcome {
                        records: Some(Bytes::new()),
                        ..Outcome::default()
                    },
                    Ok(partition) => {
                        let key = ShareKey::new(&group_id, tp.0, tp.1);
                        let o = fetch_partition(&shares, &key, &partition, &member_id, &s, left_records, left_bytes);
                        left_records -= o.acquired.iter().map(|r| r.last - r.first + 1).sum::<i64>();
                        left_bytes = left_bytes.saturating_sub(o.records.as_ref().map_or(0, Bytes::len));
                        o
                    }
                };
                out.push((tp, outcome));
            }
            out
        })
        .await;
        let read = match read {
            Ok(r) => r,
            Err(_) => targets
                .iter()
                .map(|(tp, _)| {
                    (
                        *tp,
                        Outcome {
                            error: E::KafkaStorageError.code(),
                            records: Some(Bytes::new()),
                            ..Outcome::default()
                        },
                    )
                })
                .collect(),
        };
        // Starts moved and locks run out are written as they happen.
        for (tp, _) in &read {
            let key = ShareKey::new(group, tp.0, tp.1);
            durable::persist(&broker.shares, &broker.persister(), &key).await;
        }
        let got = read.iter().any(|(_, o)| !o.acquired.is_empty() || o.error != 0);
        if got || tokio::time::Instant::now() >= deadline || targets.is_empty() || broker.shutdown.is_cancelled() {
            for (tp, o) in read {
                let entry = outcomes.entry(tp).or_default();
                entry.error = o.error;
                entry.records = o.records;
                entry.acquired = o.acquired;
                entry.leader_epoch = o.leader_epoch;
            }
            return;
        }
        // Locks that run out make records available again.
        let lock_end = targets
            .iter()
            .filter_map(|(tp, _)| {
                broker
                    .shares
                    .with(&ShareKey::new(group, tp.0, tp.1), |p| p.next_lock_deadline())?
            })
            .min()
            .map(|at| tokio::time::Instant::now() + Duration::from_millis((at - now_ms()).max(1) as u64));
        let mut wake = lock_end.map_or(deadline, |l| l.min(deadline));
        if loading {
            wake = wake.min(tokio::time::Instant::now() + LOAD_RETRY);
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = &mut released => {}
            _ = tokio::time::sleep_until(wake) => {}
            _ = broker.shutdown.cancelled() => {}
        }
    }
}

pub async fn handle_share_acknowledge(
    broker: &Broker,
    ctx: &RequestContext,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let Some((group, member)) = not_in_session_or_invalid(&req.group_id, &req.member_id) else {
        return ShareAcknowledgeResponse::default()
            .with_error_code(E::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str("GroupId and MemberId must be set.")));
    };
    if !group_allowed_op(broker, ctx, operation::READ, &group) {
        return ShareAcknowledgeResponse::default().with_error_code(E::GroupAuthorizationFailed.code());
    }
    let settings = share_settings(broker, &group);
    let view = broker
        .shares
        .lock_sessions()
        .acknowledge(&group, &member, req.share_session_epoch);
    let view = match view {
        Ok(v) => v,
        Err(e) => return ShareAcknowledgeResponse::default().with_error_code(session_error(e)),
    };
    let mut responses: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for t in req.topics {
        let mut partitions = Vec::new();
        for p in t.partitions {
            let tp = (t.topic_id, p.partition_index);
            let acks: Vec<Ack> = p
                .acknowledgement_batches
                .into_iter()
                .map(|b| Ack::new(b.first_offset, b.last_offset, b.acknowledge_types))
                .collect();
            let key = ShareKey::new(&group, tp.0, tp.1);
            let (code, epoch) = match resolve(broker, ctx, tp) {
                Ok(partition) => (
                    acknowledge_durably(broker, &key, &partition, &member, &acks, &settings).await,
                    partition.log().leader_epoch(),
                ),
                Err(code) => (code, -1),
            };
            partitions.push(
                AckPartition::default()
                    .with_partition_index(tp.1)
                    .with_error_code(code)
                    .with_current_leader(
                        AckLeader::default()
                            .with_leader_id(if code == 0 { broker.node_id() } else { -1 })
                            .with_leader_epoch(epoch),
                    ),
            );
        }
        responses.push(
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    broker.shares.released.notify_waiters();
    if view.closed {
        release_held(broker, &group, &member, &view, &settings).await;
    }
    ShareAcknowledgeResponse::default()
        .with_acquisition_lock_timeout_ms(settings.limits.record_lock_ms.clamp(0, i32::MAX as i64) as i32)
        .with_responses(responses)
}

/// The record sets of a response, for the encoder to send without copying.
pub fn record_sets(response: &ShareFetchResponse) -> Vec<Bytes> {
    let partitions = response.responses.iter().flat_map(|t| t.partitions.iter());
    super::fetch::non_empty(partitions.map(|p| &p.records))
}
