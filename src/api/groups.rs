//! Group membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the
//! group administration APIs DescribeGroups, ListGroups and DeleteGroups.

use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::{operation, resource};
use crate::broker::Broker;
use crate::group::{JoinRequest, LeavingMember, SyncRequest};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Kafka shows client addresses as `/ip`.
const GROUP_AUTHORIZATION_FAILED: i16 = ResponseError::GroupAuthorizationFailed.code();

pub fn group_allowed(broker: &Broker, ctx: &RequestContext, op: i8, group: &str) -> bool {
    broker.authorize(ctx, op, resource::GROUP, group)
}

fn client_host(ctx: &RequestContext) -> String {
    format!("/{}", ctx.peer.ip())
}

pub async fn handle_join_group(broker: &Broker, ctx: &RequestContext, req: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.api_version;
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(GROUP_AUTHORIZATION_FAILED)
            .with_generation_id(-1)
            .with_member_id(req.member_id)
            .with_protocol_name(if version < 7 { Some(StrBytes::default()) } else { None });
    }
    let request = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: client_host(ctx),
        session_timeout_ms: req.session_timeout_ms,
        // v0 had no rebalance timeout: the session timeout served for both.
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        // Filled in by the coordinator when the group needs them.
        topics: Default::default(),
    };
    let mut response = broker.groups.join(request, &broker.shutdown).await;
    if version < 7 && response.protocol_name.is_none() {
        // Not nullable before v7.
        response.protocol_name = Some(StrBytes::default());
    }
    response
}

pub async fn handle_sync_group(broker: &Broker, ctx: &RequestContext, req: SyncGroupRequest) -> SyncGroupResponse {
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    let request = SyncRequest {
        group_id: req.group_id.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    broker.groups.sync(request, &broker.shutdown).await
}

pub async fn handle_heartbeat(broker: &Broker, ctx: &RequestContext, req: HeartbeatRequest) -> HeartbeatResponse {
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    let code = broker
        .groups
        .heartbeat(
            &req.group_id,
            req.generation_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
        )
        .await;
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn handle_leave_group(broker: &Broker, ctx: &RequestContext, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if !group_allowed(broker, ctx, operation::READ, &req.group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    // v3 leaves members in a batch; earlier versions name one member.
    let batched = ctx.api_version >= 3;
    let leaving: Vec<LeavingMember> = if batched {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            instance_id: None,
        }]
    };
    let (top, per_member) = broker.groups.leave(&req.group_id, &leaving).await;
    if !batched {
        let code = if top != 0 {
            top
        } else {
            per_member.first().copied().unwrap_or(0)
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = leaving
        .iter()
        .zip(per_member)
        .map(|(l, code)| {
            MemberResponse::default()
                .with_member_id(s(&l.member_id))
                .with_group_instance_id(l.instance_id.as_deref().map(s))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(if top == 0 { members } else { Vec::new() })
}

pub async fn handle_describe_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.api_version;
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let answer = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        if !group_allowed(broker, ctx, operation::DESCRIBE, &id) {
            groups.push(answer.with_error_code(GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let described = match broker.groups.describe(&id).await {
            Ok(g) => answer
                .with_group_state(s(g.state.name()))
                .with_protocol_type(s(&g.protocol_type))
                .with_protocol_data(s(&g.protocol))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|(member_id, instance, client_id, host, metadata, assignment)| {
                            DescribedGroupMember::default()
                                .with_member_id(s(&member_id))
                                .with_group_instance_id(instance.as_deref().map(s))
                                .with_client_id(s(&client_id))
                                .with_client_host(s(&host))
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment)
                        })
                        .collect(),
                ),
            // Kafka answers an unknown group (or one of another type) as a
            // dead one; from v6 with an error.
            Err(message) if version >= 6 => answer
                .with_group_state(s("Dead"))
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(s(&message))),
            Err(_) => answer.with_group_state(s("Dead")),
        };
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn handle_list_groups(broker: &Broker, ctx: &RequestContext, req: ListGroupsRequest) -> ListGroupsResponse {
    // Describe on the cluster shows every group; otherwise those the principal may describe.
    let all = broker.authorize_cluster(ctx, operation::DESCRIBE);
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|t| t.to_ascii_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .await
        .into_iter()
        .filter(|g| all || group_allowed(broker, ctx, operation::DESCRIBE, &g.group_id))
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(s(&g.group_id)))
                .with_protocol_type(s(&g.protocol_type))
                .with_group_state(s(g.state))
                .with_group_type(s(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn handle_delete_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let code = if group_allowed(broker, ctx, operation::DELETE, &id) {
            broker.groups.delete_group(&id).await
        } else {
            GROUP_AUTHORIZATION_FAILED
        };
        if code == 0 {
            // A share group's records state goes with it.
            let keys: Vec<_> = crate::share::durable::known_keys(&broker.shares, &broker.share_states, &id)
                .await
                .into_iter()
                .collect();
            crate::share::durable::delete_state(&broker.shares, &broker.persister(), &keys).await;
            broker.shares.forget(&id, |_| true);
        }
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}
