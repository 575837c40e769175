//! One client connection: reads request frames, hands each to the dispatcher,
//! and writes responses back in request order. Requests on a connection are
//! served one at a time, as Kafka serves them, so pipelined requests are
//! answered in order; other connections are never held up. Anything that is
//! not a well-formed request closes this connection only.

use super::connection_limits::Slot;
use super::frame::{FrameError, FrameReader};
use super::listener::ListenerContext;
use super::outgoing::{write_frame, Outgoing};
use super::sasl_gate::{Decision, SaslGate};
use super::tls::certificate_principal;
use crate::api::RequestContext;
use crate::auth::ANONYMOUS;
use crate::broker::Broker;
use crate::config::security::SecurityProtocol;
use crate::protocol::error_response::error_response;
use crate::protocol::{dispatch, parse_request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info_span, warn, Instrument};

/// What requests are read from: the socket's read half, plain or TLS.
type Incoming = Box<dyn AsyncRead + Unpin + Send>;

/// A client has this long to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection; `slot` (its place under the connection limits) is
/// given back when it ends.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
    broker: Arc<Broker>,
    slot: Option<Slot>,
) {
    let span = info_span!("connection", %peer, listener = %listener.name);
    let name = listener.name.clone();
    metrics::counter!("sluice_connections_accepted_total", "listener" => name.clone()).increment(1);
    metrics::gauge!("sluice_connections_open", "listener" => name.clone()).increment(1.0);
    serve_inner(tcp, peer, listener, broker).instrument(span).await;
    drop(slot);
    metrics::gauge!("sluice_connections_open", "listener" => name.clone()).decrement(1.0);
    metrics::counter!("sluice_connections_closed_total", "listener" => name).increment(1);
}

/// `next` unless the connection stays silent longer than `max_idle`
/// (`connections.max.idle.ms`): then None.
async fn idle_limited<T>(max_idle: Option<Duration>, next: impl std::future::Future<Output = T>) -> Option<T> {
    match max_idle {
        Some(limit) => tokio::time::timeout(limit, next).await.ok(),
        None => Some(next.await),
    }
}

fn count_authentication_failure(listener: &str, mechanism: &'static str) {
    metrics::counter!(
        "sluice_authentication_failures_total",
        "listener" => listener.to_string(),
        "mechanism" => mechanism
    )
    .increment(1);
}

/// Kafka's allowTokenRequests: delegation tokens are managed only by a client
/// that proved who it is, and not with a token.
fn token_requests_allowed(protocol: SecurityProtocol, principal: &str, token_authenticated: bool) -> bool {
    match protocol {
        SecurityProtocol::Plaintext => false,
        SecurityProtocol::Ssl => principal != ANONYMOUS,
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => !token_authenticated,
    }
}

async fn serve_inner(tcp: TcpStream, peer: SocketAddr, listener: Arc<ListenerContext>, broker: Arc<Broker>) {
    let _ = tcp.set_nodelay(true);
    let (reader, mut writer, certificate_principal): (Incoming, Outgoing, Option<String>) = match &listener.tls {
        Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                let principal = listener
                    .principal_mapper
                    .as_ref()
                    .and_then(|m| certificate_principal(tls.get_ref().1.peer_certificates(), m));
                let (reader, writer) = tokio::io::split(tls);
                (Box::new(reader), Outgoing::Tls(writer), principal)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "closing connection: TLS handshake failed");
                count_authentication_failure(&listener.name, "TLS");
                return;
            }
            Err(_) => {
                warn!("closing connection: TLS handshake timed out");
                return;
            }
        },
        None => {
            let (reader, writer) = tcp.into_split();
            (Box::new(reader), Outgoing::Plain(writer), None)
        }
    };
    let mut principal: Arc<str> = Arc::from(certificate_principal.as_deref().unwrap_or(ANONYMOUS));
    let mut gate = listener
        .security
        .sasl
        .as_ref()
        .map(|s| SaslGate::new(s, listener.credentials.clone(), broker.config.security.max_reauth_ms));
    let mut frames =
        FrameReader::new(reader, broker.config.socket_request_max_bytes).with_memory(broker.request_memory.clone());
    debug!("accepted");
    let max_idle = broker.config.connection_limits.max_idle;
    loop {
        let next = tokio::select! {
            biased;
            _ = broker.shutdown.cancelled() => break,
            next = idle_limited(max_idle, frames.next_frame()) => next,
        };
        let Some(next) = next else {
            debug!(
                ?max_idle,
                "closing connection: idle longer than connections.max.idle.ms"
            );
            break;
        };
        let frame = match next {
            Ok(Some(frame)) => {
                metrics::counter!("sluice_socket_bytes_read_total", "listener" => listener.name.clone())
                    .increment(frame.len() as u64 + 4);
                frame
            }
            Ok(None) => {
                debug!("closed by the client");
                break;
            }
            Err(FrameError::Io(e)) => {
                // A client going away abruptly is not the broker's concern.
                debug!(error = %e, "connection lost");
                break;
            }
            Err(e) => {
                warn!(error = %e, "closing connection: bad frame");
                break;
            }
        };
        if crate::quorum::rpc::is_quorum_frame(&frame) {
            if !listener.is_controller {
                warn!("closing connection: a quorum frame on a client listener");
                break;
            }
            // Boxed: client connections should not carry the size of this future.
            let response = Box::pin(crate::broker::quorum_service::serve(&broker, &frame)).await;
            if writer.write_all(&response).await.is_err() || writer.flush().await.is_err() {
                break;
            }
            continue;
        }
        let request = match parse_request(frame) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "closing connection: bad request");
                break;
            }
        };
        if let Some(gate) = gate.as_mut() {
            let now = Instant::now();
            match gate.decide(request.api_key, now) {
                Decision::Pass => {}
                Decision::Close(reason) => {
                    warn!(api = ?request.api_key, reason, "closing connection");
                    break;
                }
                Decision::Refuse(reason) => {
                    warn!(api = ?request.api_key, reason, "closing connection");
                    let code = kafka_protocol::ResponseError::IllegalSaslState.code();
                    if let Some(Ok(response)) = error_response(&request, code) {
                        let _ = write_frame(&mut writer, &response).await;
                    }
                    break;
                }
                Decision::Handle => {
                    let reply = match gate.handle(&request, peer, now) {
                        Ok(reply) => reply,
                        Err(e) => {
                            warn!(error = %e, "closing connection: bad SASL request");
                            break;
                        }
                    };
                    if reply.failed {
                        count_authentication_failure(&listener.name, "SASL");
                    }
                    if let Some(p) = gate.principal() {
                        if *p != *principal {
                            principal = Arc::from(p);
                        }
                    }
                    if write_frame(&mut writer, &reply.response).await.is_err() || reply.close {
                        break;
                    }
                    continue;
                }
            }
        }
        let client_id = request.header.client_id.as_ref().map(|c| c.to_string());
        let span = tracing::info_span!(
            "request",
            api = ?request.api_key,
            version = request.version(),
            correlation_id = request.header.correlation_id,
            client_id = client_id.as_deref().unwrap_or(""),
        );
        let ctx = RequestContext {
            listener: listener.name.clone(),
            peer,
            client_id,
            api_version: request.version(),
            correlation_id: request.header.correlation_id,
            principal: principal.clone(),
            throttle_ms: Default::default(),
            forwarded: false,
            node_id: broker.node_id(),
            token_requests_allowed: token_requests_allowed(
                listener.security.protocol,
                &principal,
                gate.as_ref().is_some_and(|g| g.token_authenticated()),
            ),
        };
        match dispatch(&broker, &ctx, request).instrument(span.clone()).await {
            Ok(Some(response)) => {
                metrics::counter!("sluice_socket_bytes_written_total", "listener" => listener.name.clone())
                    .increment(response.len() as u64);
                if let Err(e) = write_frame(&mut writer, &response).await {
                    debug!(parent: &span, error = %e, "could not write response");
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(parent: &span, error = %e, "closing connection: request not served");
                break;
            }
        }
        // A client over its quota: read nothing more from it until it may go on (Kafka mutes its channel).
        let throttle_ms = ctx.throttle_ms.load(std::sync::atomic::Ordering::Relaxed);
        if throttle_ms > 0 {
            debug!(parent: &span, throttle_ms, "throttled by a client quota");
            tokio::select! {
                _ = broker.shutdown.cancelled() => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(throttle_ms as u64)) => {}
            }
        }
    }
}
