//! ACLs over the protocol: CreateAcls, DescribeAcls and DeleteAcls (what
//! `kafka-acls` sends). Without an authorizer they answer SECURITY_DISABLED,
//! as Kafka does.

use super::RequestContext;
use crate::auth::acl::{operation, AclBinding, AclFilter};
use crate::broker::Broker;
use crate::metadata::ControllerError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;

fn msg(text: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.to_string()))
}

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

/// Why an ACL request is refused whole, if it is: there is no authorizer,
/// or the principal may not do `operation` on the cluster.
fn refusal(broker: &Broker, ctx: &RequestContext, operation: i8) -> Option<(i16, &'static str)> {
    if !broker.config.security.authorizer.enabled {
        return Some((E::SecurityDisabled.code(), NO_AUTHORIZER));
    }
    if !broker.authorize_cluster(ctx, operation) {
        return Some((E::ClusterAuthorizationFailed.code(), "Cluster authorization failed."));
    }
    None
}

pub async fn handle_create_acls(broker: &Broker, ctx: &RequestContext, req: CreateAclsRequest) -> CreateAclsResponse {
    let fail_all = |code: i16, text: &str| {
        CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| {
                    AclCreationResult::default()
                        .with_error_code(code)
                        .with_error_message(msg(text))
                })
                .collect(),
        )
    };
    if let Some((code, text)) = refusal(broker, ctx, operation::ALTER) {
        return fail_all(code, text);
    }
    let mut results = Vec::with_capacity(req.creations.len());
    let mut valid = Vec::new();
    for c in &req.creations {
        let binding = AclBinding {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        };
        match binding.invalid_reason() {
            Some(reason) => results.push(Some((E::InvalidRequest.code(), reason))),
            None => {
                valid.push(binding);
                results.push(None);
            }
        }
    }
    let stored = broker.controller.create_acls(valid).await;
    let results = results
        .into_iter()
        .map(|r| match (r, &stored) {
            // Kafka's controller fails the whole request, invalid entries included.
            (_, Err(e @ ControllerError::ExcessivelyLargeBatch)) => AclCreationResult::default()
                .with_error_code(e.code())
                .with_error_message(msg(&e.to_string())),
            (Some((code, reason)), _) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(msg(reason)),
            (None, Ok(())) => AclCreationResult::default(),
            (None, Err(e)) => AclCreationResult::default()
                .with_error_code(e.code())
                .with_error_message(msg(&e.to_string())),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn handle_describe_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some((code, text)) = refusal(broker, ctx, operation::DESCRIBE) {
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(msg(text));
    }
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.map(|n| n.to_string()),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.map(|p| p.to_string()),
        host: req.host_filter.map(|h| h.to_string()),
        operation: req.operation,
        permission: req.permission_type,
    };
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for a in broker.image().acls.iter().filter(|a| filter.matches(a)) {
        by_resource
            .entry((a.resource_type, a.resource_name.clone(), a.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(a.principal.clone()))
                    .with_host(StrBytes::from_string(a.host.clone()))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn handle_delete_acls(broker: &Broker, ctx: &RequestContext, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let fail_all = |code: i16, text: &str| {
        DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(code)
                        .with_error_message(msg(text))
                })
                .collect(),
        )
    };
    if let Some((code, text)) = refusal(broker, ctx, operation::ALTER) {
        return fail_all(code, text);
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
            pattern_type: f.pattern_type_filter,
            principal: f.principal_filter.as_ref().map(|p| p.to_string()),
            host: f.host_filter.as_ref().map(|h| h.to_string()),
            operation: f.operation,
            permission: f.permission_type,
        })
        .collect();
    match broker.controller.delete_acls(filters).await {
        Ok(matched) => DeleteAclsResponse::default().with_filter_results(
            matched
                .into_iter()
                .map(|acls| {
                    DeleteAclsFilterResult::default().with_matching_acls(
                        acls.into_iter()
                            .map(|a| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(a.resource_type)
                                    .with_resource_name(StrBytes::from_string(a.resource_name))
                                    .with_pattern_type(a.pattern_type)
                                    .with_principal(StrBytes::from_string(a.principal))
                                    .with_host(StrBytes::from_string(a.host))
                                    .with_operation(a.operation)
                                    .with_permission_type(a.permission)
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
        Err(e) => fail_all(e.code(), &e.to_string()),
    }
}
