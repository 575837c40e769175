//! Fetch: returns stored batches as they are, whole, from the batch holding
//! the fetch offset. Where they are is found from batch headers, off the
//! async threads in one `storage::blocking` call per attempt; record sets of
//! 16 KiB or more are not read then but sent from their files as the socket
//! takes them (a stand-in in the response, see `protocol::stand_in`), so a
//! client slow to read holds a file handle, not its response. Long-polls
//! until `min_bytes` are there or `max_wait_ms` passes, woken by appends.
//! A fetch may open an incremental fetch session (KIP-227, `fetch_session`):
//! later fetches then name only what changed and are answered with news only.

use super::{leader_epoch_error, RequestContext};
use crate::auth::acl::{operation, resource, CLUSTER_NAME};
use crate::broker::Broker;
use crate::fetch_session::{FetchContext, PartitionKey, PartitionRequest};
use crate::metadata::MetadataImage;
use crate::protocol::dispatch::WithFiles;
use crate::protocol::response::Splice;
use crate::quota::CONSUMER_BYTE_RATE;
use crate::replication::read_replica::{preferred_read_replica, ReplicaView};
use crate::replication::{LeaderPartition, Topic, TopicStats};
use crate::storage::{now_ms, Log, Partition};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{FetchResponse, FetchableTopicResponse};
use kafka_protocol::messages::TopicName;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

mod read;

use read::{read_all_blocking, Fetched};

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once.
struct Wanted {
    topic_index: usize,
    partition_index: i32,
    target: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    max_bytes: usize,
    leader_epoch: i32,
    last_fetched_epoch: i32,
    /// A follower's fetch: its leader state here (it reads to the log end).
    replica: Option<Arc<LeaderPartition>>,
    /// A consumer served by this broker as a follower (KIP-392): the leader
    /// epoch it follows in, which the consumer's epoch is checked against.
    followed_epoch: Option<i32>,
    /// The replica the consumer should read from instead (KIP-392).
    preferred_read_replica: Option<i32>,
    /// A follower out of the ISR fetching a partition under this leader's
    /// replication throttle: no records while the throttle is over its rate.
    throttled: bool,
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: FetchRequest) -> WithFiles<FetchResponse> {
    let answer = answer(broker, ctx, req).await;
    let files = answer.1.into_iter().flatten().collect();
    WithFiles {
        response: answer.0,
        files,
    }
}

/// The response, and the record sets it sends from files (none when it
/// carries no records).
async fn answer(broker: &Broker, ctx: &RequestContext, req: FetchRequest) -> (FetchResponse, Vec<Option<Splice>>) {
    let by_id = ctx.api_version >= 13;
    // A follower's fetch (KIP-903's ReplicaState from v15, the replica id before).
    let replica_id = if ctx.api_version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let from_replica = replica_id >= 0;
    if from_replica && !broker.authorize(ctx, operation::CLUSTER_ACTION, resource::CLUSTER, CLUSTER_NAME) {
        let response = FetchResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_session_id(0);
        return (response, Vec::new());
    }

    let requested = requested_partitions(&req, ctx.api_version, by_id);
    let mut context = match ctx.api_version >= 7 {
        true => broker.fetch_sessions.context(
            req.session_id,
            req.session_epoch,
            by_id,
            &requested,
            &forgotten_partitions(&req, by_id),
            now_ms(),
        ),
        false => FetchContext::Sessionless,
    };
    let partitions = match context {
        FetchContext::Error(code) => {
            let response = FetchResponse::default().with_error_code(code).with_session_id(0);
            return (response, Vec::new());
        }
        FetchContext::Incremental { ref mut partitions, .. } => std::mem::take(partitions),
        _ => requested,
    };

    let image = broker.image();
    let mut topics: Vec<(TopicName, Uuid)> = Vec::new();
    let mut topic_stats: Vec<Option<Arc<TopicStats>>> = Vec::new();
    let mut wanted = Vec::with_capacity(partitions.len());
    let (mut topic, mut allowed): (Option<Arc<Topic>>, bool) = (None, false);
    for p in &partitions {
        // Partitions of one topic come together: the topic is resolved once for them.
        let key = &p.key;
        if topics
            .last()
            .is_none_or(|(name, id)| *name != key.topic || *id != key.topic_id)
        {
            topic = if by_id {
                broker.replicas.topic_by_id(key.topic_id)
            } else {
                broker.replicas.topic(&key.topic)
            };
            topics.push((key.topic.clone(), key.topic_id));
            topic_stats.push(topic.as_ref().map(|t| t.stats.clone()));
            if let Some(t) = topic.as_ref().filter(|_| !from_replica) {
                TopicStats::add(&t.stats.fetch_requests, 1);
            }
            allowed = from_replica
                || topic
                    .as_ref()
                    .is_none_or(|t| broker.authorize(ctx, operation::READ, resource::TOPIC, &t.name));
        }
        let (mut replica, mut followed_epoch, mut preferred_read_replica) = (None, None, None);
        let mut throttled = false;
        let target = match &topic {
            _ if !allowed => Err(ResponseError::TopicAuthorizationFailed.code()),
            None if by_id => Err(ResponseError::UnknownTopicId.code()),
            None => Err(ResponseError::UnknownTopicOrPartition.code()),
            Some(topic) if from_replica => match broker.replicas.led(topic.id, key.partition) {
                Some(led) => {
                    throttled = broker.replicas.quotas.leader_throttles(topic.id, key.partition)
                        && !led.leader.isr().contains(&replica_id);
                    replica = Some(led.leader);
                    Ok(led.partition)
                }
                None => Err(super::leadership::NOT_LEADER),
            },
            // From v11 a consumer may read from a follower (Kafka's
            // clientMetadata is set for every v11+ fetch).
            Some(topic) if super::leadership::led_elsewhere(broker, &image, topic.id, key.partition) => {
                match broker.replicas.followed_epoch(topic.id, key.partition) {
                    Some(epoch) if ctx.api_version >= 11 => {
                        followed_epoch = Some(epoch);
                        topic
                            .partition(key.partition)
                            .cloned()
                            .ok_or(ResponseError::UnknownTopicOrPartition.code())
                    }
                    _ => Err(super::leadership::NOT_LEADER),
                }
            }
            Some(topic) => {
                if ctx.api_version >= 11 {
                    preferred_read_replica = preferred_read_replica_of(
                        broker,
                        &image,
                        ctx,
                        topic.id,
                        key.partition,
                        p.fetch_offset,
                        &req.rack_id,
                    );
                }
                topic
                    .partition(key.partition)
                    .cloned()
                    .ok_or(ResponseError::UnknownTopicOrPartition.code())
            }
        };
        wanted.push(Wanted {
            topic_index: topics.len() - 1,
            partition_index: key.partition,
            target,
            fetch_offset: p.fetch_offset,
            max_bytes: p.max_bytes.max(0) as usize,
            leader_epoch: p.current_leader_epoch,
            last_fetched_epoch: p.last_fetched_epoch,
            replica,
            followed_epoch,
            preferred_read_replica,
            throttled,
        });
    }

    if from_replica {
        record_follower_fetches(broker, replica_id, &wanted);
    }
    let read_committed = req.isolation_level == READ_COMMITTED && !from_replica;
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let waiter = Arc::new(Notify::new());
    let any_throttled = wanted.iter().any(|w| w.throttled);
    let wanted = Arc::new(wanted);
    // Kafka's shouldLeaderThrottle: over the rate, throttled partitions get no records.
    let hold = || any_throttled && broker.replicas.quotas.leader.is_exceeded();
    let results = loop {
        // Register before reading, so that an append between the read and the
        // wait still wakes us; a fetch that will not wait (max_wait_ms 0)
        // registers nowhere.
        if tokio::time::Instant::now() < deadline {
            for w in wanted.iter() {
                if let Ok(p) = &w.target {
                    p.register_waiter(&waiter);
                }
            }
        }
        let (results, bytes, any_error) = read_all_blocking(&wanted, max_bytes, read_committed, hold()).await;
        if bytes >= min_bytes || any_error || tokio::time::Instant::now() >= deadline || wanted.is_empty() {
            break results;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = broker.shutdown.cancelled() => {}
        }
        if broker.shutdown.is_cancelled() {
            break read_all_blocking(&wanted, max_bytes, read_committed, hold()).await.0;
        }
    };

    if from_replica && any_throttled {
        let sent: usize = wanted
            .iter()
            .zip(&results)
            .filter(|(w, _)| w.throttled)
            .map(|(_, f)| f.record_bytes())
            .sum();
        broker.replicas.quotas.leader.record(sent as u64);
    }
    if !from_replica {
        // Over its consumer_byte_rate: Kafka answers with no records and the throttle time.
        let fetched: usize = results.iter().map(Fetched::record_bytes).sum();
        let quotas = broker.image().client_quotas.clone();
        let client_id = ctx.client_id.as_deref().unwrap_or("");
        let throttle_ms = broker.quotas.record(
            &quotas,
            CONSUMER_BYTE_RATE,
            ctx.user(),
            client_id,
            fetched as u64,
            now_ms(),
        );
        if throttle_ms > 0 {
            broker
                .quotas
                .unrecord(&quotas, CONSUMER_BYTE_RATE, ctx.user(), client_id, fetched as u64);
            ctx.throttle(throttle_ms);
            let session_id = match context {
                FetchContext::Incremental { id, .. } => id,
                _ => 0,
            };
            let response = FetchResponse::default()
                .with_session_id(session_id)
                .with_throttle_time_ms(throttle_ms);
            return (response, Vec::new());
        }
    }

    // The session: opened after a full fetch; an incremental one sends only news.
    let answers = results.iter().map(Fetched::session_answer);
    let (session_id, send) = match context {
        FetchContext::Full => {
            let answered = partitions.into_iter().zip(answers);
            let id = broker.fetch_sessions.open(from_replica, by_id, answered, now_ms());
            (id, None)
        }
        FetchContext::Incremental { id, epoch, .. } => {
            let answers: Vec<_> = answers.collect();
            match broker.fetch_sessions.news(id, epoch, &answers) {
                Ok(send) => (id, Some(send)),
                Err(code) => {
                    let response = FetchResponse::default().with_error_code(code).with_session_id(id);
                    return (response, Vec::new());
                }
            }
        }
        _ => (0, None),
    };

    let mut responses: Vec<FetchableTopicResponse> = topics
        .into_iter()
        .map(|(name, id)| FetchableTopicResponse::default().with_topic(name).with_topic_id(id))
        .collect();
    let mut files = Vec::new();
    for (i, (w, fetched)) in wanted.iter().zip(results).enumerate() {
        if send.as_ref().is_some_and(|send| !send[i]) {
            continue;
        }
        let bytes = fetched.record_bytes();
        if let Some(stats) = topic_stats[w.topic_index]
            .as_ref()
            .filter(|_| bytes > 0 && !from_replica)
        {
            TopicStats::add(&stats.bytes_out, bytes as u64);
            TopicStats::add(&stats.records_out, fetched.record_count);
        }
        let (data, file) = fetched.into_data(read_committed);
        responses[w.topic_index].partitions.push(data);
        if file.is_some() {
            files.push(file);
        }
    }
    if send.is_some() {
        responses.retain(|t| !t.partitions.is_empty());
    }
    let mut response = FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses);
    if !from_replica {
        super::leadership::fill_fetch(&image, &ctx.listener, &mut response);
    }
    (response, files)
}

/// The partitions a Fetch names, in its order.
fn requested_partitions(req: &FetchRequest, version: i16, by_id: bool) -> Vec<PartitionRequest> {
    let mut out = Vec::with_capacity(req.topics.iter().map(|t| t.partitions.len()).sum());
    for t in &req.topics {
        for p in &t.partitions {
            out.push(PartitionRequest {
                key: partition_key(by_id, &t.topic, t.topic_id, p.partition),
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: if version >= 12 { p.last_fetched_epoch } else { -1 },
                log_start_offset: p.log_start_offset,
            });
        }
    }
    out
}

/// The partitions an incremental Fetch takes out of its session.
fn forgotten_partitions(req: &FetchRequest, by_id: bool) -> Vec<PartitionKey> {
    let topics = req.forgotten_topics_data.iter();
    topics
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| partition_key(by_id, &t.topic, t.topic_id, p))
        })
        .collect()
}

/// A partition by topic id (Fetch v13 and later) or by name, the other left out.
fn partition_key(by_id: bool, topic: &TopicName, topic_id: Uuid, partition: i32) -> PartitionKey {
    match by_id {
        true => PartitionKey {
            topic_id,
            topic: TopicName::default(),
            partition,
        },
        false => PartitionKey {
            topic_id: Uuid::nil(),
            topic: topic.clone(),
            partition,
        },
    }
}

/// A follower fetching from an offset has everything before it: the
/// leader's view of it moves (and with it, maybe, the high watermark), and
/// a follower that caught up asks to join the ISR. Only fetches in the
/// current leader epoch whose history agrees with ours count.
fn record_follower_fetches(broker: &Broker, replica_id: i32, wanted: &[Wanted]) {
    let image = broker.image();
    let unfenced = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
    for w in wanted {
        let (Some(leader), Ok(partition)) = (&w.replica, &w.target) else {
            continue;
        };
        if leader_epoch_error(w.leader_epoch, leader.leader_epoch).is_some() {
            continue;
        }
        if diverging(&partition.log(), w).is_some() {
            continue;
        }
        if let Some(change) = leader.follower_fetched(partition, replica_id, w.fetch_offset, unfenced) {
            broker.replicas.request_isr_change(change);
        }
    }
}

/// KIP-392: the follower a consumer in `client_rack` should read a
/// partition led here from, when `replica.selector.class` picks one.
fn preferred_read_replica_of(
    broker: &Broker,
    image: &MetadataImage,
    ctx: &RequestContext,
    topic_id: Uuid,
    index: i32,
    fetch_offset: i64,
    client_rack: &str,
) -> Option<i32> {
    let selector = broker.replicas.replica_selector()?;
    if client_rack.is_empty() {
        return None;
    }
    let led = broker.replicas.led(topic_id, index)?;
    let rack_of = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
    let candidates = led.leader.read_candidates(fetch_offset);
    let followers: Vec<ReplicaView> = candidates
        .iter()
        .map(|(id, end, since)| ReplicaView {
            id: *id,
            rack: rack_of(*id),
            log_end_offset: *end,
            since_caught_up_ms: *since,
        })
        .collect();
    let me = broker.node_id();
    let leader = ReplicaView {
        id: me,
        rack: rack_of(me),
        log_end_offset: led.partition.log().log_end_offset(),
        since_caught_up_ms: 0,
    };
    let chosen = preferred_read_replica(selector, client_rack, &leader, &followers)?;
    // Only a live replica the client can reach on its own listener.
    image
        .brokers
        .get(&chosen)
        .filter(|b| !b.fenced && b.endpoints.iter().any(|e| e.listener == ctx.listener))
        .map(|_| chosen)
}

fn diverging(log: &Log, w: &Wanted) -> Option<(i32, i64)> {
    crate::replication::divergence::diverging(log, w.last_fetched_epoch, w.fetch_offset)
}

/// The record sets of a response, for the encoder to send without copying.
pub fn record_sets(response: &FetchResponse) -> Vec<Bytes> {
    let partitions = response.responses.iter().flat_map(|t| t.partitions.iter());
    non_empty(partitions.map(|p| &p.records))
}

/// The record sets worth sending of a response's partitions.
pub fn non_empty<'a>(sets: impl Iterator<Item = &'a Option<Bytes>>) -> Vec<Bytes> {
    sets.flatten().filter(|r| !r.is_empty()).cloned().collect()
}
