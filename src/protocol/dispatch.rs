//! Routes a parsed request to its handler: decodes the body for the request's
//! version, runs the handler, and frames the response. Handlers never see the
//! socket; this module never sees storage.

use super::request::{ParsedRequest, RequestError};
use super::response::{encode_response, encode_response_spliced, ResponseFrame};
use super::versions;
use crate::api::{self, RequestContext};
use crate::broker::Broker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

fn decode<T: Decodable>(req: &ParsedRequest) -> Result<T, RequestError> {
    let mut body = req.body.clone();
    T::decode(&mut body, req.version()).map_err(|e| RequestError::Body {
        api: req.api_key,
        version: req.version(),
        reason: e.to_string(),
    })
}

/// Handles one request, counted and timed per API. `Ok(None)` means no
/// response is due (acks=0).
pub async fn dispatch(
    broker: &Broker,
    ctx: &RequestContext,
    req: ParsedRequest,
) -> Result<Option<ResponseFrame>, RequestError> {
    let api = crate::metrics::api_name(req.api_key);
    let started = std::time::Instant::now();
    metrics::gauge!("sluice_requests_in_flight", "api" => api).increment(1.0);
    let result = dispatch_inner(broker, ctx, req, api).await;
    metrics::gauge!("sluice_requests_in_flight", "api" => api).decrement(1.0);
    metrics::counter!("sluice_requests_total", "api" => api).increment(1);
    metrics::histogram!("sluice_request_duration_seconds", "api" => api).record(started.elapsed().as_secs_f64());
    result
}

async fn dispatch_inner(
    broker: &Broker,
    ctx: &RequestContext,
    req: ParsedRequest,
    api: &'static str,
) -> Result<Option<ResponseFrame>, RequestError> {
    let version = req.version();
    let correlation_id = req.header.correlation_id;
    let key = req.api_key;
    if key == ApiKey::ApiVersions {
        return api::api_versions::respond(&req).map(Some);
    }
    if !versions::is_served(key, version) {
        return Err(RequestError::UnsupportedVersion { api: key, version });
    }
    macro_rules! serve {
        ($handler:path) => {{
            let request = decode(&req)?;
            let response = $handler(broker, ctx, request).await;
            crate::metrics::record_errors(api, &response);
            encode_response(key, version, correlation_id, &response).map(Some)
        }};
    }
    match key {
        ApiKey::Produce => {
            let request = decode(&req)?;
            match api::produce::handle(broker, ctx, request).await {
                Some(response) => {
                    crate::metrics::record_errors(api, &response);
                    encode_response(key, version, correlation_id, &response).map(Some)
                }
                None => Ok(None),
            }
        }
        ApiKey::Fetch => {
            let request = decode(&req)?;
            let response = api::fetch::handle(broker, ctx, request).await;
            crate::metrics::record_errors(api, &response);
            // Fetched batches go to the socket as read, not copied into the frame.
            let records = api::fetch::record_sets(&response);
            encode_response_spliced(key, version, correlation_id, &response, records).map(Some)
        }
        ApiKey::ListOffsets => serve!(api::list_offsets::handle),
        ApiKey::Metadata => serve!(api::metadata::handle),
        ApiKey::FindCoordinator => serve!(api::coordinator::handle_find_coordinator),
        ApiKey::CreateTopics => serve!(api::topics::handle_create_topics),
        ApiKey::DeleteTopics => serve!(api::topics::handle_delete_topics),
        ApiKey::CreatePartitions => serve!(api::topics::handle_create_partitions),
        ApiKey::DeleteRecords => serve!(api::delete_records::handle),
        ApiKey::InitProducerId => serve!(api::producers::handle_init_producer_id),
        ApiKey::DescribeConfigs => serve!(api::configs::handle_describe_configs),
        ApiKey::DescribeCluster => serve!(api::cluster::handle_describe_cluster),
        ApiKey::JoinGroup => serve!(api::groups::handle_join_group),
        ApiKey::SyncGroup => serve!(api::groups::handle_sync_group),
        ApiKey::Heartbeat => serve!(api::groups::handle_heartbeat),
        ApiKey::LeaveGroup => serve!(api::groups::handle_leave_group),
        ApiKey::DescribeGroups => serve!(api::groups::handle_describe_groups),
        ApiKey::ListGroups => serve!(api::groups::handle_list_groups),
        ApiKey::DeleteGroups => serve!(api::groups::handle_delete_groups),
        ApiKey::OffsetCommit => serve!(api::offsets::handle_offset_commit),
        ApiKey::OffsetFetch => serve!(api::offsets::handle_offset_fetch),
        ApiKey::OffsetDelete => serve!(api::offsets::handle_offset_delete),
        ApiKey::AlterConfigs => serve!(api::alter_configs::handle_alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            serve!(api::alter_configs::handle_incremental_alter_configs)
        }
        ApiKey::DescribeLogDirs => serve!(api::log_dirs::handle),
        ApiKey::DescribeTopicPartitions => serve!(api::metadata::handle_describe_topic_partitions),
        ApiKey::DescribeProducers => serve!(api::producers::handle_describe_producers),
        ApiKey::ElectLeaders => serve!(api::replicas::handle_elect_leaders),
        ApiKey::ListPartitionReassignments => {
            serve!(api::replicas::handle_list_partition_reassignments)
        }
        ApiKey::OffsetForLeaderEpoch => serve!(api::replicas::handle_offset_for_leader_epoch),
        ApiKey::SaslHandshake => serve!(api::sasl::handle_sasl_handshake),
        ApiKey::SaslAuthenticate => serve!(api::sasl::handle_sasl_authenticate),
        ApiKey::CreateAcls => serve!(api::acls::handle_create_acls),
        ApiKey::DescribeAcls => serve!(api::acls::handle_describe_acls),
        ApiKey::DeleteAcls => serve!(api::acls::handle_delete_acls),
        ApiKey::AlterUserScramCredentials => {
            serve!(api::scram::handle_alter_user_scram_credentials)
        }
        ApiKey::DescribeClientQuotas => serve!(api::quotas::handle_describe_client_quotas),
        ApiKey::AlterClientQuotas => serve!(api::quotas::handle_alter_client_quotas),
        ApiKey::AddPartitionsToTxn => serve!(api::txn::handle_add_partitions_to_txn),
        ApiKey::AddOffsetsToTxn => serve!(api::txn::handle_add_offsets_to_txn),
        ApiKey::EndTxn => serve!(api::txn::handle_end_txn),
        ApiKey::TxnOffsetCommit => serve!(api::txn::handle_txn_offset_commit),
        ApiKey::DescribeTransactions => serve!(api::txn::handle_describe_transactions),
        ApiKey::ListTransactions => serve!(api::txn::handle_list_transactions),
        ApiKey::WriteTxnMarkers => serve!(api::txn::handle_write_txn_markers),
        ApiKey::DescribeUserScramCredentials => {
            serve!(api::scram::handle_describe_user_scram_credentials)
        }
        other => Err(RequestError::UnsupportedVersion { api: other, version }),
    }
}
