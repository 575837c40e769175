//! Committed offsets: OffsetCommit, OffsetFetch (one group, or several from
//! v8) and OffsetDelete. With an authorizer, committing needs Read on the
//! group and the topic; fetching needs Describe on both; deleting needs
//! Delete on the group and Read on the topic.

use super::groups::group_allowed;
use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::group::{CommittedOffset, OffsetCommitRequest as Commit};
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const TOPIC_AUTHORIZATION_FAILED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_AUTHORIZATION_FAILED: i16 = ResponseError::GroupAuthorizationFailed.code();

fn topic_allowed(broker: &Broker, ctx: &RequestContext, op: i8, topic: &str) -> bool {
    broker.authorize(ctx, op, resource::TOPIC, topic)
}

/// One partition of a commit request: (partition, offset, leader epoch, metadata).
pub(crate) type PartitionCommit<'a> = (i32, i64, i32, Option<&'a StrBytes>);

/// A topic of an OffsetCommit or TxnOffsetCommit request: its name and
/// partitions, and its answer given an error code per partition.
pub(crate) trait CommitTopic {
    type Answer;
    fn view(&self) -> (&str, Vec<PartitionCommit<'_>>);
    fn answer(self, codes: Vec<i16>) -> Self::Answer;
}

macro_rules! commit_topic {
    ($topic:ty => $answer:ty, $partition:ty $(, $with_id:ident)?) => {
        impl CommitTopic for $topic {
            type Answer = $answer;

            fn view(&self) -> (&str, Vec<PartitionCommit<'_>>) {
                let partitions = self.partitions.iter().map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata.as_ref(),
                    )
                });
                (self.name.as_str(), partitions.collect())
            }

            fn answer(self, codes: Vec<i16>) -> $answer {
                let partitions = self
                    .partitions
                    .iter()
                    .zip(codes)
                    .map(|(p, code)| {
                        <$partition>::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                <$answer>::default()
                    $(.with_topic_id(self.$with_id))?
                    .with_name(self.name)
                    .with_partitions(partitions)
            }
        }
    };
}
commit_topic!(
    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic => OffsetCommitResponseTopic,
    OffsetCommitResponsePartition, topic_id
);
commit_topic!(
    kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic => TxnOffsetCommitResponseTopic,
    TxnOffsetCommitResponsePartition, topic_id
);

/// The commit both OffsetCommit and TxnOffsetCommit make: each topic's
/// partitions are refused with `refusal(topic)` or handed to `commit`, and
/// every partition's error code comes back in request order.
pub(crate) async fn commit_where_allowed<T: CommitTopic, F: std::future::Future<Output = Vec<i16>>>(
    topics: &[T],
    refusal: impl Fn(&str) -> Option<i16>,
    commit: impl FnOnce(Vec<(String, i32, i64, i32, Option<String>)>) -> F,
) -> Vec<Vec<i16>> {
    let viewed: Vec<(&str, Vec<PartitionCommit>, Option<i16>)> = topics
        .iter()
        .map(|t| {
            let (name, partitions) = t.view();
            (name, partitions, refusal(name))
        })
        .collect();
    let offsets = viewed
        .iter()
        .filter(|(_, _, refused)| refused.is_none())
        .flat_map(|(name, partitions, _)| {
            partitions.iter().map(|&(partition, offset, epoch, metadata)| {
                (
                    name.to_string(),
                    partition,
                    offset,
                    epoch,
                    metadata.map(|m| m.to_string()),
                )
            })
        })
        .collect::<Vec<_>>();
    let mut committed = if offsets.is_empty() {
        Vec::new()
    } else {
        commit(offsets).await
    }
    .into_iter();
    viewed
        .iter()
        .map(|(_, partitions, refused)| {
            partitions
                .iter()
                .map(|_| refused.unwrap_or_else(|| committed.next().unwrap_or(0)))
                .collect()
        })
        .collect()
}

pub async fn handle_offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_ok = group_allowed(broker, ctx, operation::READ, &req.group_id);
    // v10 names topics by id (KIP-848); an id not known has no name.
    if ctx.api_version >= 10 {
        let image = broker.image();
        for t in &mut req.topics {
            t.name = super::topic_name_by_id(&image, t.topic_id);
        }
    }
    let codes = commit_where_allowed(
        &req.topics,
        |topic| match (group_ok, topic_allowed(broker, ctx, operation::READ, topic)) {
            (false, _) => Some(GROUP_AUTHORIZATION_FAILED),
            (true, _) if topic.is_empty() && ctx.api_version >= 10 => Some(ResponseError::UnknownTopicId.code()),
            (true, false) => Some(TOPIC_AUTHORIZATION_FAILED),
            (true, true) => None,
        },
        |offsets| {
            broker.groups.commit_offsets(Commit {
                group_id: req.group_id.to_string(),
                generation: req.generation_id_or_member_epoch,
                member_id: req.member_id.to_string(),
                instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
                version: ctx.api_version,
                transactional: false,
                offsets,
            })
        },
    )
    .await;
    let topics = req.topics.into_iter().zip(codes).map(|(t, c)| t.answer(c)).collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One committed offset as OffsetFetch reports it: -1 and "" when none.
struct Row {
    partition: i32,
    offset: i64,
    epoch: i32,
    metadata: StrBytes,
    error: i16,
}

/// A group's offsets as the principal may see them: topics it may not
/// describe are left out of "all", and answered with an error when named.
async fn visible_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Vec<(String, Vec<Row>)> {
    let row = |partition: i32, o: Option<CommittedOffset>, error: i16| match o {
        Some(o) => Row {
            partition,
            offset: o.offset,
            epoch: o.leader_epoch,
            metadata: StrBytes::from_string(o.metadata),
            error,
        },
        None => Row {
            partition,
            offset: -1,
            epoch: -1,
            metadata: StrBytes::default(),
            error,
        },
    };
    let named = wanted.is_some();
    let mut out = Vec::new();
    for (topic, offsets) in broker.groups.fetch_offsets(group, wanted.as_deref()).await {
        let allowed = topic_allowed(broker, ctx, operation::DESCRIBE, &topic);
        if !allowed && !named {
            continue;
        }
        let mut rows = Vec::with_capacity(offsets.len());
        for (p, o) in offsets {
            // An offset committed in an open transaction is not stable yet.
            let row = if allowed && require_stable && broker.groups.has_pending_txn_offset(group, &topic, p).await {
                row(p, None, ResponseError::UnstableOffsetCommit.code())
            } else if allowed {
                row(p, o, 0)
            } else {
                row(p, None, TOPIC_AUTHORIZATION_FAILED)
            };
            rows.push(row);
        }
        out.push((topic, rows));
    }
    out
}

pub async fn handle_offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.api_version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            if !group_allowed(broker, ctx, operation::DESCRIBE, &g.group_id) {
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(GROUP_AUTHORIZATION_FAILED),
                );
                continue;
            }
            if let Err(code) = broker
                .groups
                .check_offset_fetch_member(&g.group_id, g.member_id.as_deref(), g.member_epoch)
                .await
            {
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code),
                );
                continue;
            }
            {
                // v10 names topics by id (KIP-848).
                let by_id = ctx.api_version >= 10;
                let image = broker.image();
                let mut unknown_ids = Vec::new();
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .filter_map(|t| {
                            if !by_id {
                                return Some((t.name.to_string(), t.partition_indexes));
                            }
                            match image.topics.by_id(t.topic_id) {
                                Some(topic) => Some((topic.name.clone(), t.partition_indexes)),
                                None => {
                                    unknown_ids.push((t.topic_id, t.partition_indexes));
                                    None
                                }
                            }
                        })
                        .collect()
                });
                let unknown = unknown_ids.into_iter().map(|(id, partitions)| {
                    OffsetFetchResponseTopics::default().with_topic_id(id).with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(StrBytes::default()))
                                    .with_error_code(ResponseError::UnknownTopicId.code())
                            })
                            .collect(),
                    )
                });
                let topics = visible_offsets(broker, ctx, &g.group_id, wanted, req.require_stable)
                    .await
                    .into_iter()
                    .map(|(topic, rows)| {
                        let id = image.topics.get(&topic).map(|t| t.id).unwrap_or_default();
                        OffsetFetchResponseTopics::default()
                            .with_topic_id(id)
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                rows.into_iter()
                                    .map(|r| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(r.partition)
                                            .with_committed_offset(r.offset)
                                            .with_committed_leader_epoch(r.epoch)
                                            .with_metadata(Some(r.metadata))
                                            .with_error_code(r.error)
                                    })
                                    .collect(),
                            )
                    })
                    .chain(unknown)
                    .collect();
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(topics),
                );
            }
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group_ok = group_allowed(broker, ctx, operation::DESCRIBE, &req.group_id);
    if !group_ok && ctx.api_version >= 2 {
        return OffsetFetchResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = visible_offsets(broker, ctx, &req.group_id, wanted, req.require_stable)
        .await
        .into_iter()
        .map(|(topic, rows)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    rows.into_iter()
                        .map(|r| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(r.partition)
                                .with_committed_offset(if group_ok { r.offset } else { -1 })
                                .with_committed_leader_epoch(if ctx.api_version >= 5 { r.epoch } else { -1 })
                                .with_metadata(Some(r.metadata))
                                // v1 has no group-level error: each partition carries it.
                                .with_error_code(if group_ok { r.error } else { GROUP_AUTHORIZATION_FAILED })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub async fn handle_offset_delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !group_allowed(broker, ctx, operation::DELETE, &req.group_id) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    let allowed: Vec<bool> = req
        .topics
        .iter()
        .map(|t| topic_allowed(broker, ctx, operation::READ, &t.name))
        .collect();
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&allowed)
        .filter(|(_, ok)| **ok)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let (top, codes) = broker.groups.delete_offsets(&req.group_id, &partitions).await;
    if top != 0 {
        return OffsetDeleteResponse::default().with_error_code(top);
    }
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .zip(allowed)
        .map(|(t, ok)| {
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        let code = if ok {
                            codes.next().unwrap_or(0)
                        } else {
                            TOPIC_AUTHORIZATION_FAILED
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect(),
            )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
