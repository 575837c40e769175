//! The SASL gate of a SASL listener: until a connection has authenticated,
//! only ApiVersions, SaslHandshake and SaslAuthenticate are served, and
//! anything else closes it. The gate runs the handshake and the exchange
//! (through `auth::sasl`), names the principal, and ends sessions after
//! `connections.max.reauth.ms` unless the client re-authenticates.

use crate::auth::sasl::{Credentials, SaslExchange, Step};
use crate::config::security::{SaslMechanism, SaslSettings};
use crate::protocol::response::{encode_response, ResponseFrame};
use crate::protocol::{ParsedRequest, RequestError};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What to do with a request on a SASL listener.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it as usual.
    Pass,
    /// A SASL request: the gate answers it.
    Handle,
    /// Not allowed in this state: close the connection.
    Close(&'static str),
    /// Not SaslAuthenticate while an exchange is due: answer with the request's
    /// ILLEGAL_SASL_STATE error response, then close (as Kafka does).
    Refuse(&'static str),
}

/// An answer from the gate, and whether the connection must close after it.
pub struct GateReply {
    pub response: ResponseFrame,
    pub close: bool,
    /// The client failed to authenticate (wrong credentials and the like).
    pub failed: bool,
}

enum Pending {
    Nothing,
    Handshaken(SaslMechanism),
    Exchanging(SaslExchange),
}

/// How long a session lasts, as Kafka's SaslServerAuthenticator decides:
/// `connections.max.reauth.ms`, or until the credential expires, whichever
/// comes first; forever when neither is set.
fn session_lifetime(max_reauth: Option<Duration>, credential_expires_ms: Option<i64>, now_ms: i64) -> Option<Duration> {
    let until_expiry = credential_expires_ms.map(|e| Duration::from_millis(e.saturating_sub(now_ms).max(0) as u64));
    match (max_reauth, until_expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub struct SaslGate {
    mechanisms: Vec<SaslMechanism>,
    credentials: Arc<dyn Credentials>,
    max_reauth: Option<Duration>,
    principal: Option<String>,
    /// The session came from a delegation token (which may not manage tokens).
    token: bool,
    expires: Option<Instant>,
    /// When the last re-authentication began (Kafka allows one a second).
    last_reauth: Option<Instant>,
    pending: Pending,
}

impl SaslGate {
    pub fn new(settings: &SaslSettings, credentials: Arc<dyn Credentials>, max_reauth_ms: i64) -> SaslGate {
        SaslGate {
            mechanisms: settings.mechanisms.clone(),
            credentials,
            max_reauth: (max_reauth_ms > 0).then(|| Duration::from_millis(max_reauth_ms as u64)),
            principal: None,
            token: false,
            expires: None,
            last_reauth: None,
            pending: Pending::Nothing,
        }
    }

    /// The authenticated principal, while the session lasts.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Whether the session was opened with a delegation token.
    pub fn token_authenticated(&self) -> bool {
        self.token
    }

    pub fn decide(&self, api: ApiKey, now: Instant) -> Decision {
        match api {
            ApiKey::ApiVersions => Decision::Pass,
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Decision::Handle,
            _ if !matches!(self.pending, Pending::Nothing) => {
                Decision::Refuse("request during SASL authentication, where SaslAuthenticate is due")
            }
            _ if self.principal.is_none() => Decision::Close("request before SASL authentication"),
            _ if self.expires.is_some_and(|e| now >= e) => {
                Decision::Close("SASL session expired without re-authentication (connections.max.reauth.ms)")
            }
            _ => Decision::Pass,
        }
    }

    fn mechanism_names(&self) -> Vec<StrBytes> {
        self.mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect()
    }

    pub fn handle(&mut self, req: &ParsedRequest, peer: SocketAddr, now: Instant) -> Result<GateReply, RequestError> {
        let version = req.version();
        let cid = req.header.correlation_id;
        let decode_error = |reason: String| RequestError::Body {
            api: req.api_key,
            version,
            reason,
        };
        let mut body = req.body.clone();
        if req.api_key == ApiKey::SaslHandshake {
            let handshake =
                SaslHandshakeRequest::decode(&mut body, version).map_err(|e| decode_error(e.to_string()))?;
            if self.principal.is_some() && matches!(self.pending, Pending::Nothing) {
                // A re-authentication. Kafka takes one only while a session
                // lifetime applies and at most once a second; otherwise the
                // handshake is answered as on any authenticated connection.
                let too_soon = self
                    .last_reauth
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
                if self.expires.is_none() || too_soon {
                    warn!(
                        %peer,
                        reason = if too_soon { "within a second of the last" } else { "no session lifetime" },
                        "re-authentication refused"
                    );
                    let response =
                        SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code());
                    return Ok(GateReply {
                        response: encode_response(ApiKey::SaslHandshake, version, cid, &response)?,
                        close: false,
                        failed: false,
                    });
                }
                self.last_reauth = Some(now);
            }
            let wanted = SaslMechanism::parse(&handshake.mechanism).filter(|m| self.mechanisms.contains(m));
            let (code, close) = match (&self.pending, wanted) {
                (Pending::Exchanging(_), _) => (ResponseError::IllegalSaslState.code(), true),
                (_, Some(m)) => {
                    self.pending = Pending::Handshaken(m);
                    (0, false)
                }
                (_, None) => (ResponseError::UnsupportedSaslMechanism.code(), true),
            };
            let response = SaslHandshakeResponse::default()
                .with_error_code(code)
                .with_mechanisms(self.mechanism_names());
            return Ok(GateReply {
                response: encode_response(ApiKey::SaslHandshake, version, cid, &response)?,
                close,
                failed: false,
            });
        }
        let auth = SaslAuthenticateRequest::decode(&mut body, version).map_err(|e| decode_error(e.to_string()))?;
        let fail = |code: i16, message: String| {
            SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        let exchange = match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Exchanging(e) => Ok(e),
            Pending::Handshaken(m) => SaslExchange::start(m, self.credentials.clone()),
            Pending::Nothing => {
                let response = fail(
                    ResponseError::IllegalSaslState.code(),
                    "SaslAuthenticate before a SaslHandshake".into(),
                );
                return Ok(GateReply {
                    response: encode_response(ApiKey::SaslAuthenticate, version, cid, &response)?,
                    close: true,
                    failed: false,
                });
            }
        };
        let outcome = exchange.and_then(|mut e| e.step(&auth.auth_bytes).map(|step| (step, e)));
        let (response, close) = match outcome {
            Ok((Step::Continue(token), exchange)) => {
                self.pending = Pending::Exchanging(exchange);
                (SaslAuthenticateResponse::default().with_auth_bytes(token.into()), false)
            }
            Ok((
                Step::Done {
                    response,
                    principal,
                    token,
                    expires_ms,
                },
                exchange,
            )) => {
                if self.principal.as_ref().is_some_and(|p| *p != principal) {
                    warn!(%peer, principal = %principal, "re-authentication as another principal refused");
                    (
                        fail(
                            ResponseError::SaslAuthenticationFailed.code(),
                            "Cannot change principals during re-authentication".into(),
                        ),
                        true,
                    )
                } else {
                    info!(%peer, principal = %principal, mechanism = exchange.mechanism().name(), "authenticated");
                    self.principal = Some(principal);
                    self.token = token;
                    let lifetime = session_lifetime(self.max_reauth, expires_ms, crate::storage::now_ms());
                    self.expires = lifetime.map(|d| now + d);
                    let lifetime = lifetime.map_or(0, |d| d.as_millis() as i64);
                    (
                        SaslAuthenticateResponse::default()
                            .with_auth_bytes(response.into())
                            .with_session_lifetime_ms(if version >= 1 { lifetime } else { 0 }),
                        false,
                    )
                }
            }
            Err(e) => {
                warn!(%peer, error = %e, "SASL authentication failed");
                (
                    fail(ResponseError::SaslAuthenticationFailed.code(), e.to_string()),
                    true,
                )
            }
        };
        Ok(GateReply {
            response: encode_response(ApiKey::SaslAuthenticate, version, cid, &response)?,
            close,
            failed: response.error_code == ResponseError::SaslAuthenticationFailed.code(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_at_reauth_or_at_the_credentials_expiry() {
        let s = Duration::from_secs;
        assert_eq!(session_lifetime(None, None, 1000), None);
        assert_eq!(session_lifetime(Some(s(60)), None, 1000), Some(s(60)));
        assert_eq!(session_lifetime(None, Some(11_000), 1000), Some(s(10)));
        assert_eq!(session_lifetime(Some(s(5)), Some(11_000), 1000), Some(s(5)));
        assert_eq!(session_lifetime(Some(s(60)), Some(11_000), 1000), Some(s(10)));
        assert_eq!(session_lifetime(None, Some(500), 1000), Some(s(0)));
    }
}
