//! InitProducerId for idempotent producers: a fresh producer id, epoch 0.
//! Transactional ids need the transaction coordinator, which is not served yet.

use super::RequestContext;
use crate::broker::Broker;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::ResponseError;
use tracing::warn;

pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match req.transactional_id.as_ref().map(|t| t.as_str()) {
        None => {}
        Some("") => return response.with_error_code(ResponseError::InvalidRequest.code()),
        Some(_) => return response.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
    // Kafka gives an idempotent producer a new id on every call, even when it
    // names its previous one.
    match broker.cluster.allocate_producer_id() {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "could not reserve producer ids");
            response.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
