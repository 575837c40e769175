//! One SASL authentication exchange on the server side, through rsasl:
//! PLAIN against configured users, SCRAM-SHA-256/512 against stored
//! credentials. The exchange does no I/O of its own: each client token in,
//! one server token out.

use super::scram::{ScramCredential, ScramMechanism};
use crate::config::security::SaslMechanism;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechname::Mechname;
use rsasl::prelude::{SASLConfig, SASLServer, Session, SessionError, State};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use std::sync::Arc;
use thiserror::Error;

/// Where credentials come from.
pub trait Credentials: Send + Sync {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
    fn plain_password(&self, user: &str) -> Option<String>;
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslError {
    /// What the client is told: Kafka's wording, never which part was wrong.
    #[error("{}", invalid_credentials_message(.0))]
    InvalidCredentials(&'static str),
    #[error("SASL mechanism {0} is not available")]
    Unavailable(&'static str),
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

/// The user a SCRAM client-first message names (`n,,n=user,r=nonce`), with
/// RFC 5802's `=2C` and `=3D` unescaped.
fn scram_client_first_user(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    // gs2 header: channel-binding flag, optional authzid, then the bare message.
    let mut parts = text.splitn(3, ',');
    let (_flag, _authzid, bare) = (parts.next()?, parts.next()?, parts.next()?);
    let name = bare.split(',').next()?.strip_prefix("n=")?;
    Some(name.replace("=2C", ",").replace("=3D", "="))
}

struct Authenticated;

impl Validation for Authenticated {
    type Value = Option<String>;
}

struct Callback {
    credentials: Arc<dyn Credentials>,
}

fn scram_mechanism(session: &SessionData) -> Option<ScramMechanism> {
    ScramMechanism::parse(session.mechanism().mechanism.as_str())
}

impl SessionCallback for Callback {
    fn callback(&self, session: &SessionData, context: &Context, request: &mut Request) -> Result<(), SessionError> {
        if let (Some(mechanism), Some(user)) = (scram_mechanism(session), context.get_ref::<AuthId>()) {
            if let Some(c) = self.credentials.scram(user, mechanism) {
                request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                    c.iterations.max(1) as u32,
                    &c.salt,
                    &c.stored_key,
                    &c.server_key,
                ))?;
            }
        }
        Ok(())
    }

    fn validate(
        &self,
        session: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let Some(user) = context.get_ref::<AuthId>() else {
            return Ok(());
        };
        // An authorization id, when given, must be the user itself (as in Kafka).
        if context.get_ref::<AuthzId>().is_some_and(|z| !z.is_empty() && z != user) {
            validate.with::<Authenticated, _>(|| Ok(None))?;
            return Ok(());
        }
        let accepted = if session.mechanism().mechanism.as_str() == "PLAIN" {
            let given = context.get_ref::<Password>().unwrap_or_default();
            self.credentials
                .plain_password(user)
                .is_some_and(|expected| constant_time_eq(expected.as_bytes(), given))
        } else {
            // rsasl has checked the SCRAM proof against the stored keys.
            true
        };
        let user = user.to_string();
        validate.with::<Authenticated, _>(|| Ok(accepted.then_some(user)))?;
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The result of one step of the exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this token and wait for the client's next one.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send the last token.
    Done { response: Vec<u8>, user: String },
}

pub struct SaslExchange {
    session: Session<Authenticated>,
    mechanism: SaslMechanism,
    credentials: Arc<dyn Credentials>,
    first_step: bool,
}

impl SaslExchange {
    pub fn start(mechanism: SaslMechanism, credentials: Arc<dyn Credentials>) -> Result<SaslExchange, SaslError> {
        let config = SASLConfig::builder()
            .with_defaults()
            .with_callback(Callback {
                credentials: credentials.clone(),
            })
            .map_err(|_| SaslError::Unavailable(mechanism.name()))?;
        let name =
            Mechname::parse(mechanism.name().as_bytes()).map_err(|_| SaslError::Unavailable(mechanism.name()))?;
        let session = SASLServer::<Authenticated>::new(config)
            .start_suggested(name)
            .map_err(|_| SaslError::Unavailable(mechanism.name()))?;
        Ok(SaslExchange {
            session,
            mechanism,
            credentials,
            first_step: true,
        })
    }

    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    pub fn step(&mut self, token: &[u8]) -> Result<Step, SaslError> {
        let fail = SaslError::InvalidCredentials(self.mechanism.name());
        // Kafka refuses an unknown SCRAM user at the first message, where rsasl
        // would carry on with made-up salt and iterations.
        if std::mem::take(&mut self.first_step) {
            if let Some(scram) = ScramMechanism::parse(self.mechanism.name()) {
                let known = scram_client_first_user(token).is_some_and(|u| self.credentials.scram(&u, scram).is_some());
                if !known {
                    return Err(fail);
                }
            }
        }
        let mut out = Vec::new();
        match self.session.step(Some(token), &mut out) {
            Ok(State::Running) => Ok(Step::Continue(out)),
            Ok(State::Finished(_)) => match self.session.validation() {
                Some(Some(user)) => Ok(Step::Done { response: out, user }),
                _ => Err(fail),
            },
            Err(_) => Err(fail),
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
                Step::Done { user, .. } => return Ok(user),
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
            Ok("bob".to_string())
        );
        assert!(authenticate(SaslMechanism::Plain, "bob", "wrong").is_err());
        assert!(authenticate(SaslMechanism::Plain, "nobody", "bob-secret").is_err());
        for m in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            assert_eq!(
                authenticate(m, "alice", "alice-secret"),
                Ok("alice".to_string()),
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
        assert_eq!(scram_client_first_user(b"n,,n=a=2Cb=3Dc,r=x").as_deref(), Some("a,b=c"));
        assert_eq!(scram_client_first_user(b"garbage"), None);
        let plain = SaslError::InvalidCredentials("PLAIN").to_string();
        assert_eq!(plain, "Authentication failed: Invalid username or password");
    }
}
