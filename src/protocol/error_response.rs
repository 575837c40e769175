//! A request's error response: the answer Kafka gives when it refuses a whole
//! request with one error (every partition or group carries the code), as
//! before closing a connection in the wrong SASL state.

use super::request::{ParsedRequest, RequestError};
use super::response::{encode_response, ResponseFrame};
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    SyncGroupResponse,
};
use kafka_protocol::protocol::Decodable;

/// The error response to `req` with `code` everywhere, or None for APIs
/// without one here (the connection then just closes).
pub fn error_response(req: &ParsedRequest, code: i16) -> Option<Result<ResponseFrame, RequestError>> {
    let (key, version, cid) = (req.api_key, req.version(), req.header.correlation_id);
    Some(match key {
        ApiKey::Produce => {
            let mut body = req.body.clone();
            let request = ProduceRequest::decode(&mut body, version).ok()?;
            encode_response(key, version, cid, &produce_error(request, code))
        }
        ApiKey::JoinGroup => encode_response(key, version, cid, &JoinGroupResponse::default().with_error_code(code)),
        ApiKey::SyncGroup => encode_response(key, version, cid, &SyncGroupResponse::default().with_error_code(code)),
        ApiKey::Heartbeat => encode_response(key, version, cid, &HeartbeatResponse::default().with_error_code(code)),
        ApiKey::LeaveGroup => encode_response(key, version, cid, &LeaveGroupResponse::default().with_error_code(code)),
        ApiKey::ListGroups => encode_response(key, version, cid, &ListGroupsResponse::default().with_error_code(code)),
        ApiKey::InitProducerId => encode_response(
            key,
            version,
            cid,
            &InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        _ => return None,
    })
}

fn produce_error(request: ProduceRequest, code: i16) -> ProduceResponse {
    let responses = request
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
