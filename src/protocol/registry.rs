//! The registry of served APIs: the one place that says, for each API, the
//! versions advertised and served, the handler, and where its response
//! carries error codes (for the per-API error counters). Adding an API is
//! one entry here and its handler in `api/`.

use super::dispatch::{decode, Reply};
use super::request::{ParsedRequest, RequestError};
use super::response::{encode_response_spliced, ResponseFrame, Splice};
use super::versions::ApiRange;
use crate::api::{self, RequestContext};
use crate::broker::Broker;
use crate::metrics::ErrorCodes;
use bytes::Bytes;
use kafka_protocol::messages::*;

fn nonzero(codes: impl IntoIterator<Item = i16>) -> Vec<i16> {
    codes.into_iter().filter(|c| *c != 0).collect()
}

/// Response bodies that go out as they are (no record sets spliced in).
fn no_splices<R>(_: &R) -> Vec<Bytes> {
    Vec::new()
}

macro_rules! served_min {
    ($min:literal) => {
        $min
    };
    ($min:literal, $served:literal) => {
        $served
    };
}

macro_rules! splices {
    () => {
        no_splices
    };
    ($splice:path) => {
        $splice
    };
}

/// Serves one request of an entry: `handler` entries decode the body and call
/// the handler; `raw` entries get the parsed request (ApiVersions answers
/// even versions it does not serve).
macro_rules! serve_entry {
    (handler $handler:path, $key:ident, $resp:ty, $splice:expr, $broker:ident, $ctx:ident, $req:ident, $api:ident) => {{
        if !super::versions::is_served(ApiKey::$key, $req.version()) {
            return Err(RequestError::UnsupportedVersion {
                api: ApiKey::$key,
                version: $req.version(),
            });
        }
        let request = decode(&$req)?;
        let reply: Option<($resp, Vec<Splice>)> = Reply::into_reply($handler($broker, $ctx, request).await);
        match reply {
            Some((response, files)) => {
                crate::metrics::record_errors($api, &response);
                // Files first: a stand-in is also among the response's record
                // sets, and the first splice that matches is the one used.
                let mut splices = files;
                splices.extend(($splice)(&response).into_iter().map(Splice::Bytes));
                encode_response_spliced(
                    ApiKey::$key,
                    $req.version(),
                    $req.header.correlation_id,
                    &response,
                    splices,
                )
                .map(Some)
            }
            None => Ok(None),
        }
    }};
    (raw $respond:path, $key:ident, $resp:ty, $splice:expr, $broker:ident, $ctx:ident, $req:ident, $api:ident) => {{
        let _ = ($ctx, $api);
        $respond($broker, &$req).map(Some)
    }};
}

macro_rules! registry {
    ($(
        $key:ident: $req:ty => $resp:ty,
        versions $min:literal ..= $max:literal $(served from $served:literal)?,
        $kind:ident $handler:path
        $(, splice $splice:path)?,
        errors |$r:ident| $codes:expr;
    )*) => {
        /// Every API served, with the versions ApiVersions advertises.
        pub const APIS: &[ApiRange] = &[$(
            ApiRange {
                key: ApiKey::$key,
                min: $min,
                max: $max,
                served_min: served_min!($min $(, $served)?),
            },
        )*];

        $(impl ErrorCodes for $resp {
            fn error_codes(&self) -> Vec<i16> {
                let $r = self;
                nonzero($codes)
            }
        })*

        /// Serves a request of any registered API. `Ok(None)`: no response is due.
        pub async fn serve(
            broker: &Broker,
            ctx: &RequestContext,
            req: ParsedRequest,
            api: &'static str,
        ) -> Result<Option<ResponseFrame>, RequestError> {
            match req.api_key {
                $(ApiKey::$key => serve_entry!(
                    $kind $handler, $key, $resp, splices!($($splice)?), broker, ctx, req, api
                ),)*
                other => Err(RequestError::UnsupportedVersion {
                    api: other,
                    version: req.version(),
                }),
            }
        }

        /// Decodes a request's body as its handler would, without serving it:
        /// the entry point of the request fuzz target (fuzz/), so that it
        /// decodes exactly the APIs and versions the broker serves.
        #[doc(hidden)]
        pub fn decode_body(req: &ParsedRequest) -> Result<(), RequestError> {
            match req.api_key {
                $(ApiKey::$key => {
                    if !super::versions::is_served(ApiKey::$key, req.version()) {
                        return Err(RequestError::UnsupportedVersion {
                            api: ApiKey::$key,
                            version: req.version(),
                        });
                    }
                    decode::<$req>(req).map(drop)
                })*
                other => Err(RequestError::UnsupportedVersion {
                    api: other,
                    version: req.version(),
                }),
            }
        }

        /// The versions the codec knows for each registered API's request.
        #[cfg(test)]
        pub fn codec_versions() -> Vec<(ApiKey, i16, i16)> {
            use kafka_protocol::protocol::Message;
            vec![$((ApiKey::$key, <$req as Message>::VERSIONS.min, <$req as Message>::VERSIONS.max),)*]
        }
    };
}

registry! {
    // Kafka 4 advertises Produce v0-v2 without serving them: librdkafka before
    // 2.10 stops compressing when they are absent from the list.
    Produce: ProduceRequest => ProduceResponse, versions 0..=13 served from 3, handler api::produce::handle,
        errors |r| r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code));
    // Fetched batches go to the socket from their files, not copied into the frame.
    Fetch: FetchRequest => FetchResponse, versions 4..=18, handler api::fetch::handle, splice api::fetch::record_sets,
        errors |r| std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse, versions 1..=11, handler api::list_offsets::handle,
        errors |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    Metadata: MetadataRequest => MetadataResponse, versions 0..=13, handler api::metadata::handle,
        errors |r| std::iter::once(r.error_code).chain(r.topics.iter().map(|t| t.error_code));
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse, versions 0..=6,
        handler api::coordinator::handle_find_coordinator,
        errors |r| std::iter::once(r.error_code).chain(r.coordinators.iter().map(|c| c.error_code));
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse, versions 0..=5, raw api::api_versions::respond,
        errors |r| [r.error_code];
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse, versions 2..=7, handler api::topics::handle_create_topics,
        errors |r| r.topics.iter().map(|t| t.error_code);
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse, versions 1..=6, handler api::topics::handle_delete_topics,
        errors |r| r.responses.iter().map(|t| t.error_code);
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse, versions 0..=2, handler api::delete_records::handle,
        errors |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse, versions 0..=5,
        handler api::producers::handle_init_producer_id,
        errors |r| [r.error_code];
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse, versions 1..=4,
        handler api::configs::handle_describe_configs,
        errors |r| r.results.iter().map(|x| x.error_code);
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse, versions 0..=3,
        handler api::topics::handle_create_partitions,
        errors |r| r.results.iter().map(|x| x.error_code);
    DescribeQuorum: DescribeQuorumRequest => DescribeQuorumResponse, versions 0..=2, handler api::quorum::handle,
        errors |r| std::iter::once(r.error_code)
            .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    AddRaftVoter: AddRaftVoterRequest => AddRaftVoterResponse, versions 0..=1,
        handler api::raft_voters::handle_add_raft_voter,
        errors |r| [r.error_code];
    RemoveRaftVoter: RemoveRaftVoterRequest => RemoveRaftVoterResponse, versions 0..=0,
        handler api::raft_voters::handle_remove_raft_voter,
        errors |r| [r.error_code];
    UpdateFeatures: UpdateFeaturesRequest => UpdateFeaturesResponse, versions 0..=2,
        handler api::features::handle_update_features,
        errors |r| std::iter::once(r.error_code).chain(r.results.iter().map(|x| x.error_code));
    DescribeCluster: DescribeClusterRequest => DescribeClusterResponse, versions 0..=2,
        handler api::cluster::handle_describe_cluster,
        errors |r| [r.error_code];
    UnregisterBroker: UnregisterBrokerRequest => UnregisterBrokerResponse, versions 0..=0,
        handler api::cluster::handle_unregister_broker,
        errors |r| [r.error_code];
    UnregisterController: UnregisterControllerRequest => UnregisterControllerResponse, versions 0..=0,
        handler api::cluster::handle_unregister_controller,
        errors |r| [r.error_code];
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse, versions 2..=10, handler api::offsets::handle_offset_commit,
        errors |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse, versions 1..=10, handler api::offsets::handle_offset_fetch,
        errors |r| std::iter::once(r.error_code)
            .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .chain(r.groups.iter().map(|g| g.error_code))
            .chain(r.groups.iter().flat_map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))));
    JoinGroup: JoinGroupRequest => JoinGroupResponse, versions 0..=9, handler api::groups::handle_join_group,
        errors |r| [r.error_code];
    Heartbeat: HeartbeatRequest => HeartbeatResponse, versions 0..=4, handler api::groups::handle_heartbeat,
        errors |r| [r.error_code];
    LeaveGroup: LeaveGroupRequest => LeaveGroupResponse, versions 0..=5, handler api::groups::handle_leave_group,
        errors |r| std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code));
    SyncGroup: SyncGroupRequest => SyncGroupResponse, versions 0..=5, handler api::groups::handle_sync_group,
        errors |r| [r.error_code];
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse, versions 0..=6,
        handler api::groups::handle_describe_groups,
        errors |r| r.groups.iter().map(|g| g.error_code);
    ListGroups: ListGroupsRequest => ListGroupsResponse, versions 0..=5, handler api::groups::handle_list_groups,
        errors |r| [r.error_code];
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse, versions 0..=3, handler api::groups::handle_delete_groups,
        errors |r| r.results.iter().map(|g| g.error_code);
    ConsumerGroupHeartbeat: ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse, versions 0..=1,
        handler api::consumer_groups::handle_heartbeat,
        errors |r| [r.error_code];
    ConsumerGroupDescribe: ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse, versions 0..=1,
        handler api::consumer_groups::handle_describe,
        errors |r| r.groups.iter().map(|g| g.error_code);
    // Streams groups (KIP-1071).
    StreamsGroupHeartbeat: StreamsGroupHeartbeatRequest => StreamsGroupHeartbeatResponse, versions 0..=1,
        handler api::streams_groups::handle_heartbeat,
        errors |r| [r.error_code];
    StreamsGroupDescribe: StreamsGroupDescribeRequest => StreamsGroupDescribeResponse, versions 0..=1,
        handler api::streams_groups::handle_describe,
        errors |r| r.groups.iter().map(|g| g.error_code);
    StreamsGroupTopologyDescriptionUpdate: StreamsGroupTopologyDescriptionUpdateRequest
        => StreamsGroupTopologyDescriptionUpdateResponse, versions 0..=0,
        handler api::streams_groups::handle_topology_description_update,
        errors |r| [r.error_code];
    // Share groups (KIP-932).
    ShareGroupHeartbeat: ShareGroupHeartbeatRequest => ShareGroupHeartbeatResponse, versions 1..=1,
        handler api::share_groups::handle_heartbeat,
        errors |r| [r.error_code];
    ShareGroupDescribe: ShareGroupDescribeRequest => ShareGroupDescribeResponse, versions 1..=1,
        handler api::share_groups::handle_describe,
        errors |r| r.groups.iter().map(|g| g.error_code);
    // Fetched batches go to the socket as read, as Fetch's.
    ShareFetch: ShareFetchRequest => ShareFetchResponse, versions 1..=2, handler api::share_fetch::handle_share_fetch,
        splice api::share_fetch::record_sets,
        errors |r| std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    ShareAcknowledge: ShareAcknowledgeRequest => ShareAcknowledgeResponse, versions 1..=2,
        handler api::share_fetch::handle_share_acknowledge,
        errors |r| std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    DescribeShareGroupOffsets: DescribeShareGroupOffsetsRequest => DescribeShareGroupOffsetsResponse, versions 0..=1,
        handler api::share_group_offsets::handle_describe_offsets,
        errors |r| r.groups.iter().map(|g| g.error_code);
    AlterShareGroupOffsets: AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse, versions 0..=0,
        handler api::share_group_offsets::handle_alter,
        errors |r| std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    DeleteShareGroupOffsets: DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse, versions 0..=0,
        handler api::share_group_offsets::handle_delete,
        errors |r| std::iter::once(r.error_code).chain(r.responses.iter().map(|t| t.error_code));
    // The share coordinator's, between brokers.
    InitializeShareGroupState: InitializeShareGroupStateRequest => InitializeShareGroupStateResponse, versions 0..=0,
        handler api::share_group_state::handle_initialize,
        errors |r| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ReadShareGroupState: ReadShareGroupStateRequest => ReadShareGroupStateResponse, versions 0..=0,
        handler api::share_group_state::handle_read,
        errors |r| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    WriteShareGroupState: WriteShareGroupStateRequest => WriteShareGroupStateResponse, versions 0..=1,
        handler api::share_group_state::handle_write,
        errors |r| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DeleteShareGroupState: DeleteShareGroupStateRequest => DeleteShareGroupStateResponse, versions 0..=0,
        handler api::share_group_state::handle_delete,
        errors |r| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ReadShareGroupStateSummary: ReadShareGroupStateSummaryRequest => ReadShareGroupStateSummaryResponse, versions 0..=1,
        handler api::share_group_state::handle_summary,
        errors |r| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ListConfigResources: ListConfigResourcesRequest => ListConfigResourcesResponse, versions 0..=1,
        handler api::config_resources::handle,
        errors |r| [r.error_code];
    OffsetDelete: OffsetDeleteRequest => OffsetDeleteResponse, versions 0..=0, handler api::offsets::handle_offset_delete,
        errors |r| std::iter::once(r.error_code)
            .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    AlterConfigs: AlterConfigsRequest => AlterConfigsResponse, versions 0..=2,
        handler api::alter_configs::handle_alter_configs,
        errors |r| r.responses.iter().map(|x| x.error_code);
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, versions 0..=1,
        handler api::alter_configs::handle_incremental_alter_configs,
        errors |r| r.responses.iter().map(|x| x.error_code);
    AlterReplicaLogDirs: AlterReplicaLogDirsRequest => AlterReplicaLogDirsResponse, versions 1..=2,
        handler api::log_dirs::handle_alter_replica_log_dirs,
        errors |r| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeLogDirs: DescribeLogDirsRequest => DescribeLogDirsResponse, versions 1..=5, handler api::log_dirs::handle,
        errors |r| std::iter::once(r.error_code).chain(r.results.iter().map(|x| x.error_code));
    DescribeTopicPartitions: DescribeTopicPartitionsRequest => DescribeTopicPartitionsResponse, versions 0..=0,
        handler api::metadata::handle_describe_topic_partitions,
        errors |r| r.topics.iter().map(|t| t.error_code);
    DescribeProducers: DescribeProducersRequest => DescribeProducersResponse, versions 0..=0,
        handler api::producers::handle_describe_producers,
        errors |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ElectLeaders: ElectLeadersRequest => ElectLeadersResponse, versions 0..=2, handler api::replicas::handle_elect_leaders,
        errors |r| std::iter::once(r.error_code)
            .chain(r.replica_election_results.iter().flat_map(|t| t.partition_result.iter().map(|p| p.error_code)));
    ListPartitionReassignments: ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse,
        versions 0..=0, handler api::reassignments::handle_list_partition_reassignments,
        errors |r| [r.error_code];
    AlterPartitionReassignments: AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse,
        versions 0..=1, handler api::reassignments::handle_alter_partition_reassignments,
        errors |r| std::iter::once(r.error_code)
            .chain(r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    OffsetForLeaderEpoch: OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse, versions 2..=4,
        handler api::replicas::handle_offset_for_leader_epoch,
        errors |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse, versions 0..=1, handler api::sasl::handle_sasl_handshake,
        errors |r| [r.error_code];
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse, versions 0..=2,
        handler api::sasl::handle_sasl_authenticate,
        errors |r| [r.error_code];
    CreateAcls: CreateAclsRequest => CreateAclsResponse, versions 1..=3, handler api::acls::handle_create_acls,
        errors |r| r.results.iter().map(|x| x.error_code);
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse, versions 1..=3, handler api::acls::handle_describe_acls,
        errors |r| [r.error_code];
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse, versions 1..=3, handler api::acls::handle_delete_acls,
        errors |r| r.filter_results.iter().map(|x| x.error_code);
    DescribeClientQuotas: DescribeClientQuotasRequest => DescribeClientQuotasResponse, versions 0..=1,
        handler api::quotas::handle_describe_client_quotas,
        errors |r| [r.error_code];
    AlterClientQuotas: AlterClientQuotasRequest => AlterClientQuotasResponse, versions 0..=1,
        handler api::quotas::handle_alter_client_quotas,
        errors |r| r.entries.iter().map(|e| e.error_code);
    // Transactions: clients speak version 1 up to AddPartitionsToTxn v3, EndTxn v4 and
    // TxnOffsetCommit v4, version 2 (KIP-890) above; AddPartitionsToTxn v4+ is brokers'.
    AddPartitionsToTxn: AddPartitionsToTxnRequest => AddPartitionsToTxnResponse, versions 0..=5,
        handler api::txn::handle_add_partitions_to_txn,
        errors |r| std::iter::once(r.error_code)
            .chain(r.results_by_topic_v3_and_below.iter()
                .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code)))
            .chain(r.results_by_transaction.iter().flat_map(|x| x.topic_results.iter()
                .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))));
    AddOffsetsToTxn: AddOffsetsToTxnRequest => AddOffsetsToTxnResponse, versions 0..=4,
        handler api::txn::handle_add_offsets_to_txn,
        errors |r| [r.error_code];
    EndTxn: EndTxnRequest => EndTxnResponse, versions 0..=5, handler api::txn::handle_end_txn,
        errors |r| [r.error_code];
    TxnOffsetCommit: TxnOffsetCommitRequest => TxnOffsetCommitResponse, versions 0..=6,
        handler api::txn::handle_txn_offset_commit,
        errors |r| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeTransactions: DescribeTransactionsRequest => DescribeTransactionsResponse, versions 0..=0,
        handler api::txn::handle_describe_transactions,
        errors |r| r.transaction_states.iter().map(|t| t.error_code);
    ListTransactions: ListTransactionsRequest => ListTransactionsResponse, versions 0..=2,
        handler api::txn::handle_list_transactions,
        errors |r| [r.error_code];
    WriteTxnMarkers: WriteTxnMarkersRequest => WriteTxnMarkersResponse, versions 1..=2,
        handler api::txn::handle_write_txn_markers,
        errors |r| r.markers.iter()
            .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)));
    AlterUserScramCredentials: AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse,
        versions 0..=0, handler api::scram::handle_alter_user_scram_credentials,
        errors |r| r.results.iter().map(|x| x.error_code);
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse,
        versions 0..=0, handler api::scram::handle_describe_user_scram_credentials,
        errors |r| std::iter::once(r.error_code).chain(r.results.iter().map(|x| x.error_code));
    CreateDelegationToken: CreateDelegationTokenRequest => CreateDelegationTokenResponse,
        versions 1..=3, handler api::delegation_tokens::handle_create_delegation_token,
        errors |r| [r.error_code];
    RenewDelegationToken: RenewDelegationTokenRequest => RenewDelegationTokenResponse,
        versions 1..=2, handler api::delegation_tokens::handle_renew_delegation_token,
        errors |r| [r.error_code];
    ExpireDelegationToken: ExpireDelegationTokenRequest => ExpireDelegationTokenResponse,
        versions 1..=2, handler api::delegation_tokens::handle_expire_delegation_token,
        errors |r| [r.error_code];
    DescribeDelegationToken: DescribeDelegationTokenRequest => DescribeDelegationTokenResponse,
        versions 1..=3, handler api::delegation_tokens::handle_describe_delegation_token,
        errors |r| [r.error_code];
}
