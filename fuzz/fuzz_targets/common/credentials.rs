//! The users the SASL targets log in as, the same ones fuzz/record-corpus
//! sets up on the broker it records: alice/alice-secret for PLAIN and SCRAM,
//! a delegation token "token-id", and the unsecured OAUTHBEARER validator.

use sluice::auth::oauthbearer::validator::TokenValidator;
use sluice::auth::sasl::{Credentials, TokenLogin};
use sluice::auth::scram::{ScramCredential, ScramMechanism};
use sluice::config::oauthbearer::{ClaimNames, UnsecuredOptions};
use std::sync::{Arc, OnceLock};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-secret";

pub struct FuzzCredentials {
    sha256: ScramCredential,
    sha512: ScramCredential,
    bearer: Arc<TokenValidator>,
}

impl Credentials for FuzzCredentials {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        (user == USER).then(|| self.credential(mechanism))
    }

    fn plain_password(&self, user: &str) -> Option<String> {
        (user == USER).then(|| PASSWORD.to_string())
    }

    fn token(&self, token_id: &str, mechanism: ScramMechanism) -> Option<TokenLogin> {
        (token_id == "token-id").then(|| TokenLogin {
            owner: format!("User:{USER}"),
            credential: self.credential(mechanism),
        })
    }

    fn bearer(&self) -> Option<Arc<TokenValidator>> {
        Some(self.bearer.clone())
    }
}

impl FuzzCredentials {
    fn credential(&self, mechanism: ScramMechanism) -> ScramCredential {
        match mechanism {
            ScramMechanism::Sha256 => self.sha256.clone(),
            _ => self.sha512.clone(),
        }
    }
}

/// Built once: a SCRAM credential costs 4096 PBKDF2 rounds.
pub fn credentials() -> Arc<FuzzCredentials> {
    static CREDENTIALS: OnceLock<Arc<FuzzCredentials>> = OnceLock::new();
    CREDENTIALS
        .get_or_init(|| {
            Arc::new(FuzzCredentials {
                sha256: ScramCredential::from_password(ScramMechanism::Sha256, PASSWORD, 4096),
                sha512: ScramCredential::from_password(ScramMechanism::Sha512, PASSWORD, 4096),
                bearer: Arc::new(TokenValidator::Unsecured(UnsecuredOptions {
                    claims: ClaimNames {
                        sub: "sub".into(),
                        scope: "scope".into(),
                    },
                    required_scope: Vec::new(),
                    clock_skew_ms: 0,
                })),
            })
        })
        .clone()
}
