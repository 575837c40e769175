//! The APIs and versions this broker serves, which ApiVersions advertises.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

pub struct ApiRange {
    pub key: ApiKey,
    /// Lowest version advertised.
    pub min: i16,
    pub max: i16,
    /// Lowest version actually served; below it (but at or above `min`) the
    /// request is refused. Only Produce differs: Kafka 4 advertises v0-v2
    /// without serving them because librdkafka before 2.10 stops compressing
    /// when Produce v0-v2 are absent from the list.
    pub served_min: i16,
}

pub use super::registry::APIS;

pub fn range(key: ApiKey) -> Option<&'static ApiRange> {
    APIS.iter().find(|a| a.key == key)
}

/// True when a request of this key and version gets a real answer.
pub fn is_served(key: ApiKey, version: i16) -> bool {
    range(key).is_some_and(|r| version >= r.served_min && version <= r.max)
}

pub fn advertised() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every advertised version must be one the codec can decode.
    #[test]
    fn served_versions_are_within_the_codec() {
        let codec = super::super::registry::codec_versions();
        assert_eq!(codec.len(), APIS.len());
        for (r, (key, min, max)) in APIS.iter().zip(codec) {
            assert_eq!(r.key, key);
            assert!(r.served_min >= min && r.min <= r.served_min, "{key:?}");
            assert!(r.max <= max, "{key:?}");
        }
    }
}
