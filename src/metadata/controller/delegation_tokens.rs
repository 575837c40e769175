//! Delegation tokens as records (Kafka's DelegationTokenControlManager):
//! made, renewed and expired by the active controller, swept once expired.
//! Errors are Kafka's codes, answered in the response, not as failures.

use super::{Controller, ControllerConfig, ControllerError, ControllerResult};
use crate::auth::delegation_token::{token_hmac, DelegationToken, TokenSettings};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;
use kafka_protocol::ResponseError as E;

fn settings(config: &ControllerConfig) -> TokenSettings {
    // Validated when the node started; a bad value here means the defaults.
    TokenSettings::parse(|k| config.static_configs.get(k).map(String::as_str)).unwrap_or_default()
}

/// The token whose HMAC this is.
fn token_by_hmac<'a>(image: &'a MetadataImage, secret: &str, hmac: &[u8]) -> Option<&'a DelegationToken> {
    image
        .delegation_tokens
        .values()
        .find(|t| crate::auth::scram_server::constant_time_eq(&token_hmac(secret, &t.token_id), hmac))
}

/// What a renewal or expiry does: a new expiry, or the token's removal
/// (answered with the given value).
enum ExpiryChange {
    To(i64),
    Remove(i64),
}

/// A new token: what the client is told (its HMAC), or Kafka's error code.
pub type Created = Result<(DelegationToken, Vec<u8>), i16>;

/// The token a renewal or expiry is about, checked as Kafka checks it.
fn token_to_change<'a>(
    image: &'a MetadataImage,
    settings: &TokenSettings,
    hmac: &[u8],
    principal: &str,
    now: i64,
) -> Result<&'a DelegationToken, i16> {
    let secret = settings
        .secret_key
        .as_deref()
        .ok_or(E::DelegationTokenAuthDisabled.code())?;
    let token = token_by_hmac(image, secret, hmac).ok_or(E::DelegationTokenNotFound.code())?;
    if token.expired(now) {
        return Err(E::DelegationTokenExpired.code());
    }
    if !token.may_renew(principal) {
        return Err(E::DelegationTokenOwnerMismatch.code());
    }
    Ok(token)
}

impl Controller {
    /// Makes a token for `owner`, asked for by `requester`; `renewers` as
    /// (principal type, name).
    pub async fn create_delegation_token(
        &self,
        owner: String,
        requester: String,
        renewers: Vec<(String, String)>,
        max_lifetime_ms: i64,
        now: i64,
    ) -> Result<Created, ControllerError> {
        self.write(move |_, config| {
            let settings = settings(config);
            let Some(secret) = settings.secret_key.as_deref() else {
                return ControllerResult::none(Err(E::DelegationTokenAuthDisabled.code()));
            };
            let max_lifetime = if max_lifetime_ms > 0 {
                max_lifetime_ms.min(settings.max_lifetime_ms)
            } else {
                settings.max_lifetime_ms
            };
            let max_ms = now.saturating_add(max_lifetime);
            let mut names = Vec::with_capacity(renewers.len());
            for (kind, name) in renewers {
                if kind != "User" {
                    return ControllerResult::none(Err(E::InvalidPrincipalType.code()));
                }
                names.push(format!("User:{name}"));
            }
            let token = DelegationToken {
                token_id: crate::metadata::ids::topic_id_string(crate::metadata::ids::random_kafka_uuid()),
                owner,
                requester,
                renewers: names,
                issue_ms: now,
                max_ms,
                expiry_ms: max_ms.min(now.saturating_add(settings.expiry_time_ms)),
            };
            let hmac = token_hmac(secret, &token.token_id);
            ControllerResult::of(vec![MetadataRecord::DelegationToken(token.clone())], Ok((token, hmac)))
        })
        .await
    }

    /// Moves a token's expiry on by `renew_period_ms` (the default period
    /// when not positive, never past the default nor the token's maximum).
    pub async fn renew_delegation_token(
        &self,
        hmac: Vec<u8>,
        principal: String,
        renew_period_ms: i64,
        now: i64,
    ) -> Result<Result<i64, i16>, ControllerError> {
        self.change_expiry(hmac, principal, now, move |token, settings| {
            let period = if renew_period_ms > 0 {
                renew_period_ms.min(settings.expiry_time_ms)
            } else {
                settings.expiry_time_ms
            };
            ExpiryChange::To(token.max_ms.min(now.saturating_add(period)))
        })
        .await
    }

    /// Sets a token to expire `expiry_period_ms` from now; a negative period
    /// removes it at once (and is answered as the expiry, as Kafka does).
    pub async fn expire_delegation_token(
        &self,
        hmac: Vec<u8>,
        principal: String,
        expiry_period_ms: i64,
        now: i64,
    ) -> Result<Result<i64, i16>, ControllerError> {
        self.change_expiry(hmac, principal, now, move |token, _| {
            if expiry_period_ms < 0 {
                ExpiryChange::Remove(expiry_period_ms)
            } else {
                ExpiryChange::To(token.max_ms.min(now.saturating_add(expiry_period_ms)))
            }
        })
        .await
    }

    /// A renewal or expiry of the token with this HMAC, by `principal`:
    /// the new expiry (or the answer to a removal), or Kafka's error code.
    async fn change_expiry(
        &self,
        hmac: Vec<u8>,
        principal: String,
        now: i64,
        decide: impl FnOnce(&DelegationToken, &TokenSettings) -> ExpiryChange + Send,
    ) -> Result<Result<i64, i16>, ControllerError> {
        self.write(move |image, config| {
            let settings = settings(config);
            let token = match token_to_change(image, &settings, &hmac, &principal, now) {
                Ok(t) => t,
                Err(code) => return ControllerResult::none(Err(code)),
            };
            let (record, answer) = match decide(token, &settings) {
                ExpiryChange::Remove(answer) => (
                    MetadataRecord::RemoveDelegationToken {
                        token_id: token.token_id.clone(),
                    },
                    answer,
                ),
                ExpiryChange::To(expiry_ms) => (
                    MetadataRecord::DelegationToken(DelegationToken {
                        expiry_ms,
                        ..token.clone()
                    }),
                    expiry_ms,
                ),
            };
            ControllerResult::of(vec![record], Ok(answer))
        })
        .await
    }

    /// Removes every expired token; how many.
    pub async fn sweep_expired_delegation_tokens(&self, now: i64) -> Result<usize, ControllerError> {
        self.write(move |image, _| {
            let records: Vec<MetadataRecord> = image
                .delegation_tokens
                .values()
                .filter(|t| t.expired(now))
                .map(|t| MetadataRecord::RemoveDelegationToken {
                    token_id: t.token_id.clone(),
                })
                .collect();
            let count = records.len();
            ControllerResult::of(records, count)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const HOUR: i64 = 3_600_000;

    fn controller(dir: &std::path::Path, secret: Option<&str>) -> Controller {
        let mut configs = BTreeMap::new();
        if let Some(secret) = secret {
            configs.insert("delegation.token.secret.key".to_string(), secret.to_string());
        }
        configs.insert("delegation.token.max.lifetime.ms".to_string(), (10 * HOUR).to_string());
        configs.insert("delegation.token.expiry.time.ms".to_string(), HOUR.to_string());
        super::super::lifecycle_tests::controller_with(dir, configs)
    }

    async fn create(c: &Controller, lifetime: i64, now: i64) -> Created {
        let renewers = vec![("User".to_string(), "bob".to_string())];
        c.create_delegation_token("User:alice".into(), "User:alice".into(), renewers, lifetime, now)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_token_lives_renews_and_expires_as_in_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let c = controller(dir.path(), Some("secret"));
        let (token, hmac) = create(&c, -1, 1000).await.unwrap();
        assert_eq!((token.max_ms, token.expiry_ms), (1000 + 10 * HOUR, 1000 + HOUR));
        assert_eq!(hmac, token_hmac("secret", &token.token_id));
        // A lifetime asked for is capped by the configured maximum.
        let (capped, _) = create(&c, 20 * HOUR, 1000).await.unwrap();
        assert_eq!(capped.max_ms, 1000 + 10 * HOUR);

        let renew = |who: &str, period: i64, now: i64| c.renew_delegation_token(hmac.clone(), who.into(), period, now);
        assert_eq!(renew("User:bob", 60_000, 2000).await.unwrap(), Ok(62_000));
        assert_eq!(renew("User:alice", -1, 2000).await.unwrap(), Ok(2000 + HOUR));
        assert_eq!(
            renew("User:eve", -1, 2000).await.unwrap(),
            Err(E::DelegationTokenOwnerMismatch.code())
        );
        // Past its expiry, a token renews no more; the sweep removes it (and the capped one).
        assert_eq!(
            renew("User:alice", -1, 3000 + HOUR).await.unwrap(),
            Err(E::DelegationTokenExpired.code())
        );
        assert_eq!(c.sweep_expired_delegation_tokens(3000 + HOUR).await.unwrap(), 2);
        assert_eq!(
            renew("User:alice", -1, 3000 + HOUR).await.unwrap(),
            Err(E::DelegationTokenNotFound.code())
        );

        let (_, other) = create(&c, -1, 5000).await.unwrap();
        let expire = |period: i64| c.expire_delegation_token(other.clone(), "User:alice".into(), period, 6000);
        assert_eq!(expire(1000).await.unwrap(), Ok(7000));
        assert_eq!(expire(-1).await.unwrap(), Ok(-1));
        assert_eq!(expire(-1).await.unwrap(), Err(E::DelegationTokenNotFound.code()));
        assert!(c.image().await.delegation_tokens.is_empty());
    }

    #[tokio::test]
    async fn tokens_need_a_secret_key_and_user_renewers() {
        let dir = tempfile::tempdir().unwrap();
        let off = controller(dir.path(), None);
        assert_eq!(create(&off, -1, 0).await, Err(E::DelegationTokenAuthDisabled.code()));
        let dir = tempfile::tempdir().unwrap();
        let on = controller(dir.path(), Some("k"));
        let group = vec![("Group".to_string(), "g".to_string())];
        let made = on
            .create_delegation_token("User:a".into(), "User:a".into(), group, -1, 0)
            .await
            .unwrap();
        assert_eq!(made, Err(E::InvalidPrincipalType.code()));
    }
}
