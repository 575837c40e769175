//! Client quotas: AlterClientQuotas and DescribeClientQuotas (what
//! `kafka-configs --entity-type users|clients|ips` sends), kept in the
//! cluster metadata. Produce and fetch byte rates are enforced (`crate::quota`);
//! request_percentage, controller_mutation_rate and connection_creation_rate
//! are stored and described only.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use crate::metadata::controller::QuotaChange;
use crate::metadata::image::ClientQuota;
use crate::quota::{IP_KEYS, USER_AND_CLIENT_KEYS};
use kafka_protocol::messages::alter_client_quotas_request::EntryData as AlterEntry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData as AlteredEntity, EntryData as AlteredEntry};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::net::IpAddr;

const ENTITY_TYPES: &[&str] = &["user", "client-id", "ip"];
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// Quota keys whose values are whole numbers (Kafka types them LONG or INT).
const INTEGRAL_KEYS: &[&str] = &["producer_byte_rate", "consumer_byte_rate", "connection_creation_rate"];

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
    let entries = broker
        .image()
        .client_quotas
        .iter()
        .filter(|q| filter_matches(&req, q))
        .map(|q| {
            DescribedEntry::default()
                .with_entity(
                    q.entity
                        .iter()
                        .map(|(t, n)| {
                            DescribedEntity::default()
                                .with_entity_type(StrBytes::from_string(t.clone()))
                                .with_entity_name(n.clone().map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    q.values
                        .iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(*v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// Whether a stored entity matches the filter: every component matches one of
/// its parts, and with `strict` it has no other parts.
fn filter_matches(req: &DescribeClientQuotasRequest, quota: &ClientQuota) -> bool {
    let all_match = req.components.iter().all(|c| {
        quota.entity.iter().any(|(t, n)| {
            t.as_str() == c.entity_type.as_str()
                && match c.match_type {
                    MATCH_EXACT => n.as_deref() == c._match.as_deref(),
                    MATCH_DEFAULT => n.is_none(),
                    _ => true,
                }
        })
    });
    all_match && (!req.strict || quota.entity.len() == req.components.len())
}

pub async fn handle_alter_client_quotas(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = broker.authorize_cluster(ctx, operation::ALTER_CONFIGS);
    let mut changes = Vec::new();
    let mut results = Vec::new();
    for entry in &req.entries {
        let outcome = if allowed {
            validate_entry(entry)
        } else {
            Err((ResponseError::ClusterAuthorizationFailed.code(), None))
        };
        let (code, message) = match outcome {
            Ok(change) => {
                changes.push(change);
                (0, None)
            }
            Err((code, message)) => (code, message),
        };
        results.push(
            AlteredEntry::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            AlteredEntity::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                ),
        );
    }
    if !req.validate_only && !changes.is_empty() {
        if let Err(e) = broker.controller.alter_client_quotas(changes).await {
            for r in results.iter_mut().filter(|r| r.error_code == 0) {
                r.error_code = ResponseError::UnknownServerError.code();
                r.error_message = Some(StrBytes::from_string(e.to_string()));
            }
        }
    }
    AlterClientQuotasResponse::default().with_entries(results)
}

/// Kafka's checks on one entry (ClientQuotaControlManager), with its wording.
fn validate_entry(entry: &AlterEntry) -> Result<QuotaChange, (i16, Option<String>)> {
    let invalid = |m: String| (ResponseError::InvalidRequest.code(), Some(m));
    if entry.entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    let mut entity: Vec<(String, Option<String>)> = Vec::new();
    for e in &entry.entity {
        let kind = e.entity_type.as_str();
        if entity.iter().any(|(t, _)| t == kind) {
            return Err(invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {kind}"
            )));
        }
        if !ENTITY_TYPES.contains(&kind) {
            return Err((
                ResponseError::UnsupportedVersion.code(),
                Some(format!("Unhandled client quota entity type: {kind}")),
            ));
        }
        let name = e.entity_name.as_ref().map(|n| n.to_string());
        if kind == "ip" && name.as_deref().is_some_and(|n| n.parse::<IpAddr>().is_err()) {
            return Err(invalid(format!(
                "Unable to resolve IP address of {}",
                name.unwrap_or_default()
            )));
        }
        if name.as_deref() == Some("") {
            return Err(invalid(format!("Empty {kind} not supported")));
        }
        entity.push((kind.to_string(), name));
    }
    let is_ip = entity.iter().any(|(t, _)| t == "ip");
    if is_ip && entity.len() > 1 {
        return Err(invalid(
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId".into(),
        ));
    }
    entity.sort();
    let valid_keys = if is_ip { IP_KEYS } else { USER_AND_CLIENT_KEYS };
    let mut ops = Vec::new();
    for op in &entry.ops {
        let key = op.key.as_str();
        if !valid_keys.contains(&key) {
            return Err(invalid(format!("Invalid configuration key {key}")));
        }
        if op.remove {
            ops.push((key.to_string(), None));
            continue;
        }
        // NaN and infinity are refused too: the metadata file could not hold them.
        if !op.value.is_finite() || op.value <= 0.0 {
            return Err(invalid(format!("Quota {key} must be greater than 0")));
        }
        if INTEGRAL_KEYS.contains(&key) && op.value.fract().abs() > 1e-6 {
            return Err(invalid(format!("{key} cannot be a fractional value.")));
        }
        ops.push((key.to_string(), Some(op.value)));
    }
    Ok(QuotaChange { entity, ops })
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, OpData};

    fn entry(entity: &[(&str, Option<&str>)], key: &str, value: f64) -> AlterEntry {
        AlterEntry::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(StrBytes::from_string(t.to_string()))
                            .with_entity_name(n.map(|n| StrBytes::from_string(n.to_string())))
                    })
                    .collect(),
            )
            .with_ops(vec![OpData::default()
                .with_key(StrBytes::from_string(key.to_string()))
                .with_value(value)])
    }

    #[test]
    fn values_the_metadata_file_cannot_hold_are_refused() {
        let client = [("client-id", Some("app"))];
        for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0, 10.5] {
            let refused = validate_entry(&entry(&client, "producer_byte_rate", bad)).err();
            assert_eq!(
                refused.map(|(code, _)| code),
                Some(ResponseError::InvalidRequest.code()),
                "{bad}"
            );
        }
        let change = validate_entry(&entry(
            &[("user", Some("u")), ("client-id", None)],
            "request_percentage",
            12.5,
        ))
        .expect("valid");
        assert_eq!(
            change.entity,
            vec![
                ("client-id".to_string(), None),
                ("user".to_string(), Some("u".to_string()))
            ]
        );
    }

    #[test]
    fn entities_are_checked_as_kafka_checks_them() {
        let code = |e: &[(&str, Option<&str>)], key: &str| validate_entry(&entry(e, key, 1.0)).err().map(|(c, _)| c);
        let invalid = Some(ResponseError::InvalidRequest.code());
        assert_eq!(code(&[], "producer_byte_rate"), invalid);
        assert_eq!(code(&[("user", Some(""))], "producer_byte_rate"), invalid);
        assert_eq!(code(&[("ip", Some("not-an-ip"))], "connection_creation_rate"), invalid);
        assert_eq!(
            code(&[("ip", None), ("user", None)], "connection_creation_rate"),
            invalid
        );
        assert_eq!(code(&[("ip", Some("10.0.0.1"))], "producer_byte_rate"), invalid);
        assert_eq!(
            code(&[("group", Some("g"))], "producer_byte_rate"),
            Some(ResponseError::UnsupportedVersion.code())
        );
        assert_eq!(code(&[("ip", Some("10.0.0.1"))], "connection_creation_rate"), None);
    }
}
