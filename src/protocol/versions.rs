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

const fn api(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange {
        key,
        min,
        max,
        served_min: min,
    }
}

pub const APIS: &[ApiRange] = &[
    ApiRange {
        key: ApiKey::Produce,
        min: 0,
        max: 13,
        served_min: 3,
    },
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
    // Transactions, Kafka's first protocol (transaction.version 1): v4 of
    // AddPartitionsToTxn is broker-to-broker, EndTxn v5 and later belong to KIP-890.
    api(ApiKey::AddPartitionsToTxn, 0, 3),
    api(ApiKey::AddOffsetsToTxn, 0, 3),
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 3),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 2),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
];

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
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised version must be one the codec can decode.
    #[test]
    fn served_versions_are_within_the_codec() {
        fn check<T: Message>(r: &ApiRange) {
            assert!(r.served_min >= T::VERSIONS.min, "{:?}", r.key);
            assert!(r.max <= T::VERSIONS.max, "{:?}", r.key);
        }
        for r in APIS {
            match r.key {
                ApiKey::Produce => check::<ProduceRequest>(r),
                ApiKey::Fetch => check::<FetchRequest>(r),
                ApiKey::ListOffsets => check::<ListOffsetsRequest>(r),
                ApiKey::Metadata => check::<MetadataRequest>(r),
                ApiKey::FindCoordinator => check::<FindCoordinatorRequest>(r),
                ApiKey::ApiVersions => check::<ApiVersionsRequest>(r),
                ApiKey::CreateTopics => check::<CreateTopicsRequest>(r),
                ApiKey::DeleteTopics => check::<DeleteTopicsRequest>(r),
                ApiKey::DeleteRecords => check::<DeleteRecordsRequest>(r),
                ApiKey::InitProducerId => check::<InitProducerIdRequest>(r),
                ApiKey::DescribeConfigs => check::<DescribeConfigsRequest>(r),
                ApiKey::CreatePartitions => check::<CreatePartitionsRequest>(r),
                ApiKey::DescribeCluster => check::<DescribeClusterRequest>(r),
                ApiKey::OffsetCommit => check::<OffsetCommitRequest>(r),
                ApiKey::OffsetFetch => check::<OffsetFetchRequest>(r),
                ApiKey::JoinGroup => check::<JoinGroupRequest>(r),
                ApiKey::Heartbeat => check::<HeartbeatRequest>(r),
                ApiKey::LeaveGroup => check::<LeaveGroupRequest>(r),
                ApiKey::SyncGroup => check::<SyncGroupRequest>(r),
                ApiKey::DescribeGroups => check::<DescribeGroupsRequest>(r),
                ApiKey::ListGroups => check::<ListGroupsRequest>(r),
                ApiKey::DeleteGroups => check::<DeleteGroupsRequest>(r),
                ApiKey::OffsetDelete => check::<OffsetDeleteRequest>(r),
                ApiKey::AlterConfigs => check::<AlterConfigsRequest>(r),
                ApiKey::IncrementalAlterConfigs => check::<IncrementalAlterConfigsRequest>(r),
                ApiKey::DescribeLogDirs => check::<DescribeLogDirsRequest>(r),
                ApiKey::DescribeTopicPartitions => check::<DescribeTopicPartitionsRequest>(r),
                ApiKey::DescribeProducers => check::<DescribeProducersRequest>(r),
                ApiKey::ElectLeaders => check::<ElectLeadersRequest>(r),
                ApiKey::ListPartitionReassignments => check::<ListPartitionReassignmentsRequest>(r),
                ApiKey::OffsetForLeaderEpoch => check::<OffsetForLeaderEpochRequest>(r),
                ApiKey::SaslHandshake => check::<SaslHandshakeRequest>(r),
                ApiKey::SaslAuthenticate => check::<SaslAuthenticateRequest>(r),
                ApiKey::CreateAcls => check::<CreateAclsRequest>(r),
                ApiKey::DescribeAcls => check::<DescribeAclsRequest>(r),
                ApiKey::DeleteAcls => check::<DeleteAclsRequest>(r),
                ApiKey::AlterUserScramCredentials => check::<AlterUserScramCredentialsRequest>(r),
                ApiKey::DescribeUserScramCredentials => check::<DescribeUserScramCredentialsRequest>(r),
                ApiKey::DescribeClientQuotas => check::<DescribeClientQuotasRequest>(r),
                ApiKey::AlterClientQuotas => check::<AlterClientQuotasRequest>(r),
                ApiKey::AddPartitionsToTxn => check::<AddPartitionsToTxnRequest>(r),
                ApiKey::AddOffsetsToTxn => check::<AddOffsetsToTxnRequest>(r),
                ApiKey::EndTxn => check::<EndTxnRequest>(r),
                ApiKey::TxnOffsetCommit => check::<TxnOffsetCommitRequest>(r),
                ApiKey::DescribeTransactions => check::<DescribeTransactionsRequest>(r),
                ApiKey::ListTransactions => check::<ListTransactionsRequest>(r),
                ApiKey::WriteTxnMarkers => check::<WriteTxnMarkersRequest>(r),
                other => panic!("no codec check for {other:?}"),
            }
        }
    }
}
