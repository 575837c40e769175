//! A SASL listener's mechanisms and what each needs, from Kafka's keys:
//! `sasl.enabled.mechanisms`, the JAAS lines (`<mechanism>.sasl.jaas.config`:
//! PLAIN users, OAUTHBEARER options, the GSSAPI keytab and principal), and
//! the `sasl.kerberos.*` and `sasl.oauthbearer.*` keys.

use super::security::{bad, lookup, GssapiSettings, SaslMechanism, SaslSettings};
use super::ConfigError;
use indexmap::IndexMap;
use std::collections::HashMap;

/// The options of a JAAS line (`Module required key="value" other=bare;`).
pub fn jaas_options(jaas: &str) -> HashMap<String, String> {
    let mut options = HashMap::new();
    // Skip the login module's class and its control flag.
    let mut rest = jaas.trim_start();
    for _ in 0..2 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => break,
            },
            None => {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == ';')
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() || name.contains(';') {
            break;
        }
        options.insert(name, value.to_string());
        rest = tail;
    }
    options
}

/// PLAIN users from a JAAS line: `user_<name>="<password>"` entries.
pub fn jaas_plain_users(jaas: &str) -> HashMap<String, String> {
    jaas_options(jaas)
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("user_").map(|user| (user.to_string(), v)))
        .collect()
}

pub(super) fn sasl_settings(props: &IndexMap<String, String>, listener: &str) -> Result<SaslSettings, ConfigError> {
    let mechanisms = match lookup(props, listener, "sasl.enabled.mechanisms") {
        Some((k, v)) => {
            let mut list = Vec::new();
            for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                list.push(SaslMechanism::parse(m).ok_or_else(|| {
                    bad(
                        &k,
                        v,
                        format!(
                            "mechanism {m} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI)"
                        ),
                    )
                })?);
            }
            if list.is_empty() {
                return Err(bad(&k, v, "no mechanism enabled"));
            }
            list
        }
        None => vec![
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ],
    };
    // PLAIN users: Kafka reads them from the listener's PLAIN JAAS config.
    let lower = listener.to_ascii_lowercase();
    let jaas = props
        .get(&format!("listener.name.{lower}.plain.sasl.jaas.config"))
        .or_else(|| props.get("plain.sasl.jaas.config"))
        .or_else(|| props.get(&format!("listener.name.{lower}.sasl.jaas.config")))
        .or_else(|| props.get("sasl.jaas.config"));
    let plain_users = jaas.map(|j| jaas_plain_users(j)).unwrap_or_default();
    let oauthbearer = if mechanisms.contains(&SaslMechanism::OAuthBearer) {
        let jaas = props
            .get(&format!("listener.name.{lower}.oauthbearer.sasl.jaas.config"))
            .or_else(|| props.get(&format!("listener.name.{lower}.sasl.jaas.config")))
            .or_else(|| props.get("sasl.jaas.config"));
        let options = jaas.map(|j| jaas_options(j)).unwrap_or_default();
        Some(super::oauthbearer::parse(props, listener, &options)?)
    } else {
        None
    };
    let gssapi = if mechanisms.contains(&SaslMechanism::Gssapi) {
        Some(gssapi_settings(props, listener)?)
    } else {
        None
    };
    Ok(SaslSettings {
        mechanisms,
        plain_users,
        oauthbearer,
        gssapi,
    })
}

/// The broker's keytab and principal from the listener's GSSAPI JAAS config
/// (`com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true
/// keyTab="..." principal="...";`), and the `sasl.kerberos.*` keys.
fn gssapi_settings(props: &IndexMap<String, String>, listener: &str) -> Result<GssapiSettings, ConfigError> {
    let lower = listener.to_ascii_lowercase();
    let jaas_key = format!("listener.name.{lower}.gssapi.sasl.jaas.config");
    let (key, jaas) = [jaas_key.clone(), format!("listener.name.{lower}.sasl.jaas.config"), "sasl.jaas.config".into()]
        .into_iter()
        .find_map(|k| props.get(&k).map(|v| (k, v.clone())))
        .ok_or_else(|| {
            bad(
                &jaas_key,
                "",
                format!("listener {listener} enables GSSAPI but names no keytab: set a Krb5LoginModule JAAS config with useKeyTab=true keyTab=\"...\" principal=\"...\""),
            )
        })?;
    let options = jaas_options(&jaas);
    let option = |name: &str| {
        options
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if !jaas.contains("Krb5LoginModule") || option("useKeyTab").is_none_or(|v| !v.eq_ignore_ascii_case("true")) {
        return Err(bad(&key, "(JAAS)", "GSSAPI needs Krb5LoginModule with useKeyTab=true"));
    }
    let keytab = option("keyTab").ok_or_else(|| bad(&key, "(JAAS)", "GSSAPI needs keyTab=\"<path>\""))?;
    let principal = option("principal")
        .ok_or_else(|| bad(&key, "(JAAS)", "GSSAPI needs principal=\"<service>/<host>@<REALM>\""))?;
    let service_name = lookup(props, listener, "gssapi.sasl.kerberos.service.name")
        .or_else(|| lookup(props, listener, "sasl.kerberos.service.name"))
        .map(|(_, v)| v.trim().to_string())
        .or_else(|| option("serviceName"))
        .ok_or_else(|| {
            bad(
                "sasl.kerberos.service.name",
                "",
                "No serviceName defined in either JAAS or Kafka config",
            )
        })?;
    let principal_to_local_rules = lookup(props, listener, "sasl.kerberos.principal.to.local.rules")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "DEFAULT".into());
    crate::auth::kerberos_rules::KerberosShortNamer::parse("", &principal_to_local_rules)
        .map_err(|e| bad("sasl.kerberos.principal.to.local.rules", &principal_to_local_rules, e))?;
    Ok(GssapiSettings {
        keytab: keytab.into(),
        principal,
        service_name,
        principal_to_local_rules,
    })
}
