//! The error codes a response carries, wherever they sit in it, for the
//! per-API error counters.

use kafka_protocol::messages::*;

pub trait ErrorCodes {
    /// Every non-zero error code in the response.
    fn error_codes(&self) -> Vec<i16>;
}

fn nonzero(codes: impl IntoIterator<Item = i16>) -> Vec<i16> {
    codes.into_iter().filter(|c| *c != 0).collect()
}

macro_rules! error_codes {
    ($($ty:ty => |$r:ident| $codes:expr;)*) => {
        $(impl ErrorCodes for $ty {
            fn error_codes(&self) -> Vec<i16> {
                let $r = self;
                nonzero($codes)
            }
        })*
    };
}

error_codes! {
    ProduceResponse => |r| r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code));
    FetchResponse => |r| std::iter::once(r.error_code)
        .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    ListOffsetsResponse => |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    MetadataResponse => |r| std::iter::once(r.error_code).chain(r.topics.iter().map(|t| t.error_code));
    FindCoordinatorResponse => |r| std::iter::once(r.error_code).chain(r.coordinators.iter().map(|c| c.error_code));
    CreateTopicsResponse => |r| r.topics.iter().map(|t| t.error_code);
    DeleteTopicsResponse => |r| r.responses.iter().map(|t| t.error_code);
    DeleteRecordsResponse => |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    InitProducerIdResponse => |r| [r.error_code];
    DescribeConfigsResponse => |r| r.results.iter().map(|x| x.error_code);
    CreatePartitionsResponse => |r| r.results.iter().map(|x| x.error_code);
    DescribeClusterResponse => |r| [r.error_code];
    OffsetCommitResponse => |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    OffsetFetchResponse => |r| std::iter::once(r.error_code)
        .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
        .chain(r.groups.iter().map(|g| g.error_code))
        .chain(r.groups.iter().flat_map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))));
    JoinGroupResponse => |r| [r.error_code];
    SyncGroupResponse => |r| [r.error_code];
    HeartbeatResponse => |r| [r.error_code];
    LeaveGroupResponse => |r| std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code));
    DescribeGroupsResponse => |r| r.groups.iter().map(|g| g.error_code);
    ListGroupsResponse => |r| [r.error_code];
    DeleteGroupsResponse => |r| r.results.iter().map(|g| g.error_code);
    OffsetDeleteResponse => |r| std::iter::once(r.error_code)
        .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    AlterConfigsResponse => |r| r.responses.iter().map(|x| x.error_code);
    IncrementalAlterConfigsResponse => |r| r.responses.iter().map(|x| x.error_code);
    DescribeLogDirsResponse => |r| std::iter::once(r.error_code).chain(r.results.iter().map(|x| x.error_code));
    DescribeTopicPartitionsResponse => |r| r.topics.iter().map(|t| t.error_code);
    DescribeProducersResponse => |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ElectLeadersResponse => |r| std::iter::once(r.error_code)
        .chain(r.replica_election_results.iter().flat_map(|t| t.partition_result.iter().map(|p| p.error_code)));
    ListPartitionReassignmentsResponse => |r| [r.error_code];
    OffsetForLeaderEpochResponse => |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    SaslHandshakeResponse => |r| [r.error_code];
    SaslAuthenticateResponse => |r| [r.error_code];
    CreateAclsResponse => |r| r.results.iter().map(|x| x.error_code);
    DescribeAclsResponse => |r| [r.error_code];
    DeleteAclsResponse => |r| r.filter_results.iter().map(|x| x.error_code);
    AlterUserScramCredentialsResponse => |r| r.results.iter().map(|x| x.error_code);
    DescribeUserScramCredentialsResponse => |r| std::iter::once(r.error_code).chain(r.results.iter().map(|x| x.error_code));
    DescribeClientQuotasResponse => |r| std::iter::once(r.error_code);
    AlterClientQuotasResponse => |r| r.entries.iter().map(|e| e.error_code);
    AddPartitionsToTxnResponse => |r| r.results_by_topic_v3_and_below.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code));
    AddOffsetsToTxnResponse => |r| std::iter::once(r.error_code);
    EndTxnResponse => |r| std::iter::once(r.error_code);
    TxnOffsetCommitResponse => |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeTransactionsResponse => |r| r.transaction_states.iter().map(|t| t.error_code);
    ListTransactionsResponse => |r| std::iter::once(r.error_code);
    WriteTxnMarkersResponse => |r| r.markers.iter().flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
}

/// Kafka's name for an error code, e.g. UNKNOWN_TOPIC_OR_PARTITION.
pub fn error_name(code: i16) -> String {
    let Some(e) = kafka_protocol::ResponseError::try_from_code(code) else {
        return "NONE".into();
    };
    let camel = format!("{e:?}");
    if camel.starts_with("Unknown(") {
        return format!("CODE_{code}");
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_error_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30000), "CODE_30000");
    }
}
