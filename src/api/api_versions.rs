//! ApiVersions: the list of served APIs, and (v3+) the features this broker
//! supports and the cluster has finalized — only `transaction.version`, the
//! one whose behaviour Sluice implements (KIP-890: clients read it to end
//! transactions with a new epoch). An unsupported version gets Kafka's
//! fallback: a v0 body with UNSUPPORTED_VERSION and the list, so the client
//! can pick a version it shares with us.

use crate::broker::Broker;
use crate::protocol::response::encode_response;
use crate::protocol::versions;
use crate::protocol::{ParsedRequest, RequestError, ResponseFrame};
use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

pub fn respond(broker: &Broker, req: &ParsedRequest) -> Result<ResponseFrame, RequestError> {
    let version = req.version();
    let correlation_id = req.header.correlation_id;
    let list = versions::advertised();
    if !versions::is_served(ApiKey::ApiVersions, version) {
        let body = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(list);
        return encode_response(ApiKey::ApiVersions, 0, correlation_id, &body);
    }
    let mut body = req.body.clone();
    let error_code = match ApiVersionsRequest::decode(&mut body, version) {
        Ok(r) if version >= 3 && !valid_software_field(&r.client_software_name) => ResponseError::InvalidRequest.code(),
        Ok(r) if version >= 3 && !valid_software_field(&r.client_software_version) => {
            ResponseError::InvalidRequest.code()
        }
        // v5 (KIP-1242): a client that believes it talks to another cluster or
        // node must bootstrap again.
        Ok(r)
            if version >= 5
                && r.cluster_id
                    .as_deref()
                    .is_some_and(|id| id != broker.cluster_id.as_str()) =>
        {
            ResponseError::RebootstrapRequired.code()
        }
        Ok(r) if version >= 5 && r.node_id >= 0 && r.node_id != broker.config.node_id => {
            ResponseError::RebootstrapRequired.code()
        }
        Ok(_) => 0,
        Err(_) => ResponseError::InvalidRequest.code(),
    };
    let body = with_features(
        ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(list)
            .with_throttle_time_ms(0),
        broker.image().offset,
    );
    encode_response(ApiKey::ApiVersions, version, correlation_id, &body)
}

const TRANSACTION_VERSION: &str = "transaction.version";

/// Supported and finalized features, as Kafka 4.4 lists `transaction.version`
/// (levels 0 to 2, finalized at 2). The epoch is the metadata offset, as in
/// Kafka: clients take features only from an epoch of 0 or more, and look
/// again when it grows.
fn with_features(body: ApiVersionsResponse, metadata_offset: i64) -> ApiVersionsResponse {
    let level = crate::txn::TRANSACTION_VERSION;
    body.with_supported_features(vec![SupportedFeatureKey::default()
        .with_name(StrBytes::from_static_str(TRANSACTION_VERSION))
        .with_min_version(0)
        .with_max_version(level)])
        .with_finalized_features_epoch(metadata_offset.max(0))
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION))
            .with_min_version_level(level)
            .with_max_version_level(level)])
}

/// Kafka's rule for client software name and version: non-empty, letters,
/// digits, '.', '-' and nothing else, starting and ending with a letter or digit.
fn valid_software_field(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::valid_software_field;

    #[test]
    fn software_names() {
        assert!(valid_software_field("apache-kafka-java"));
        assert!(valid_software_field("2.16.1"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("a b"));
    }
}
