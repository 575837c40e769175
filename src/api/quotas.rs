//! DescribeClientQuotas: this broker enforces no client quotas, so none are
//! ever configured and every valid filter matches nothing. kafka-configs asks
//! for them before it lists SCRAM users.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const ENTITY_TYPES: &[&str] = &["user", "client-id", "ip"];
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

pub async fn handle_describe_client_quotas(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let fail = |code: i16, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if !broker.authorize_cluster(ctx, operation::DESCRIBE_CONFIGS) {
        return fail(
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        );
    }
    if let Err(message) = validate_filter(&req) {
        return fail(ResponseError::InvalidRequest.code(), message);
    }
    DescribeClientQuotasResponse::default().with_entries(Some(Vec::new()))
}

/// Kafka's checks on a quota filter, with its wording.
fn validate_filter(req: &DescribeClientQuotasRequest) -> Result<(), String> {
    let mut seen = Vec::new();
    for c in &req.components {
        let entity = c.entity_type.as_str();
        if !ENTITY_TYPES.contains(&entity) {
            return Err(format!("Custom entity type '{entity}' not supported"));
        }
        if seen.contains(&entity) {
            return Err(format!("Duplicate entity type in filter: {entity}"));
        }
        seen.push(entity);
        match (c.match_type, &c._match) {
            (MATCH_EXACT, None) => return Err(format!("Missing match name for entity type '{entity}'")),
            (MATCH_DEFAULT | MATCH_ANY, Some(_)) => {
                return Err(format!("Unexpected match name for entity type '{entity}'"))
            }
            (MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY, _) => {}
            (other, _) => return Err(format!("Unknown match type {other}")),
        }
    }
    Ok(())
}
