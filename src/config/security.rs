//! Listener security, configured with Kafka's keys: the security protocol of
//! each listener (`listener.security.protocol.map`), TLS material and client
//! authentication (`ssl.*`), SASL mechanisms and PLAIN users (`sasl.*`,
//! `listener.name.<l>.<mechanism>.sasl.jaas.config`), and the authorizer.
//! Any `ssl.*`/`sasl.*` key may be given per listener with the prefix
//! `listener.name.<listener in lower case>.`.

use super::listener::ListenerSpec;
pub use super::sasl::{jaas_options, jaas_plain_users};
use super::ConfigError;
use indexmap::IndexMap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// The SASL mechanisms served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
    Gssapi,
}

impl SaslMechanism {
    pub fn parse(text: &str) -> Option<SaslMechanism> {
        match text.trim() {
            "PLAIN" => Some(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Some(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Some(SaslMechanism::OAuthBearer),
            "GSSAPI" => Some(SaslMechanism::Gssapi),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
            SaslMechanism::Gssapi => "GSSAPI",
        }
    }
}

/// TLS material and policy of one listener.
#[derive(Clone)]
pub struct TlsSettings {
    pub certificate_chain: Vec<CertificateDer<'static>>,
    pub private_key: Arc<PrivateKeyDer<'static>>,
    pub trusted: Vec<CertificateDer<'static>>,
    pub client_auth: ClientAuth,
    pub tls12: bool,
    pub tls13: bool,
    /// `ssl.principal.mapping.rules`, as written.
    pub principal_mapping_rules: String,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("certificates", &self.certificate_chain.len())
            .field("trusted", &self.trusted.len())
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct SaslSettings {
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN users from the JAAS config: name → password.
    pub plain_users: HashMap<String, String>,
    /// How OAUTHBEARER tokens are checked, when the mechanism is enabled.
    pub oauthbearer: Option<super::oauthbearer::OAuthBearerSettings>,
    /// The broker's Kerberos identity, when GSSAPI is enabled.
    pub gssapi: Option<GssapiSettings>,
}

/// GSSAPI on a listener: Kafka's Krb5LoginModule options and Kerberos keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssapiSettings {
    pub keytab: std::path::PathBuf,
    /// The broker's principal, e.g. `kafka/broker1.example.com@EXAMPLE.COM`.
    pub principal: String,
    /// `sasl.kerberos.service.name`.
    pub service_name: String,
    /// `sasl.kerberos.principal.to.local.rules`, as written.
    pub principal_to_local_rules: String,
}

#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslSettings>,
}

#[derive(Debug, Clone, Default)]
pub struct AuthorizerSettings {
    pub enabled: bool,
    /// Principals allowed everything, e.g. "User:admin".
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// Keyed by listener name.
    pub listeners: BTreeMap<String, ListenerSecurity>,
    pub authorizer: AuthorizerSettings,
    /// `connections.max.reauth.ms`: 0 means sessions never expire.
    pub max_reauth_ms: i64,
    /// `delegation.token.*`.
    pub delegation_tokens: crate::auth::delegation_token::TokenSettings,
}

impl SecurityConfig {
    pub fn listener(&self, name: &str) -> Option<&ListenerSecurity> {
        self.listeners.get(name)
    }
}

const DEFAULT_PROTOCOL_MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

pub(super) fn bad(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Looks a key up for a listener: the `listener.name.<l>.` form first.
pub(super) fn lookup<'a>(props: &'a IndexMap<String, String>, listener: &str, key: &str) -> Option<(String, &'a str)> {
    let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    if let Some(v) = props.get(&prefixed) {
        return Some((prefixed, v.as_str()));
    }
    props.get(key).map(|v| (key.to_string(), v.as_str()))
}

/// PEM material from a key whose value is either PEM text or a file path.
fn pem_source(key: &str, value: &str) -> Result<Vec<u8>, ConfigError> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value.trim()).map_err(|e| bad(key, value, format!("cannot read file: {e}")))
}

fn certificates(key: &str, value: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| bad(key, value, format!("not PEM certificates: {e:?}")))?;
    if certs.is_empty() {
        return Err(bad(key, value, "holds no certificate"));
    }
    Ok(certs)
}

fn private_key(key: &str, value: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    if String::from_utf8_lossy(pem).contains("ENCRYPTED PRIVATE KEY") {
        return Err(bad(
            key,
            value,
            "encrypted private keys (ssl.key.password) are not supported",
        ));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(key, value, format!("holds no PEM private key: {e:?}")))
}

fn tls_settings(props: &IndexMap<String, String>, listener: &str) -> Result<TlsSettings, ConfigError> {
    for type_key in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some((k, v)) = lookup(props, listener, type_key) {
            if !v.trim().eq_ignore_ascii_case("PEM") {
                return Err(bad(&k, v, "only PEM key and trust stores are supported"));
            }
        }
    }
    if let Some((k, v)) = lookup(props, listener, "ssl.key.password") {
        if !v.is_empty() {
            return Err(bad(
                &k,
                "(hidden)",
                "encrypted private keys are not supported; use an unencrypted PEM key",
            ));
        }
    }
    let (certificate_chain, private_key) = match (
        lookup(props, listener, "ssl.keystore.certificate.chain"),
        lookup(props, listener, "ssl.keystore.key"),
        lookup(props, listener, "ssl.keystore.location"),
    ) {
        (Some((ck, cv)), Some((kk, kv)), _) => {
            let chain = certificates(&ck, cv, &pem_source(&ck, cv)?)?;
            let key = private_key(&kk, "(hidden)", &pem_source(&kk, kv)?)?;
            (chain, key)
        }
        (_, _, Some((lk, lv))) => {
            let pem = pem_source(&lk, lv)?;
            (certificates(&lk, lv, &pem)?, private_key(&lk, lv, &pem)?)
        }
        _ => {
            return Err(bad(
                &format!("listener.name.{}.ssl.keystore.location", listener.to_ascii_lowercase()),
                "",
                format!("listener {listener} uses TLS but has no certificate: set ssl.keystore.location (PEM) or ssl.keystore.certificate.chain and ssl.keystore.key"),
            ))
        }
    };
    let trusted = match (
        lookup(props, listener, "ssl.truststore.certificates"),
        lookup(props, listener, "ssl.truststore.location"),
    ) {
        (Some((k, v)), _) | (None, Some((k, v))) => certificates(&k, v, &pem_source(&k, v)?)?,
        (None, None) => Vec::new(),
    };
    let client_auth = match lookup(props, listener, "ssl.client.auth") {
        None => ClientAuth::None,
        Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(bad(&k, v, "must be required, requested or none")),
        },
    };
    if client_auth != ClientAuth::None && trusted.is_empty() {
        return Err(bad(
            "ssl.truststore.location",
            "",
            format!("listener {listener} asks for client certificates (ssl.client.auth) but has no trust store"),
        ));
    }
    let (mut tls12, mut tls13) = (true, true);
    if let Some((k, v)) = lookup(props, listener, "ssl.enabled.protocols") {
        tls12 = false;
        tls13 = false;
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                _ => return Err(bad(&k, v, format!("{p} is not supported (TLSv1.2, TLSv1.3)"))),
            }
        }
        if !(tls12 || tls13) {
            return Err(bad(&k, v, "no protocol enabled"));
        }
    }
    let principal_mapping_rules = lookup(props, listener, "ssl.principal.mapping.rules")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "DEFAULT".to_string());
    crate::auth::principal_mapping::PrincipalMapper::parse(&principal_mapping_rules)
        .map_err(|reason| bad("ssl.principal.mapping.rules", &principal_mapping_rules, reason))?;
    Ok(TlsSettings {
        certificate_chain,
        private_key: Arc::new(private_key),
        trusted,
        client_auth,
        tls12,
        tls13,
        principal_mapping_rules,
    })
}

/// `listener.security.protocol.map`: listener name → security protocol.
/// `implicit_plaintext` names are added as PLAINTEXT (Kafka's rule for the
/// controller listeners of a KRaft node whose map is not given).
pub fn protocol_map(
    props: &IndexMap<String, String>,
    implicit_plaintext: &[String],
) -> Result<HashMap<String, SecurityProtocol>, ConfigError> {
    let map_text = props
        .get("listener.security.protocol.map")
        .map(String::as_str)
        .unwrap_or(DEFAULT_PROTOCOL_MAP);
    let mut map = HashMap::new();
    for item in map_text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = item.split_once(':').ok_or_else(|| {
            bad(
                "listener.security.protocol.map",
                map_text,
                "expected NAME:PROTOCOL pairs",
            )
        })?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            bad(
                "listener.security.protocol.map",
                map_text,
                format!("unknown security protocol {protocol}"),
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    for name in implicit_plaintext {
        map.entry(name.clone()).or_insert(SecurityProtocol::Plaintext);
    }
    Ok(map)
}

/// Reads the security of every listener (with the protocols of
/// `protocol_map`) and the authorizer settings.
pub fn parse(
    props: &IndexMap<String, String>,
    listeners: &[ListenerSpec],
    protocols: &HashMap<String, SecurityProtocol>,
) -> Result<SecurityConfig, ConfigError> {
    let mut out = SecurityConfig::default();
    for l in listeners {
        let protocol = *protocols.get(&l.name).ok_or_else(|| {
            bad(
                "listener.security.protocol.map",
                props
                    .get("listener.security.protocol.map")
                    .map(String::as_str)
                    .unwrap_or(DEFAULT_PROTOCOL_MAP),
                format!("no security protocol for listener {}", l.name),
            )
        })?;
        let tls = if protocol.uses_tls() {
            Some(tls_settings(props, &l.name)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(super::sasl::sasl_settings(props, &l.name)?)
        } else {
            None
        };
        out.listeners
            .insert(l.name.clone(), ListenerSecurity { protocol, tls, sasl });
    }
    out.authorizer.enabled = props.get("authorizer.class.name").is_some_and(|v| !v.trim().is_empty());
    out.authorizer.super_users = props
        .get("super.users")
        .map(|v| {
            v.split(';')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    out.authorizer.allow_everyone_if_no_acl_found = match props.get("allow.everyone.if.no.acl.found") {
        None => false,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad("allow.everyone.if.no.acl.found", v, "must be true or false")),
        },
    };
    out.max_reauth_ms = match props.get("connections.max.reauth.ms") {
        None => 0,
        Some(v) => v.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            bad(
                "connections.max.reauth.ms",
                v,
                "must be a number of milliseconds, 0 or more",
            )
        })?,
    };
    out.delegation_tokens = crate::auth::delegation_token::TokenSettings::from_properties(props)?;
    Ok(out)
}

/// Keys read by this module (with or without a `listener.name.<l>.` prefix).
pub fn is_security_key(key: &str) -> bool {
    const KEYS: &[&str] = &[
        "listener.security.protocol.map",
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.key",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.certificates",
        "ssl.truststore.password",
        "ssl.client.auth",
        "ssl.enabled.protocols",
        "ssl.protocol",
        "ssl.principal.mapping.rules",
        "ssl.endpoint.identification.algorithm",
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "sasl.jaas.config",
        "sasl.kerberos.service.name",
        "sasl.kerberos.principal.to.local.rules",
        "authorizer.class.name",
        "super.users",
        "allow.everyone.if.no.acl.found",
        "connections.max.reauth.ms",
        "delegation.token.secret.key",
        "delegation.token.master.key",
        "delegation.token.max.lifetime.ms",
        "delegation.token.expiry.time.ms",
        "delegation.token.expiry.check.interval.ms",
    ];
    let bare = match key.strip_prefix("listener.name.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k),
        None => key,
    };
    // `listener.name.<l>.oauthbearer.sasl.oauthbearer.*`: a key of one mechanism.
    let bare = bare.strip_prefix("oauthbearer.").unwrap_or(bare);
    let bare = bare.strip_prefix("gssapi.").unwrap_or(bare);
    KEYS.contains(&bare)
        || super::oauthbearer::KEYS.contains(&bare)
        || bare.ends_with(".sasl.jaas.config")
        || bare.ends_with(".sasl.server.callback.handler.class")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_users_come_from_kafka_jaas_lines() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;
        let users = jaas_plain_users(jaas);
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"], "alice-secret");
        assert_eq!(users["admin"], "admin-secret");
    }

    #[test]
    fn listener_protocols_and_prefixed_keys() {
        let mut props = IndexMap::new();
        props.insert("sasl.enabled.mechanisms".to_string(), "SCRAM-SHA-512".to_string());
        props.insert(
            "listener.name.internal.sasl.enabled.mechanisms".to_string(),
            "PLAIN".to_string(),
        );
        props.insert(
            "listener.security.protocol.map".to_string(),
            "INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT".to_string(),
        );
        let listeners =
            super::super::listener::parse_listeners("listeners", "INTERNAL://:1,EXTERNAL://:2,PLAINTEXT://:3").unwrap();
        let s = parse(&props, &listeners, &protocol_map(&props, &[]).unwrap()).unwrap();
        assert_eq!(
            s.listeners["INTERNAL"].sasl.as_ref().unwrap().mechanisms,
            vec![SaslMechanism::Plain]
        );
        assert_eq!(
            s.listeners["EXTERNAL"].sasl.as_ref().unwrap().mechanisms,
            vec![SaslMechanism::ScramSha512]
        );
        assert_eq!(s.listeners["PLAINTEXT"].protocol, SecurityProtocol::Plaintext);
        assert!(is_security_key("listener.name.internal.plain.sasl.jaas.config"));
        assert!(is_security_key("listener.name.external.ssl.keystore.location"));
        assert!(!is_security_key("listener.name.x.no.such.key"));
        // A TLS listener without material is a configuration error naming the key.
        let tls = super::super::listener::parse_listeners("listeners", "SSL://:4").unwrap();
        let none = IndexMap::new();
        let err = parse(&none, &tls, &protocol_map(&none, &[]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssl.keystore.location"), "{err}");
    }
}
