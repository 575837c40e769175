//! The three ways Kafka checks a bearer token, chosen by the listener's
//! configuration (`config::oauthbearer`):
//! - unsecured (Kafka's default handler, for tests): `"alg":"none"`, no
//!   signature, the principal claim, `exp` and `iat` against the clock with the
//!   JAAS option's skew, and a required scope;
//! - claims only (`OAuthBearerValidatorCallbackHandler` without a JWKS
//!   endpoint, Kafka's ClientJwtValidator): the claims, no signature;
//! - signed: the signature against the JWKS key the header names, `exp`,
//!   `nbf` and `iat`, the expected audience and issuer, then the claims.

use super::jwks::JwksKeys;
use super::jwt::{self, Claims};
use super::{BearerToken, Rejection};
use crate::config::oauthbearer::{ClaimNames, JwksSettings, OAuthBearerSettings, UnsecuredOptions};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use std::sync::Arc;

pub enum TokenValidator {
    Unsecured(UnsecuredOptions),
    ClaimsOnly(ClaimNames),
    Signed {
        settings: JwksSettings,
        keys: Arc<JwksKeys>,
    },
}

impl TokenValidator {
    /// The validator a listener's settings ask for; a JWKS endpoint is read
    /// before this returns and kept fresh until `shutdown`.
    pub async fn start(
        settings: &OAuthBearerSettings,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<TokenValidator, String> {
        Ok(match settings {
            OAuthBearerSettings::Unsecured(options) => TokenValidator::Unsecured(options.clone()),
            OAuthBearerSettings::ClaimsOnly(names) => TokenValidator::ClaimsOnly(names.clone()),
            OAuthBearerSettings::Jwks(jwks) => TokenValidator::Signed {
                settings: jwks.clone(),
                keys: JwksKeys::start(jwks, shutdown).await?,
            },
        })
    }

    pub fn validate(&self, token: &str, now_ms: i64) -> Result<BearerToken, Rejection> {
        match self {
            TokenValidator::Unsecured(options) => unsecured(options, token, now_ms),
            TokenValidator::ClaimsOnly(names) => {
                let jwt = jwt::parse(token)?;
                let token = claims_token(names, &jwt.claims)?;
                if token.expires_ms <= now_ms {
                    return Err(Rejection::invalid("The token has expired"));
                }
                Ok(token)
            }
            TokenValidator::Signed { settings, keys } => signed(settings, keys, token),
        }
    }
}

fn unsecured(options: &UnsecuredOptions, token: &str, now_ms: i64) -> Result<BearerToken, Rejection> {
    let jwt = jwt::parse(token)?;
    if jwt.header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return Err(Rejection::invalid("Unsecured JWS must have 'none' for an algorithm"));
    }
    if !jwt.signature.is_empty() {
        return Err(Rejection::invalid("Unsecured JWS must not contain a digital signature"));
    }
    let expires_ms =
        jwt::seconds_claim_ms(&jwt.claims, "exp")?.ok_or_else(|| Rejection::invalid("No expiration time in JWT"))?;
    let principal = jwt::required_string_claim(&jwt.claims, &options.claims.sub)?;
    let scope = jwt::scope_claim(&jwt.claims, &options.claims.scope)?;
    let skew = options.clock_skew_ms;
    let issued_ms = jwt::seconds_claim_ms(&jwt.claims, "iat")?;
    if issued_ms.is_some_and(|iat| iat > now_ms + skew) {
        return Err(Rejection::invalid(
            "The Issued At value was after the current time plus allowable clock skew",
        ));
    }
    if now_ms - skew >= expires_ms {
        return Err(Rejection::invalid(
            "The current time minus allowable clock skew was on or after the Expiration Time",
        ));
    }
    if issued_ms.is_some_and(|iat| expires_ms <= iat) {
        return Err(Rejection::invalid(
            "The Expiration Time was not after the Issued At time",
        ));
    }
    if let Some(missing) = options.required_scope.iter().find(|s| !scope.contains(s)) {
        return Err(Rejection {
            scope: Some(format!("[{}]", options.required_scope.join(", "))),
            reason: format!("The provided scope was missing a required scope ({missing})"),
        });
    }
    Ok(BearerToken { principal, expires_ms })
}

/// The claims every JWT validator reads: the subject, `exp`, a well-formed scope and `iat`.
fn claims_token(names: &ClaimNames, claims: &Claims) -> Result<BearerToken, Rejection> {
    let scope = jwt::scope_claim(claims, &names.scope)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = scope.iter().find(|s| !seen.insert(*s)) {
        return Err(Rejection::invalid(format!(
            "{} value must not contain duplicates - {dup} already present",
            names.scope
        )));
    }
    let expires_ms = jwt::seconds_claim_ms(claims, "exp")?
        .filter(|e| *e >= 0)
        .ok_or_else(|| Rejection::invalid("exp value must be non-null and non-negative"))?;
    if jwt::seconds_claim_ms(claims, "iat")?.is_some_and(|i| i < 0) {
        return Err(Rejection::invalid("iat value must be null or non-negative"));
    }
    let principal = jwt::required_string_claim(claims, &names.sub)?;
    Ok(BearerToken { principal, expires_ms })
}

/// The keys that may have signed a token: the one its `kid` names, or, without
/// one, every key of the algorithm's family.
fn candidate_keys<'a>(keys: &'a [Jwk], key_id: Option<&str>, alg: jsonwebtoken::Algorithm) -> Vec<&'a Jwk> {
    keys.iter()
        .filter(|k| match key_id {
            Some(id) => k.common.key_id.as_deref() == Some(id),
            None => true,
        })
        .filter(|k| verifies_family(k, alg))
        .collect()
}

/// Whether a key can check signatures of `alg` (its type, curve and, when
/// the key names one, its own algorithm).
fn verifies_family(key: &Jwk, alg: jsonwebtoken::Algorithm) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    use jsonwebtoken::Algorithm as A;
    let fits = match &key.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, A::ES256) | (EllipticCurve::P384, A::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => alg == A::EdDSA,
        AlgorithmParameters::OctetKey(_) => matches!(alg, A::HS256 | A::HS384 | A::HS512),
    };
    let for_signing = !matches!(
        key.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption | jsonwebtoken::jwk::PublicKeyUse::Other(_))
    );
    let named = key.common.key_algorithm.map(|a| format!("{a:?}"));
    fits && for_signing && named.is_none_or(|n| n == format!("{alg:?}"))
}

fn signed(settings: &JwksSettings, store: &JwksKeys, token: &str) -> Result<BearerToken, Rejection> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| Rejection::invalid(format!("Could not validate the access token: {e}")))?;
    let keys = store.keys();
    let candidates = candidate_keys(&keys, header.kid.as_deref(), header.alg);
    if candidates.is_empty() {
        if let Some(kid) = header.kid.as_deref() {
            store.missing_key(kid);
        }
        return Err(Rejection::invalid(format!(
            "Could not validate the access token: no JWKS key for kid {:?} and algorithm {:?}",
            header.kid, header.alg
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = settings.clock_skew_s;
    validation.validate_nbf = true;
    validation.required_spec_claims = ["exp".to_string()].into_iter().collect();
    if settings.expected_audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&settings.expected_audience);
        validation.required_spec_claims.insert("aud".into());
    }
    if let Some(issuer) = &settings.expected_issuer {
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims.insert("iss".into());
    }
    let mut last = None;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => {
                if !data.claims.contains_key("iat") {
                    return Err(Rejection::invalid(
                        "Could not validate the access token: No Issued At (iat) claim present",
                    ));
                }
                return claims_token(&settings.claims, &data.claims);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Rejection::invalid(format!(
        "Could not validate the access token: {}",
        last.map_or_else(|| "no usable key".to_string(), |e| e.to_string())
    )))
}

#[cfg(test)]
#[path = "validator_tests.rs"]
mod tests;
