//! OAUTHBEARER (RFC 7628, KIP-255) as Kafka serves it: the client's initial
//! response carries a bearer token; a validator (unsecured tokens, claims
//! alone, or signatures checked against JWKS keys) turns it into a
//! principal and the instant the credential expires, which bounds the session.

pub mod initial_response;
pub mod jwks;
pub mod jwt;
pub mod validator;

/// A token that passed its validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerToken {
    /// The principal's name, from the configured subject claim.
    pub principal: String,
    /// When the token expires (ms since the epoch): the session ends there.
    pub expires_ms: i64,
}

/// Why a token was refused: what the client is told (Kafka's JSON status) and
/// what the broker's log says (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A required scope that was missing, for `insufficient_scope`.
    pub scope: Option<String>,
    pub reason: String,
}

impl Rejection {
    pub fn invalid(reason: impl Into<String>) -> Rejection {
        Rejection {
            scope: None,
            reason: reason.into(),
        }
    }

    /// The server's error challenge, as Kafka's OAuthBearerSaslServer words it.
    pub fn challenge(&self) -> String {
        match &self.scope {
            None => r#"{"status":"invalid_token"}"#.to_string(),
            Some(scope) => format!(r#"{{"status":"insufficient_scope", "scope":"{scope}"}}"#),
        }
    }
}
