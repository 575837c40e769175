//! Routes a parsed request to its handler (the registry's entry for its
//! API): decodes the body for the request's version, runs the handler, and
//! frames the response, counted and timed per API. Handlers never see the
//! socket; this module never sees storage.

use super::request::{ParsedRequest, RequestError};
use super::response::{ResponseFrame, Splice};
use crate::api::RequestContext;
use crate::broker::Broker;
use kafka_protocol::protocol::Decodable;

pub(super) fn decode<T: Decodable>(req: &ParsedRequest) -> Result<T, RequestError> {
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
    if crate::broker::forwarding::must_forward(broker, ctx, req.api_key) {
        // Boxed: every connection's future would otherwise be as large as this rare path.
        return Box::pin(crate::broker::forwarding::forward(broker, ctx, req)).await;
    }
    metrics::gauge!("sluice_requests_in_flight", "api" => api).increment(1.0);
    let result = super::registry::serve(broker, ctx, req, api).await;
    metrics::gauge!("sluice_requests_in_flight", "api" => api).decrement(1.0);
    metrics::counter!("sluice_requests_total", "api" => api).increment(1);
    metrics::histogram!("sluice_request_duration_seconds", "api" => api).record(started.elapsed().as_secs_f64());
    result
}

/// A response whose record sets (stand-ins) are sent from files.
pub struct WithFiles<R> {
    pub response: R,
    pub files: Vec<Splice>,
}

/// What a handler returns: a response, or (Produce with acks=0) maybe none,
/// with the record sets to send from files.
pub(super) trait Reply<R> {
    fn into_reply(self) -> Option<(R, Vec<Splice>)>;
}

impl<R> Reply<R> for R {
    fn into_reply(self) -> Option<(R, Vec<Splice>)> {
        Some((self, Vec::new()))
    }
}

impl<R> Reply<R> for Option<R> {
    fn into_reply(self) -> Option<(R, Vec<Splice>)> {
        self.map(|r| (r, Vec::new()))
    }
}

impl<R> Reply<R> for WithFiles<R> {
    fn into_reply(self) -> Option<(R, Vec<Splice>)> {
        Some((self.response, self.files))
    }
}
