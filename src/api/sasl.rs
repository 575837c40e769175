//! SaslHandshake and SaslAuthenticate where no SASL exchange is due: on a
//! listener without SASL (the SASL gate answers them on SASL listeners), as
//! Kafka answers them, with ILLEGAL_SASL_STATE.

use super::RequestContext;
use crate::broker::Broker;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub async fn handle_sasl_handshake(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

pub async fn handle_sasl_authenticate(
    _broker: &Broker,
    _ctx: &RequestContext,
    _req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str(
            "SaslAuthenticate request received after successful authentication",
        )))
}
