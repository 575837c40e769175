//! ApiVersions: the list of served APIs, and (v3+) the features this broker
//! supports and the cluster has finalized (`crate::metadata::features`). An
//! unsupported version gets Kafka's fallback: a v0 body with
//! UNSUPPORTED_VERSION and the list, so the client can pick a version it
//! shares with us.

use crate::broker::Broker;
use crate::metadata::features;
use crate::metadata::MetadataImage;
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
        &broker.image(),
    );
    encode_response(ApiKey::ApiVersions, version, correlation_id, &body)
}

/// Supported features (Kafka 4.4's range for each) and the levels the
/// cluster has finalized. The epoch is the metadata offset, as in Kafka:
/// clients take features only from an epoch of 0 or more, and look again
/// when it grows.
fn with_features(body: ApiVersionsResponse, image: &MetadataImage) -> ApiVersionsResponse {
    body.with_supported_features(
        features::SUPPORTED
            .iter()
            .map(|f| {
                SupportedFeatureKey::default()
                    .with_name(StrBytes::from_static_str(f.name))
                    .with_min_version(f.min)
                    .with_max_version(f.max)
            })
            .collect(),
    )
    .with_finalized_features_epoch(image.offset.max(0))
    .with_finalized_features(
        features::finalized(image)
            .into_iter()
            .map(|(name, level)| {
                FinalizedFeatureKey::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_min_version_level(level)
                    .with_max_version_level(level)
            })
            .collect(),
    )
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
