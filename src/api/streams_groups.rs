//! The streams group protocol of KIP-1071: StreamsGroupHeartbeat and
//! StreamsGroupDescribe. The group coordinator does the work; this maps the
//! wire messages to it and creates the internal topics it asks for, as
//! Kafka's broker does after the heartbeat.

use super::groups::group_allowed;
use super::metadata::authorized_operations;
use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::config::group::effective_value;
use crate::group::streams_group::{StreamsGroup, Subtopology, Tasks, TopicInfo, Topology};
use crate::group::streams_heartbeat::{StreamsAnswer, StreamsHeartbeat, StreamsSettings};
use crate::metadata::controller::NewTopic;
use crate::metadata::features::STREAMS_VERSION;
use crate::metadata::records::ConfigResource;
use kafka_protocol::messages::streams_group_describe_response as describe;
use kafka_protocol::messages::streams_group_heartbeat_request as request;
use kafka_protocol::messages::streams_group_heartbeat_response as response;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;
use tracing::{debug, warn};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

const ACCEPTABLE_RECOVERY_LAG: i64 = 10_000;

const GROUP_OPERATIONS: &[i8] = &[operation::READ, operation::DESCRIBE, operation::DELETE];

/// A group's streams settings: its group configs, else the broker's.
fn settings(broker: &Broker, group: &str) -> StreamsSettings {
    let image = broker.image();
    let props: BTreeMap<String, String> = broker
        .config
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let overrides = image.configs_of(&ConfigResource::Group(group.to_string()));
    let int = |name: &str, default: i64| {
        effective_value(name, &props, overrides)
            .trim()
            .parse::<i64>()
            .unwrap_or(default)
    };
    let d = StreamsSettings::default();
    StreamsSettings {
        session_timeout_ms: int("streams.session.timeout.ms", d.session_timeout_ms as i64) as i32,
        heartbeat_interval_ms: int("streams.heartbeat.interval.ms", d.heartbeat_interval_ms as i64) as i32,
        num_standby_replicas: int("streams.num.standby.replicas", d.num_standby_replicas as i64) as i32,
        initial_rebalance_delay_ms: int("streams.initial.rebalance.delay.ms", d.initial_rebalance_delay_ms),
        task_offset_interval_ms: int("streams.task.offset.interval.ms", d.task_offset_interval_ms as i64) as i32,
    }
}

fn tasks(list: Option<Vec<request::TaskIds>>) -> Option<Tasks> {
    list.map(|ts| {
        let mut out = Tasks::new();
        for t in ts {
            out.entry(t.subtopology_id.to_string())
                .or_default()
                .extend(t.partitions);
        }
        out
    })
}

fn topic_info(t: &request::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name.to_string(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs: t
            .topic_configs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    }
}

fn topology(t: &request::Topology) -> Topology {
    let subtopologies = t
        .subtopologies
        .iter()
        .map(|st| {
            let sources: Vec<String> = st.source_topics.iter().map(|n| n.to_string()).collect();
            let repartition: Vec<TopicInfo> = st.repartition_source_topics.iter().map(topic_info).collect();
            let name_at = |names: &[String], i: &i16| names.get(*i as usize).cloned();
            let repartition_names: Vec<String> = repartition.iter().map(|r| r.name.clone()).collect();
            Subtopology {
                id: st.subtopology_id.to_string(),
                copartition_groups: st
                    .copartition_groups
                    .iter()
                    .map(|g| {
                        g.source_topics
                            .iter()
                            .filter_map(|i| name_at(&sources, i))
                            .chain(
                                g.repartition_source_topics
                                    .iter()
                                    .filter_map(|i| name_at(&repartition_names, i)),
                            )
                            .collect()
                    })
                    .collect(),
                source_topics: sources,
                repartition_sink_topics: st.repartition_sink_topics.iter().map(|n| n.to_string()).collect(),
                changelog_topics: st.state_changelog_topics.iter().map(topic_info).collect(),
                repartition_source_topics: repartition,
            }
        })
        .collect();
    Topology {
        epoch: t.epoch,
        subtopologies,
    }
}

fn error_response(code: i16, message: &str) -> StreamsGroupHeartbeatResponse {
    StreamsGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(Some(s(message)))
}

pub async fn handle_heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: StreamsGroupHeartbeatRequest,
) -> StreamsGroupHeartbeatResponse {
    if !broker.feature_at_least(STREAMS_VERSION, 1) {
        // Kafka answers with an empty status list.
        return StreamsGroupHeartbeatResponse::default()
            .with_error_code(E::UnsupportedVersion.code())
            .with_status(Some(Vec::new()));
    }
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return StreamsGroupHeartbeatResponse::default().with_error_code(E::GroupAuthorizationFailed.code());
    }
    if let Some(t) = &req.topology {
        if t.subtopologies.iter().any(|st| !st.source_topic_regex.is_empty()) {
            return error_response(
                E::InvalidRequest.code(),
                "Regular expressions for source topics are not supported yet.",
            );
        }
    }
    let group = req.group_id.to_string();
    let heartbeat = StreamsHeartbeat {
        group_id: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        endpoint_information_epoch: req.endpoint_information_epoch,
        instance_id: req.instance_id.map(|i| i.to_string()),
        rack_id: req.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topology: req.topology.as_ref().map(topology),
        active: tasks(req.active_tasks),
        standby: tasks(req.standby_tasks),
        warmup: tasks(req.warmup_tasks),
        process_id: req.process_id.map(|p| p.to_string()),
        user_endpoint: req.user_endpoint.map(|e| (e.host.to_string(), e.port)),
        client_tags: req.client_tags.map(|tags| {
            tags.into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }),
        shutdown_application: req.shutdown_application,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        settings: settings(broker, &group),
    };
    let answer = broker.groups.streams_heartbeat(heartbeat).await;
    if !answer.topics_to_create.is_empty() {
        create_internal_topics(broker, ctx, &answer.topics_to_create).await;
    }
    to_response(answer, ctx.api_version)
}

/// Creates the internal topics a streams group needs, as Kafka's broker
/// does for the group coordinator (with the topology's configs).
async fn create_internal_topics(broker: &Broker, ctx: &RequestContext, topics: &[TopicInfo]) {
    let allowed = |name: &str| {
        broker.authorize(ctx, operation::CREATE, resource::CLUSTER, "kafka-cluster")
            || broker.authorize(ctx, operation::CREATE, resource::TOPIC, name)
    };
    let new: Vec<NewTopic> = topics
        .iter()
        .filter(|t| allowed(&t.name))
        .map(|t| NewTopic {
            name: t.name.clone(),
            partitions: t.partitions,
            replication_factor: if t.replication_factor > 0 {
                t.replication_factor
            } else {
                broker.config.default_replication_factor
            },
            configs: t.configs.iter().cloned().collect(),
            assignments: None,
        })
        .collect();
    if new.is_empty() {
        return;
    }
    match broker.controller.create_topics(new, false).await {
        Ok(results) => {
            for r in results {
                if let Err(e) = r {
                    if e.code() != E::TopicAlreadyExists.code() {
                        warn!(error = %e, "could not create a streams group's internal topic");
                    }
                }
            }
        }
        Err(e) => debug!(error = %e, "internal topics of a streams group not created"),
    }
}

fn response_tasks(tasks: &Tasks) -> Vec<response::TaskIds> {
    tasks
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(sub, ps)| {
            response::TaskIds::default()
                .with_subtopology_id(s(sub))
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

fn to_response(a: StreamsAnswer, version: i16) -> StreamsGroupHeartbeatResponse {
    let topic_partitions = |by_topic: &BTreeMap<String, Vec<i32>>| {
        by_topic
            .iter()
            .map(|(t, ps)| {
                response::TopicPartition::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps.clone())
            })
            .collect()
    };
    let endpoints = a.partitions_by_endpoint.map(|list| {
        list.iter()
            .map(|e| {
                response::EndpointToPartitions::default()
                    .with_user_endpoint(
                        response::Endpoint::default()
                            .with_host(s(&e.endpoint.0))
                            .with_port(e.endpoint.1),
                    )
                    .with_active_partitions(topic_partitions(&e.active))
                    .with_standby_partitions(topic_partitions(&e.standby))
            })
            .collect()
    });
    let status = (!a.status.is_empty()).then(|| {
        a.status
            .iter()
            .map(|(code, detail)| {
                response::Status::default()
                    .with_status_code(*code)
                    .with_status_detail(s(detail))
            })
            .collect()
    });
    let mut r = StreamsGroupHeartbeatResponse::default()
        .with_error_code(a.error_code)
        .with_error_message(a.error_message.as_deref().map(s))
        .with_member_id(s(&a.member_id))
        .with_member_epoch(a.member_epoch)
        .with_heartbeat_interval_ms(a.heartbeat_interval_ms)
        .with_task_offset_interval_ms(a.task_offset_interval_ms)
        .with_status(status)
        .with_endpoint_information_epoch(a.endpoint_information_epoch)
        .with_partitions_by_user_endpoint(endpoints);
    // Kafka's default acceptable.recovery.lag, which it announces (v1 widened it).
    if version >= 1 {
        r = r.with_acceptable_recovery_lag(ACCEPTABLE_RECOVERY_LAG);
    } else {
        r = r.with_acceptable_recovery_lag_legacy(ACCEPTABLE_RECOVERY_LAG as i32);
    }
    if let Some(t) = a.tasks {
        r = r
            .with_active_tasks(Some(response_tasks(&t.active)))
            .with_standby_tasks(Some(response_tasks(&t.standby)))
            .with_warmup_tasks(Some(response_tasks(&t.warmup)));
    }
    r
}

fn described_tasks(active: &Tasks, standby: &Tasks) -> describe::Assignment {
    let list = |t: &Tasks| -> Vec<describe::TaskIds> {
        t.iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(sub, ps)| {
                describe::TaskIds::default()
                    .with_subtopology_id(s(sub))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect()
    };
    describe::Assignment::default()
        .with_active_tasks(list(active))
        .with_standby_tasks(list(standby))
}

fn described_topology(t: &Topology) -> describe::Topology {
    let info = |i: &TopicInfo| {
        describe::TopicInfo::default()
            .with_name(TopicName(s(&i.name)))
            .with_partitions(i.partitions)
            .with_replication_factor(i.replication_factor)
            .with_topic_configs(
                i.configs
                    .iter()
                    .map(|(k, v)| describe::KeyValue::default().with_key(s(k)).with_value(s(v)))
                    .collect(),
            )
    };
    describe::Topology::default()
        .with_epoch(t.epoch)
        .with_subtopologies(Some(
            t.subtopologies
                .iter()
                .map(|st| {
                    describe::Subtopology::default()
                        .with_subtopology_id(s(&st.id))
                        .with_source_topics(st.source_topics.iter().map(|n| TopicName(s(n))).collect())
                        .with_repartition_sink_topics(
                            st.repartition_sink_topics.iter().map(|n| TopicName(s(n))).collect(),
                        )
                        .with_state_changelog_topics(st.changelog_topics.iter().map(info).collect())
                        .with_repartition_source_topics(st.repartition_source_topics.iter().map(info).collect())
                })
                .collect(),
        ))
}

fn described_group(g: &StreamsGroup) -> Vec<describe::Member> {
    g.members
        .values()
        .map(|m| {
            let target = g.target.get(&m.id).cloned().unwrap_or_default();
            let target_standby = g.target_standby.get(&m.id).cloned().unwrap_or_default();
            describe::Member::default()
                .with_member_id(s(&m.id))
                .with_member_epoch(m.member_epoch)
                .with_instance_id(m.instance_id.as_deref().map(s))
                .with_rack_id(m.rack_id.as_deref().map(s))
                .with_client_id(s(&m.client_id))
                .with_client_host(s(&m.client_host))
                .with_topology_epoch(m.topology_epoch)
                .with_process_id(s(&m.process_id))
                .with_user_endpoint(
                    m.user_endpoint
                        .as_ref()
                        .map(|(host, port)| describe::Endpoint::default().with_host(s(host)).with_port(*port)),
                )
                .with_client_tags(
                    m.client_tags
                        .iter()
                        .map(|(k, v)| describe::KeyValue::default().with_key(s(k)).with_value(s(v)))
                        .collect(),
                )
                .with_assignment(described_tasks(&m.active, &m.standby))
                .with_target_assignment(described_tasks(&target, &target_standby))
        })
        .collect()
}

pub async fn handle_describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: StreamsGroupDescribeRequest,
) -> StreamsGroupDescribeResponse {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let answer = describe::DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        if !group_allowed(broker, ctx, operation::DESCRIBE, &id) {
            groups.push(answer.with_error_code(E::GroupAuthorizationFailed.code()));
            continue;
        }
        let g = match broker.groups.describe_streams_group(&id).await {
            Ok(g) => g,
            Err((code, message)) => {
                groups.push(
                    answer
                        .with_error_code(code)
                        .with_error_message((!message.is_empty()).then(|| s(&message))),
                );
                continue;
            }
        };
        let ops = if req.include_authorized_operations {
            authorized_operations(broker, ctx, resource::GROUP, &id, GROUP_OPERATIONS)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
        groups.push(
            answer
                .with_group_state(s(g.state_name()))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(Some(s("sticky")))
                .with_topology(g.topology.as_ref().map(described_topology))
                .with_members(described_group(&g))
                .with_authorized_operations(ops),
        );
    }
    StreamsGroupDescribeResponse::default().with_groups(groups)
}

/// StreamsGroupTopologyDescriptionUpdate (KIP-1331): Kafka takes topology
/// descriptions only into a plugin; with none configured (as here) it
/// refuses them, and never asks clients for one.
pub async fn handle_topology_description_update(
    broker: &Broker,
    ctx: &RequestContext,
    req: StreamsGroupTopologyDescriptionUpdateRequest,
) -> StreamsGroupTopologyDescriptionUpdateResponse {
    let response = StreamsGroupTopologyDescriptionUpdateResponse::default();
    if !broker.feature_at_least(STREAMS_VERSION, 1) {
        return response.with_error_code(E::UnsupportedVersion.code());
    }
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return response.with_error_code(E::GroupAuthorizationFailed.code());
    }
    response
        .with_error_code(E::UnsupportedVersion.code())
        .with_error_message(Some(s(
            "The broker has no streams group topology description plugin configured.",
        )))
}
