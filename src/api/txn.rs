//! Transactions: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! TxnOffsetCommit, and the admin views DescribeTransactions and
//! ListTransactions. (InitProducerId and FindCoordinator live with their
//! non-transactional uses.) Every client call needs Write on the
//! TransactionalId; AddPartitionsToTxn v4+ and WriteTxnMarkers come from
//! brokers (ClusterAction). Clients speak transaction version 1 up to
//! EndTxn v4 / TxnOffsetCommit v4 and version 2 above (KIP-890).

use super::groups::group_allowed;
use super::offsets::{commit_where_allowed, CommitTopic};
use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::coordinator::TxnProducer;
use crate::group::OffsetCommitRequest as Commit;
use crate::group::OFFSETS_TOPIC;
use crate::storage::batch::{control_batch, ControlType};
use crate::storage::now_ms;
use crate::txn::records::{TV_0, TV_2};
use crate::txn::verification::TxnOperation;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState as DescribedTxn};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;

fn txn_allowed(broker: &Broker, ctx: &RequestContext, op: i8, id: &str) -> bool {
    broker.authorize(ctx, op, resource::TRANSACTIONAL_ID, id)
}

/// Clients from before KIP-588 (AddPartitionsToTxn, AddOffsetsToTxn and
/// EndTxn below v2) do not know PRODUCER_FENCED: Kafka tells them
/// INVALID_PRODUCER_EPOCH instead.
fn for_version(code: i16, version: i16) -> i16 {
    if version < 2 && code == E::ProducerFenced.code() {
        E::InvalidProducerEpoch.code()
    } else {
        code
    }
}

/// Each requested partition's result, in request order, from `codes` in
/// the same order.
fn topic_results(topics: &[AddPartitionsToTxnTopic], codes: &[i16]) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut codes = codes.iter().copied();
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(codes.next().unwrap_or(0))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}

pub async fn handle_add_partitions_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if ctx.api_version >= 4 {
        return add_partitions_for_brokers(broker, ctx, req).await;
    }
    let id = req.v3_and_below_transactional_id.to_string();
    let topics = req.v3_and_below_topics;
    // Errors decided before the coordinator: per (topic, partition).
    let mut decided: BTreeMap<(String, i32), i16> = BTreeMap::new();
    let txn_ok = txn_allowed(broker, ctx, operation::WRITE, &id);
    for t in &topics {
        let code = if !txn_ok {
            Some(E::TransactionalIdAuthorizationFailed.code())
        } else if !broker.authorize(ctx, operation::WRITE, resource::TOPIC, &t.name) {
            Some(E::TopicAuthorizationFailed.code())
        } else {
            None
        };
        // The coordinator need not host the partition: the metadata says it exists.
        let image = broker.image();
        let topic = image.topics.get(&t.name);
        for p in &t.partitions {
            let exists = topic.is_some_and(|topic| topic.partition(*p).is_some());
            let code = code.or((!exists).then_some(E::UnknownTopicOrPartition.code()));
            if let Some(code) = code {
                decided.insert((t.name.to_string(), *p), code);
            }
        }
    }
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), *p)))
        .collect();
    let outcome = if decided.is_empty() {
        broker
            .txns
            .add_partitions(
                &id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &wanted,
                TV_0,
            )
            .await
            .err()
            .map_or(0, |code| for_version(code, ctx.api_version))
    } else {
        // One refusal and nothing is added; the others were not attempted.
        E::OperationNotAttempted.code()
    };
    let results = topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = decided.get(&(t.name.to_string(), *p)).copied().unwrap_or(outcome);
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddPartitionsToTxn v4+: a partition leader adds a TV2 producer's
/// partitions to its transaction, or checks an older producer's are in it
/// (`verify_only`), for a batch of transactions.
async fn add_partitions_for_brokers(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if !broker.authorize_cluster(ctx, operation::CLUSTER_ACTION) {
        return AddPartitionsToTxnResponse::default().with_error_code(E::ClusterAuthorizationFailed.code());
    }
    let image = broker.image();
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in req.transactions {
        let id = txn.transactional_id.to_string();
        let wanted: Vec<(String, i32)> = txn
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), *p)))
            .collect();
        let exists = |(t, p): &(String, i32)| image.topics.get(t).is_some_and(|t| t.partition(*p).is_some());
        let codes = if !wanted.iter().all(exists) {
            // One unknown partition and none is added, as for clients.
            wanted
                .iter()
                .map(|p| {
                    if exists(p) {
                        E::OperationNotAttempted.code()
                    } else {
                        E::UnknownTopicOrPartition.code()
                    }
                })
                .collect()
        } else if txn.verify_only {
            broker
                .txns
                .verify_partitions(&id, txn.producer_id.0, txn.producer_epoch, &wanted)
                .await
                .unwrap_or_else(|code| vec![code; wanted.len()])
        } else {
            let added = broker
                .txns
                .add_partitions(&id, txn.producer_id.0, txn.producer_epoch, &wanted, TV_2)
                .await;
            vec![added.err().unwrap_or(0); wanted.len()]
        };
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results(&txn.topics, &codes)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub async fn handle_add_offsets_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let answer = |code: i16| AddOffsetsToTxnResponse::default().with_error_code(code);
    if !txn_allowed(broker, ctx, operation::WRITE, &req.transactional_id) {
        return answer(E::TransactionalIdAuthorizationFailed.code());
    }
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return answer(E::GroupAuthorizationFailed.code());
    }
    let partition = match broker.groups.offsets_partition(&req.group_id).await {
        Ok(p) => p,
        Err(code) => return answer(code),
    };
    let code = broker
        .txns
        .add_partitions(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
            TV_0,
        )
        .await
        .err()
        .map_or(0, |code| for_version(code, ctx.api_version));
    answer(code)
}

pub async fn handle_end_txn(broker: &Broker, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let answer = |code: i16| EndTxnResponse::default().with_error_code(code);
    if !txn_allowed(broker, ctx, operation::WRITE, &req.transactional_id) {
        return answer(E::TransactionalIdAuthorizationFailed.code());
    }
    // v5: the client bumps its epoch at every end and is told the new one
    // (when the cluster has finalized transaction version 2, as Kafka checks).
    let client_version = if ctx.api_version >= 5 && broker.transaction_v2() {
        TV_2
    } else {
        TV_0
    };
    let ended = broker
        .txns
        .end_txn(
            &broker.marker_targets(),
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            client_version,
        )
        .await;
    match ended {
        Ok((producer_id, epoch)) => answer(0)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(code) => answer(for_version(code, ctx.api_version)),
    }
}

/// A TxnOffsetCommit's check of its transaction, as Kafka's group
/// coordinator answers it: with TV2 (v5+) the group's offsets partition is
/// added to the transaction, before that it must have been added
/// (AddOffsetsToTxn).
async fn txn_offset_commit_check(broker: &Broker, ctx: &RequestContext, req: &TxnOffsetCommitRequest) -> Option<i16> {
    let id = req.transactional_id.as_str();
    if !txn_allowed(broker, ctx, operation::WRITE, id) {
        return Some(E::TransactionalIdAuthorizationFailed.code());
    }
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return Some(E::GroupAuthorizationFailed.code());
    }
    let partition = match broker.groups.offsets_partition(&req.group_id).await {
        Ok(p) => p,
        Err(code) => return Some(code),
    };
    let op = TxnOperation::for_txn_offset_commit(ctx.api_version, broker.transaction_v2());
    let codes = broker
        .txns
        .add_or_verify(
            &broker.marker_targets(),
            id,
            req.producer_id.0,
            req.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
            op,
        )
        .await;
    let code = codes.first().copied().unwrap_or(0);
    // The group coordinator's mapping of what a write could not do.
    let code = match E::try_from_code(code) {
        Some(E::NetworkException) => E::CoordinatorLoadInProgress.code(),
        Some(E::UnknownTopicOrPartition | E::NotEnoughReplicas | E::RequestTimedOut) => {
            E::CoordinatorNotAvailable.code()
        }
        _ => code,
    };
    (code != 0).then_some(code)
}

pub async fn handle_txn_offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    // v6 names topics by id (KIP-1319); an id not known has no name.
    let by_id = ctx.api_version >= 6;
    if by_id {
        let image = broker.image();
        for t in &mut req.topics {
            t.name = super::topic_name_by_id(&image, t.topic_id);
        }
    }
    let group_code = txn_offset_commit_check(broker, ctx, &req).await;
    let codes = commit_where_allowed(
        &req.topics,
        |topic| {
            group_code
                .or((by_id && topic.is_empty()).then_some(E::UnknownTopicId.code()))
                .or((!broker.authorize(ctx, operation::READ, resource::TOPIC, topic))
                    .then_some(E::TopicAuthorizationFailed.code()))
        },
        |offsets| {
            broker.groups.commit_txn_offsets(
                Commit {
                    group_id: req.group_id.to_string(),
                    generation: req.generation_id_or_member_epoch,
                    member_id: req.member_id.to_string(),
                    instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
                    version: ctx.api_version,
                    transactional: false,
                    offsets,
                },
                TxnProducer {
                    producer_id: req.producer_id.0,
                    producer_epoch: req.producer_epoch,
                },
            )
        },
    )
    .await;
    let topics = req.topics.into_iter().zip(codes).map(|(t, c)| t.answer(c)).collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub async fn handle_describe_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let described = DescribedTxn::default().with_transactional_id(id.clone());
        if !txn_allowed(broker, ctx, operation::DESCRIBE, &id) {
            states.push(described.with_error_code(E::TransactionalIdAuthorizationFailed.code()));
            continue;
        }
        let Some(m) = broker.txns.describe(&id).await else {
            states.push(described.with_error_code(E::TransactionalIdNotFound.code()));
            continue;
        };
        {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in &m.partitions {
                by_topic.entry(topic).or_default().push(*partition);
            }
            let topics = by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicData::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect();
            let described = described
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(topics);
            states.push(described);
        }
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// WriteTxnMarkers: what `kafka-transactions abort` sends to end a hanging
/// transaction by hand (and brokers send each other in Kafka).
pub async fn handle_write_txn_markers(
    broker: &Broker,
    ctx: &RequestContext,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    let allowed = broker.authorize_cluster(ctx, operation::CLUSTER_ACTION);
    let mut markers = Vec::with_capacity(req.markers.len());
    for marker in req.markers {
        let kind = if marker.transaction_result {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for t in marker.topics {
            let topic = broker.replicas.topic(&t.name);
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for index in t.partition_indexes {
                let producer = TxnProducer {
                    producer_id: marker.producer_id.0,
                    producer_epoch: marker.producer_epoch,
                };
                let not_led = super::leadership::not_led_here(broker, topic.as_ref(), index);
                let code = match topic.as_ref().and_then(|topic| topic.partition(index)) {
                    _ if !allowed => E::ClusterAuthorizationFailed.code(),
                    _ if not_led.is_some() => not_led.unwrap_or_default(),
                    None => E::UnknownTopicOrPartition.code(),
                    // The group coordinator writes its own partitions' markers.
                    Some(_) if t.name.as_str() == OFFSETS_TOPIC => broker
                        .groups
                        .complete_transaction(index, producer, marker.transaction_result)
                        .await
                        .err()
                        .unwrap_or(0),
                    Some(partition)
                        if crate::txn::markers::is_stale_v2_marker(
                            partition,
                            marker.producer_id.0,
                            marker.producer_epoch,
                            marker.transaction_version as i16,
                        ) =>
                    {
                        E::InvalidProducerEpoch.code()
                    }
                    // Answered once the marker is on every in-sync replica.
                    Some(partition) => {
                        let batch = control_batch(
                            marker.producer_id.0,
                            marker.producer_epoch,
                            marker.coordinator_epoch,
                            kind,
                            now_ms(),
                        );
                        crate::txn::markers::append_committed(partition, batch)
                            .await
                            .err()
                            .unwrap_or(0)
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

const STATE_NAMES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub async fn handle_list_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|s| !STATE_NAMES.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = now_ms();
    // v2: a regular expression the ids must match.
    let pattern = match req.transactional_id_pattern.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => match regex::Regex::new(p) {
            Ok(r) => Some(r),
            Err(_) => return ListTransactionsResponse::default().with_error_code(E::InvalidRegularExpression.code()),
        },
        None => None,
    };
    let states = broker
        .txns
        .list()
        .await
        .into_iter()
        .filter(|t| {
            req.state_filters.is_empty() || req.state_filters.iter().any(|s| s.as_str() == t.metadata.state.name())
        })
        .filter(|t| {
            req.producer_id_filters.is_empty() || req.producer_id_filters.contains(&ProducerId(t.metadata.producer_id))
        })
        // Open longer than the duration filter (v1+).
        .filter(|t| {
            req.duration_filter < 0 || (t.metadata.start_ms >= 0 && now - t.metadata.start_ms >= req.duration_filter)
        })
        .filter(|t| pattern.as_ref().is_none_or(|r| r.is_match(&t.transactional_id)))
        .filter(|t| txn_allowed(broker, ctx, operation::DESCRIBE, &t.transactional_id))
        .map(|t| {
            ListedTxn::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                .with_producer_id(ProducerId(t.metadata.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.metadata.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
