//! How a SASL listener checks OAUTHBEARER tokens, read from Kafka's keys:
//! the listener's `oauthbearer.sasl.server.callback.handler.class` picks the
//! validator (none: Kafka's unsecured-token handler, configured by the JAAS
//! options `unsecuredValidator*`; `OAuthBearerValidatorCallbackHandler`:
//! signed JWTs checked against `sasl.oauthbearer.jwks.endpoint.url`, or their
//! claims alone without one, as Kafka's `DefaultJwtValidator` chooses).
//! Every `sasl.oauthbearer.*` key may carry a `listener.name.<l>.` or
//! `listener.name.<l>.oauthbearer.` prefix.

use super::security::bad;
use super::ConfigError;
use indexmap::IndexMap;
use std::collections::HashMap;

const VALIDATOR_HANDLERS: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];
const UNSECURED_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// The `sasl.oauthbearer.*` keys read here (bare, without a listener prefix).
pub const KEYS: &[&str] = &[
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.allow.unverified.audience",
    "sasl.oauthbearer.allow.unverified.issuer",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.jwt.validator.class",
];

/// Which claims name the principal and the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub sub: String,
    pub scope: String,
}

/// Kafka's unsecured validator: tokens with `"alg":"none"` and no signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredOptions {
    pub claims: ClaimNames,
    pub required_scope: Vec<String>,
    pub clock_skew_ms: i64,
}

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Http(String),
    File(std::path::PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    pub source: JwksSource,
    pub refresh_ms: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Empty: any audience (`sasl.oauthbearer.allow.unverified.audience=true`).
    pub expected_audience: Vec<String>,
    /// None: any issuer (`sasl.oauthbearer.allow.unverified.issuer=true`).
    pub expected_issuer: Option<String>,
    pub clock_skew_s: u64,
    pub claims: ClaimNames,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthBearerSettings {
    Unsecured(UnsecuredOptions),
    /// `OAuthBearerValidatorCallbackHandler` without a JWKS endpoint: Kafka's
    /// `ClientJwtValidator`, which reads the claims and checks no signature.
    ClaimsOnly(ClaimNames),
    Jwks(JwksSettings),
}

/// A key for the OAUTHBEARER mechanism of one listener: the most specific form first.
fn lookup<'a>(props: &'a IndexMap<String, String>, listener: &str, key: &str) -> Option<(String, &'a str)> {
    let l = listener.to_ascii_lowercase();
    [
        format!("listener.name.{l}.oauthbearer.{key}"),
        format!("listener.name.{l}.{key}"),
        key.to_string(),
    ]
    .into_iter()
    .find_map(|k| props.get(&k).map(|v| (k, v.as_str())))
}

fn number(
    props: &IndexMap<String, String>,
    listener: &str,
    key: &str,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    match lookup(props, listener, key) {
        None => Ok(default),
        Some((k, v)) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| bad(&k, v, format!("must be a whole number, at least {min}"))),
    }
}

fn flag(props: &IndexMap<String, String>, listener: &str, key: &str) -> Result<bool, ConfigError> {
    match lookup(props, listener, key) {
        None => Ok(false),
        Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(&k, v, "must be true or false")),
        },
    }
}

fn text(props: &IndexMap<String, String>, listener: &str, key: &str) -> Option<String> {
    lookup(props, listener, key)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn claim_names(props: &IndexMap<String, String>, listener: &str) -> ClaimNames {
    ClaimNames {
        sub: text(props, listener, "sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
        scope: text(props, listener, "sasl.oauthbearer.scope.claim.name").unwrap_or_else(|| "scope".into()),
    }
}

fn jwks_source(key: &str, url: &str) -> Result<JwksSource, ConfigError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(JwksSource::Http(url.to_string()));
    }
    if let Some(path) = url.strip_prefix("file:") {
        // file:///a/b and file:/a/b both name /a/b.
        let path = path.strip_prefix("//").unwrap_or(path);
        return Ok(JwksSource::File(path.into()));
    }
    Err(bad(key, url, "only the http, https and file protocols are supported"))
}

/// The OAUTHBEARER settings of a listener that enables the mechanism.
/// `jaas`: the listener's OAUTHBEARER JAAS options.
pub fn parse(
    props: &IndexMap<String, String>,
    listener: &str,
    jaas: &HashMap<String, String>,
) -> Result<OAuthBearerSettings, ConfigError> {
    let handler = lookup(props, listener, "sasl.server.callback.handler.class");
    let secured = match &handler {
        None => false,
        Some((_, v)) if v.trim() == UNSECURED_HANDLER => false,
        Some((_, v)) if VALIDATOR_HANDLERS.contains(&v.trim()) => true,
        Some((k, v)) => {
            return Err(bad(
                k,
                v,
                format!(
                    "not supported: OAUTHBEARER tokens are checked by {} or Kafka's unsecured handler",
                    VALIDATOR_HANDLERS[0]
                ),
            ))
        }
    };
    if !secured {
        let option = |name: &str| jaas.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let clock_skew_ms = match option("unsecuredValidatorAllowableClockSkewMs") {
            None => 0,
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                bad(
                    "sasl.jaas.config",
                    &v,
                    "unsecuredValidatorAllowableClockSkewMs must be a number of milliseconds, 0 or more",
                )
            })?,
        };
        return Ok(OAuthBearerSettings::Unsecured(UnsecuredOptions {
            claims: ClaimNames {
                sub: option("unsecuredValidatorPrincipalClaimName").unwrap_or_else(|| "sub".into()),
                scope: option("unsecuredValidatorScopeClaimName").unwrap_or_else(|| "scope".into()),
            },
            required_scope: option("unsecuredValidatorRequiredScope")
                .map(|s| s.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect())
                .unwrap_or_default(),
            clock_skew_ms,
        }));
    }
    if let Some((k, v)) = lookup(props, listener, "sasl.oauthbearer.jwt.validator.class") {
        let name = v.trim().rsplit('.').next().unwrap_or_default();
        if !["DefaultJwtValidator", "BrokerJwtValidator", "ClientJwtValidator"].contains(&name) {
            return Err(bad(
                &k,
                v,
                "not supported: DefaultJwtValidator, BrokerJwtValidator or ClientJwtValidator",
            ));
        }
    }
    let claims = claim_names(props, listener);
    let Some((url_key, url)) = lookup(props, listener, "sasl.oauthbearer.jwks.endpoint.url") else {
        return Ok(OAuthBearerSettings::ClaimsOnly(claims));
    };
    let source = jwks_source(&url_key, url.trim())?;
    let expected_audience: Vec<String> = text(props, listener, "sasl.oauthbearer.expected.audience")
        .map(|v| {
            v.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let expected_issuer = text(props, listener, "sasl.oauthbearer.expected.issuer");
    // Kafka 4.4 refuses to start a validator that would take any audience or
    // issuer unless told to.
    if expected_audience.is_empty() && !flag(props, listener, "sasl.oauthbearer.allow.unverified.audience")? {
        return Err(bad(
            "sasl.oauthbearer.expected.audience",
            "",
            "the OAuth validator needs the audience(s) that identify this cluster, or sasl.oauthbearer.allow.unverified.audience=true",
        ));
    }
    if expected_issuer.is_none() && !flag(props, listener, "sasl.oauthbearer.allow.unverified.issuer")? {
        return Err(bad(
            "sasl.oauthbearer.expected.issuer",
            "",
            "the OAuth validator needs the issuer that signs the tokens, or sasl.oauthbearer.allow.unverified.issuer=true",
        ));
    }
    Ok(OAuthBearerSettings::Jwks(JwksSettings {
        source,
        refresh_ms: number(
            props,
            listener,
            "sasl.oauthbearer.jwks.endpoint.refresh.ms",
            3_600_000,
            1,
        )?,
        retry_backoff_ms: number(
            props,
            listener,
            "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
            100,
            0,
        )?,
        retry_backoff_max_ms: number(
            props,
            listener,
            "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
            10_000,
            0,
        )?,
        expected_audience,
        expected_issuer,
        clock_skew_s: number(props, listener, "sasl.oauthbearer.clock.skew.seconds", 30, 0)?,
        claims,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_handler_is_the_unsecured_validator_with_its_jaas_options() {
        let jaas: HashMap<String, String> = [
            ("unsecuredValidatorPrincipalClaimName", "user"),
            ("unsecuredValidatorRequiredScope", "read write"),
            ("unsecuredValidatorAllowableClockSkewMs", "2000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = parse(&props(&[]), "SASL_PLAINTEXT", &jaas).unwrap();
        assert_eq!(
            settings,
            OAuthBearerSettings::Unsecured(UnsecuredOptions {
                claims: ClaimNames {
                    sub: "user".into(),
                    scope: "scope".into()
                },
                required_scope: vec!["read".into(), "write".into()],
                clock_skew_ms: 2000,
            })
        );
    }

    #[test]
    fn the_validator_handler_reads_the_jwks_keys_of_the_listener() {
        let handler = "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class";
        let p = props(&[
            (handler, VALIDATOR_HANDLERS[0]),
            (
                "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.jwks.endpoint.url",
                "http://127.0.0.1:1/jwks",
            ),
            ("sasl.oauthbearer.expected.audience", "kafka, other"),
            ("sasl.oauthbearer.expected.issuer", "https://idp"),
            ("sasl.oauthbearer.clock.skew.seconds", "5"),
        ]);
        let OAuthBearerSettings::Jwks(s) = parse(&p, "SASL_PLAINTEXT", &HashMap::new()).unwrap() else {
            panic!("expected JWKS validation");
        };
        assert_eq!(s.source, JwksSource::Http("http://127.0.0.1:1/jwks".into()));
        assert_eq!(s.expected_audience, vec!["kafka".to_string(), "other".to_string()]);
        assert_eq!(s.clock_skew_s, 5);
        assert_eq!(s.refresh_ms, 3_600_000);
        // Without an audience, as Kafka 4.4: refused unless allowed.
        let mut p2 = p.clone();
        p2.shift_remove("sasl.oauthbearer.expected.audience");
        assert!(parse(&p2, "SASL_PLAINTEXT", &HashMap::new()).is_err());
        p2.insert("sasl.oauthbearer.allow.unverified.audience".into(), "true".into());
        assert!(parse(&p2, "SASL_PLAINTEXT", &HashMap::new()).is_ok());
        // Without a JWKS endpoint: claims only.
        let p3 = props(&[(handler, VALIDATOR_HANDLERS[1])]);
        assert!(matches!(
            parse(&p3, "SASL_PLAINTEXT", &HashMap::new()),
            Ok(OAuthBearerSettings::ClaimsOnly(_))
        ));
        let p4 = props(&[(handler, "com.example.Mine")]);
        assert!(parse(&p4, "SASL_PLAINTEXT", &HashMap::new()).is_err());
    }
}
