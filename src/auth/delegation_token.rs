//! Delegation tokens (KIP-48) as Kafka keeps them: who owns a token, who may
//! renew it, and until when it lives. The token's secret (its HMAC) is never
//! stored: every node derives it from `delegation.token.secret.key` and the
//! token id, so all nodes of a cluster must share that key, as in Kafka.

use super::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};
use base64::Engine;
use hmac::{Hmac, Mac};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::Sha512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationToken {
    pub token_id: String,
    /// "User:alice": whose rights the token carries.
    pub owner: String,
    /// Who asked for it (the owner, or a user with CreateTokens on the owner).
    pub requester: String,
    pub renewers: Vec<String>,
    pub issue_ms: i64,
    /// The token never lives past this, however often it is renewed.
    pub max_ms: i64,
    /// The token dies here unless renewed first.
    pub expiry_ms: i64,
}

impl DelegationToken {
    pub fn expired(&self, now_ms: i64) -> bool {
        self.max_ms < now_ms || self.expiry_ms < now_ms
    }

    /// Kafka's ownerOrRenewer: who may see the token without an ACL.
    pub fn owner_or_renewer(&self, principal: &str) -> bool {
        self.owner == principal || self.requester == principal || self.renewers.iter().any(|r| r == principal)
    }

    /// Who may renew or expire it: the owner and the named renewers.
    pub fn may_renew(&self, principal: &str) -> bool {
        self.owner == principal || self.renewers.iter().any(|r| r == principal)
    }
}

/// HmacSHA512 of the token id under the secret key: the token's password.
pub fn token_hmac(secret_key: &str, token_id: &str) -> Vec<u8> {
    // An HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha512>::new_from_slice(secret_key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(token_id.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What a client logs in with: the HMAC in standard base64.
pub fn hmac_text(hmac: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac)
}

/// The SCRAM credential a token logs in with (Kafka's token cache makes one
/// per mechanism from the base64 HMAC, at the least iteration count).
pub fn token_credential(secret_key: &str, token_id: &str, mechanism: ScramMechanism) -> ScramCredential {
    let password = hmac_text(&token_hmac(secret_key, token_id));
    ScramCredential::from_password(mechanism, &password, MIN_ITERATIONS)
}

/// `delegation.token.*`: tokens are on only with a secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub secret_key: Option<String>,
    pub max_lifetime_ms: i64,
    /// How long a token lives from its creation or renewal (`delegation.token.expiry.time.ms`).
    pub expiry_time_ms: i64,
    pub expiry_check_interval_ms: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            secret_key: None,
            max_lifetime_ms: 7 * 24 * 3_600_000,
            expiry_time_ms: 24 * 3_600_000,
            expiry_check_interval_ms: 3_600_000,
        }
    }
}

pub const TOKEN_KEYS: &[&str] = &[
    "delegation.token.secret.key",
    "delegation.token.master.key",
    "delegation.token.max.lifetime.ms",
    "delegation.token.expiry.time.ms",
    "delegation.token.expiry.check.interval.ms",
];

impl TokenSettings {
    /// From Kafka's keys; `delegation.token.master.key` is the old name of the secret.
    pub fn parse<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<TokenSettings, (&'static str, String, &'static str)> {
        let mut out = TokenSettings {
            secret_key: get("delegation.token.secret.key")
                .or_else(|| get("delegation.token.master.key"))
                .filter(|k| !k.is_empty())
                .map(str::to_string),
            ..TokenSettings::default()
        };
        for (key, field) in [
            ("delegation.token.max.lifetime.ms", &mut out.max_lifetime_ms),
            ("delegation.token.expiry.time.ms", &mut out.expiry_time_ms),
            (
                "delegation.token.expiry.check.interval.ms",
                &mut out.expiry_check_interval_ms,
            ),
        ] {
            if let Some(v) = get(key) {
                *field = v.trim().parse::<i64>().ok().filter(|n| *n >= 1).ok_or((
                    key,
                    v.to_string(),
                    "must be a number of milliseconds, at least 1",
                ))?;
            }
        }
        Ok(out)
    }

    pub fn from_properties(props: &IndexMap<String, String>) -> Result<TokenSettings, crate::config::ConfigError> {
        TokenSettings::parse(|k| props.get(k).map(String::as_str)).map_err(|(key, value, reason)| {
            crate::config::ConfigError::InvalidValue {
                key: key.to_string(),
                value,
                reason: reason.to_string(),
            }
        })
    }

    pub fn enabled(&self) -> bool {
        self.secret_key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_hmac_sha512_of_the_token_id() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = token_hmac("Jefe", "what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex.starts_with("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"));
        assert_eq!(mac.len(), 64);
    }

    #[test]
    fn renewers_and_owners() {
        let t = DelegationToken {
            token_id: "t".into(),
            owner: "User:alice".into(),
            requester: "User:admin".into(),
            renewers: vec!["User:bob".into()],
            issue_ms: 0,
            max_ms: 100,
            expiry_ms: 50,
        };
        assert!(t.may_renew("User:alice") && t.may_renew("User:bob") && !t.may_renew("User:admin"));
        assert!(t.owner_or_renewer("User:admin") && !t.owner_or_renewer("User:eve"));
        assert!(!t.expired(50) && t.expired(51));
    }

    #[test]
    fn settings_from_kafka_keys() {
        let props: IndexMap<String, String> = [
            ("delegation.token.master.key".to_string(), "k".to_string()),
            ("delegation.token.expiry.time.ms".to_string(), "5000".to_string()),
        ]
        .into_iter()
        .collect();
        let s = TokenSettings::from_properties(&props).unwrap();
        assert_eq!((s.secret_key.as_deref(), s.expiry_time_ms), (Some("k"), 5000));
        assert!(!TokenSettings::default().enabled());
        let bad: IndexMap<String, String> = [("delegation.token.max.lifetime.ms".to_string(), "0".to_string())]
            .into_iter()
            .collect();
        assert!(TokenSettings::from_properties(&bad).is_err());
    }
}
