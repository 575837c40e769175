//! One SASL authentication exchange on the server side: PLAIN against
//! configured users (through rsasl), SCRAM-SHA-256/512 against stored
//! credentials or delegation tokens (`scram_server`), OAUTHBEARER against the
//! listener's token validator (`oauthbearer`). The exchange does no I/O of
//! its own: each client token in, one server token out.

use super::gssapi::{GssStep, GssapiExchange, Kerberos};
use super::oauthbearer::initial_response;
use super::oauthbearer::validator::TokenValidator;
use super::scram::{ScramCredential, ScramMechanism};
use super::scram_server::{self, constant_time_eq, AwaitingFinal, ClientFirst};
use crate::config::security::SaslMechanism;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechname::Mechname;
use rsasl::prelude::{SASLConfig, SASLServer, Session, SessionError, State};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use std::sync::Arc;
use thiserror::Error;

/// A delegation token a client may log in with, and whose rights it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLogin {
    /// "User:alice".
    pub owner: String,
    pub credential: ScramCredential,
}

/// Where credentials come from.
pub trait Credentials: Send + Sync {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
    fn plain_password(&self, user: &str) -> Option<String>;
    /// A live delegation token by id (none when tokens are off).
    fn token(&self, _token_id: &str, _mechanism: ScramMechanism) -> Option<TokenLogin> {
        None
    }
    /// The listener's OAUTHBEARER validator (none when the mechanism is off).
    fn bearer(&self) -> Option<Arc<TokenValidator>> {
        None
    }
    /// The listener's Kerberos identity (none when GSSAPI is off).
    fn kerberos(&self) -> Option<Arc<Kerberos>> {
        None
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SaslError {
    /// What the client is told: Kafka's wording, never which part was wrong.
    #[error("{}", invalid_credentials_message(.0))]
    InvalidCredentials(&'static str),
    #[error("SASL mechanism {0} is not available")]
    Unavailable(&'static str),
    /// Refused with a message of Kafka's that the client may see as it is.
    #[error("{0}")]
    Rejected(String),
}

/// Kafka's PLAIN server words a failure its own way; the SCRAM one's is generic.
fn invalid_credentials_message(mechanism: &str) -> String {
    if mechanism == "PLAIN" {
        "Authentication failed: Invalid username or password".to_string()
    } else {
        format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        )
    }
}

struct Authenticated;

impl Validation for Authenticated {
    type Value = Option<String>;
}

/// rsasl's callback for PLAIN: the listener's users.
struct PlainUsers {
    credentials: Arc<dyn Credentials>,
}

impl SessionCallback for PlainUsers {
    fn callback(&self, _session: &SessionData, _context: &Context, _request: &mut Request) -> Result<(), SessionError> {
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let Some(user) = context.get_ref::<AuthId>() else {
            return Ok(());
        };
        // An authorization id, when given, must be the user itself (as in Kafka).
        let other_authzid = context.get_ref::<AuthzId>().is_some_and(|z| !z.is_empty() && z != user);
        let given = context.get_ref::<Password>().unwrap_or_default();
        let accepted = !other_authzid
            && self
                .credentials
                .plain_password(user)
                .is_some_and(|expected| constant_time_eq(expected.as_bytes(), given));
        let user = user.to_string();
        validate.with::<Authenticated, _>(|| Ok(accepted.then_some(user)))?;
        Ok(())
    }
}

/// The result of one step of the exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this token and wait for the client's next one.
    Continue(Vec<u8>),
    /// Authenticated as `principal` ("User:alice"); send the last token.
    /// `token`: through a delegation token, which may not manage tokens.
    Done {
        response: Vec<u8>,
        principal: String,
        token: bool,
        /// When the credential expires (ms since the epoch): an OAUTHBEARER
        /// token's `exp`, which bounds the session.
        expires_ms: Option<i64>,
    },
}

enum Exchange {
    Plain(Box<Session<Authenticated>>),
    ScramFirst(ScramMechanism),
    ScramFinal {
        state: Box<AwaitingFinal>,
        principal: String,
        token: bool,
    },
    /// OAUTHBEARER: waiting for the initial response, or, after a refused
    /// token, for the client's \x01 that acknowledges the error challenge.
    Bearer {
        challenge: Option<String>,
    },
    Gssapi(Box<GssapiExchange>),
    Over,
}

pub struct SaslExchange {
    exchange: Exchange,
    mechanism: SaslMechanism,
    credentials: Arc<dyn Credentials>,
}

impl SaslExchange {
    pub fn start(mechanism: SaslMechanism, credentials: Arc<dyn Credentials>) -> Result<SaslExchange, SaslError> {
        let unavailable = || SaslError::Unavailable(mechanism.name());
        let exchange = match ScramMechanism::parse(mechanism.name()) {
            Some(scram) => Exchange::ScramFirst(scram),
            None if mechanism == SaslMechanism::OAuthBearer => Exchange::Bearer { challenge: None },
            None if mechanism == SaslMechanism::Gssapi => Exchange::Gssapi(Box::new(GssapiExchange::start())),
            None => {
                let config = SASLConfig::builder()
                    .with_defaults()
                    .with_callback(PlainUsers {
                        credentials: credentials.clone(),
                    })
                    .map_err(|_| unavailable())?;
                let name = Mechname::parse(mechanism.name().as_bytes()).map_err(|_| unavailable())?;
                let session = SASLServer::<Authenticated>::new(config)
                    .start_suggested(name)
                    .map_err(|_| unavailable())?;
                Exchange::Plain(Box::new(session))
            }
        };
        Ok(SaslExchange {
            exchange,
            mechanism,
            credentials,
        })
    }

    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    pub fn step(&mut self, token: &[u8]) -> Result<Step, SaslError> {
        let fail = SaslError::InvalidCredentials(self.mechanism.name());
        match std::mem::replace(&mut self.exchange, Exchange::Over) {
            Exchange::Plain(mut session) => {
                let mut out = Vec::new();
                let step = session.step(Some(token), &mut out);
                match step {
                    Ok(State::Running) => {
                        self.exchange = Exchange::Plain(session);
                        Ok(Step::Continue(out))
                    }
                    Ok(State::Finished(_)) => match session.validation() {
                        Some(Some(user)) => Ok(Step::Done {
                            response: out,
                            principal: format!("User:{user}"),
                            token: false,
                            expires_ms: None,
                        }),
                        _ => Err(fail),
                    },
                    Err(_) => Err(fail),
                }
            }
            Exchange::ScramFirst(scram) => {
                let first = ClientFirst::parse(token).map_err(|_| fail.clone())?;
                // Kafka refuses an unknown user or token at the first message.
                let (credential, principal, is_token) = if first.token_auth {
                    let login = self.credentials.token(&first.user, scram).ok_or(fail.clone())?;
                    (login.credential, login.owner, true)
                } else {
                    let credential = self.credentials.scram(&first.user, scram).ok_or(fail.clone())?;
                    (credential, format!("User:{}", first.user), false)
                };
                let (out, state) = scram_server::server_first(scram, first, credential).map_err(|_| fail)?;
                self.exchange = Exchange::ScramFinal {
                    state: Box::new(state),
                    principal,
                    token: is_token,
                };
                Ok(Step::Continue(out))
            }
            Exchange::ScramFinal {
                state,
                principal,
                token: is_token,
            } => {
                let response = state.finish(token).map_err(|_| fail)?;
                Ok(Step::Done {
                    response,
                    principal,
                    token: is_token,
                    expires_ms: None,
                })
            }
            Exchange::Bearer { challenge } => {
                // Kafka's OAuthBearerSaslServer: after an error challenge the
                // client's \x01 ends the exchange with that error.
                if let (Some(challenge), [0x01]) = (challenge, token) {
                    return Err(SaslError::Rejected(challenge));
                }
                let response = initial_response::parse(token).map_err(|_| fail)?;
                let validator = self.credentials.bearer().ok_or(SaslError::Unavailable("OAUTHBEARER"))?;
                match validator.validate(&response.token, crate::storage::now_ms()) {
                    Ok(bearer) => {
                        if !response.authorization_id.is_empty() && response.authorization_id != bearer.principal {
                            return Err(SaslError::Rejected(format!(
                                "Authentication failed: Client requested an authorization id ({}) that is different from the token's principal name ({})",
                                response.authorization_id, bearer.principal
                            )));
                        }
                        Ok(Step::Done {
                            response: Vec::new(),
                            principal: format!("User:{}", bearer.principal),
                            token: false,
                            expires_ms: Some(bearer.expires_ms),
                        })
                    }
                    Err(rejection) => {
                        tracing::info!(reason = %rejection.reason, "OAUTHBEARER token refused");
                        let challenge = rejection.challenge();
                        self.exchange = Exchange::Bearer {
                            challenge: Some(challenge.clone()),
                        };
                        Ok(Step::Continue(challenge.into_bytes()))
                    }
                }
            }
            Exchange::Gssapi(mut gssapi) => {
                let kerberos = self.credentials.kerberos().ok_or(SaslError::Unavailable("GSSAPI"))?;
                match gssapi.step(&kerberos, token) {
                    Ok(GssStep::Continue(out)) => {
                        self.exchange = Exchange::Gssapi(gssapi);
                        Ok(Step::Continue(out))
                    }
                    Ok(GssStep::Done { short_name, peer }) => {
                        tracing::info!(kerberos_principal = %peer, "Kerberos principal authenticated");
                        Ok(Step::Done {
                            response: Vec::new(),
                            principal: format!("User:{short_name}"),
                            token: false,
                            expires_ms: None,
                        })
                    }
                    Err(reason) => {
                        tracing::info!(%reason, "GSSAPI authentication failed");
                        Err(fail)
                    }
                }
            }
            Exchange::Over => Err(fail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsasl::prelude::SASLClient;
    use std::collections::HashMap;
    use std::io::Cursor;

    struct Users {
        scram: HashMap<(String, ScramMechanism), ScramCredential>,
        plain: HashMap<String, String>,
    }

    impl Credentials for Users {
        fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
            self.scram.get(&(user.to_string(), mechanism)).cloned()
        }
        fn plain_password(&self, user: &str) -> Option<String> {
            self.plain.get(user).cloned()
        }
        fn token(&self, token_id: &str, mechanism: ScramMechanism) -> Option<TokenLogin> {
            (token_id == "tok1").then(|| TokenLogin {
                owner: "User:alice".into(),
                credential: ScramCredential::from_password(mechanism, "hmac", 4096),
            })
        }
    }

    fn users() -> Arc<dyn Credentials> {
        let mut scram = HashMap::new();
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            scram.insert(
                ("alice".to_string(), m),
                ScramCredential::from_password(m, "alice-secret", 4096),
            );
        }
        Arc::new(Users {
            scram,
            plain: [("bob".to_string(), "bob-secret".to_string())].into_iter().collect(),
        })
    }

    /// Runs an exchange with rsasl's own client; the authenticated user or the error.
    fn authenticate(mechanism: SaslMechanism, user: &str, password: &str) -> Result<String, SaslError> {
        let mut server = SaslExchange::start(mechanism, users())?;
        let config = SASLConfig::with_credentials(None, user.to_string(), password.to_string()).unwrap();
        let name = Mechname::parse(mechanism.name().as_bytes()).unwrap();
        let mut client = SASLClient::new(config).start_suggested(&[name]).unwrap();
        let mut token = Cursor::new(Vec::new());
        client.step(None, &mut token).unwrap();
        loop {
            match server.step(token.get_ref())? {
                Step::Done { principal, .. } => return Ok(principal),
                Step::Continue(reply) => {
                    token = Cursor::new(Vec::new());
                    if client.step(Some(&reply), &mut token).is_err() {
                        return Err(SaslError::InvalidCredentials(mechanism.name()));
                    }
                }
            }
        }
    }

    #[test]
    fn plain_and_scram_accept_the_right_password_only() {
        assert_eq!(
            authenticate(SaslMechanism::Plain, "bob", "bob-secret"),
            Ok("User:bob".to_string())
        );
        assert!(authenticate(SaslMechanism::Plain, "bob", "wrong").is_err());
        assert!(authenticate(SaslMechanism::Plain, "nobody", "bob-secret").is_err());
        for m in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            assert_eq!(
                authenticate(m, "alice", "alice-secret"),
                Ok("User:alice".to_string()),
                "{m:?}"
            );
            assert!(authenticate(m, "alice", "wrong").is_err(), "{m:?}");
            assert!(authenticate(m, "mallory", "alice-secret").is_err(), "{m:?}");
        }
    }

    #[test]
    fn an_unknown_scram_user_fails_at_the_first_message() {
        let mut server = SaslExchange::start(SaslMechanism::ScramSha256, users()).unwrap();
        assert_eq!(
            server.step(b"n,,n=mallory,r=abc"),
            Err(SaslError::InvalidCredentials("SCRAM-SHA-256"))
        );
        let plain = SaslError::InvalidCredentials("PLAIN").to_string();
        assert_eq!(plain, "Authentication failed: Invalid username or password");
    }

    #[test]
    fn tokenauth_names_a_token_not_a_user() {
        let first = |token: &[u8]| {
            SaslExchange::start(SaslMechanism::ScramSha512, users())
                .unwrap()
                .step(token)
        };
        assert!(matches!(
            first(b"n,,n=tok1,r=abc,tokenauth=true"),
            Ok(Step::Continue(_))
        ));
        // A user name is no token id, and a token id is no user.
        assert!(first(b"n,,n=alice,r=abc,tokenauth=true").is_err());
        assert!(first(b"n,,n=tok1,r=abc").is_err());
    }
}
