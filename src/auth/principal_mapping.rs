//! `ssl.principal.mapping.rules`: Kafka's SslPrincipalMapper. Rules are tried
//! in order on a client certificate's distinguished name; the first that
//! matches names the principal. `RULE:pattern/replacement/[LU]` rewrites the
//! name (`$1` etc.), `DEFAULT` keeps the whole DN.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

/// Splits on commas that are not inside a rule's pattern or replacement.
fn split_rules(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("DEFAULT") {
            out.push("DEFAULT".to_string());
            rest = after.trim_start().trim_start_matches(',').trim_start();
            continue;
        }
        let Some(body) = rest.strip_prefix("RULE:") else {
            return Err(format!("rules start with RULE: or DEFAULT, not '{rest}'"));
        };
        // pattern / replacement / [LU], where '/' may be escaped with '\'.
        let mut slashes = 0;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '/' => {
                    slashes += 1;
                    if slashes == 2 {
                        let tail = &body[i + 1..];
                        let flag = tail.chars().next().filter(|c| *c == 'L' || *c == 'U');
                        end = Some(i + 1 + flag.map_or(0, |_| 1));
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated rule 'RULE:{body}'"))?;
        out.push(format!("RULE:{}", &body[..end]));
        rest = body[end..].trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

impl PrincipalMapper {
    pub fn parse(text: &str) -> Result<PrincipalMapper, String> {
        let mut rules = Vec::new();
        for rule in split_rules(text)? {
            if rule == "DEFAULT" {
                rules.push(Rule::Default);
                continue;
            }
            let body = &rule["RULE:".len()..];
            let mut parts = Vec::new();
            let mut current = String::new();
            let mut escaped = false;
            for c in body.chars() {
                if escaped {
                    if c != '/' {
                        current.push('\\');
                    }
                    current.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '/' {
                    parts.push(std::mem::take(&mut current));
                } else {
                    current.push(c);
                }
            }
            let case = current.chars().next();
            if parts.len() != 2 {
                return Err(format!("malformed rule '{rule}'"));
            }
            let pattern =
                Regex::new(&format!("^(?:{})$", parts[0])).map_err(|e| format!("bad pattern in '{rule}': {e}"))?;
            rules.push(Rule::Replace {
                pattern,
                replacement: parts[1].clone(),
                case,
            });
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(PrincipalMapper { rules })
    }

    /// The principal name for a distinguished name (without "User:").
    pub fn name_for(&self, dn: &str) -> String {
        for rule in &self.rules {
            match rule {
                Rule::Default => return dn.to_string(),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let name = pattern.replace(dn, replacement.as_str()).into_owned();
                        return match case {
                            Some('L') => name.to_lowercase(),
                            Some('U') => name.to_uppercase(),
                            _ => name,
                        };
                    }
                }
            }
        }
        dn.to_string()
    }
}

/// A certificate subject as Java's X500Principal.getName() writes it
/// (RFC 2253: most specific first, comma-separated, no spaces).
pub fn subject_dn(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type();
                    let name = match oid.to_id_string().as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.11" => "OU".to_string(),
                        "2.5.4.10" => "O".to_string(),
                        "2.5.4.7" => "L".to_string(),
                        "2.5.4.8" => "ST".to_string(),
                        "2.5.4.6" => "C".to_string(),
                        "2.5.4.9" => "STREET".to_string(),
                        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                        other => other.to_string(),
                    };
                    let value = atv.as_str().unwrap_or_default();
                    format!("{name}={}", escape_rfc2253(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rule_syntax() {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name_for("CN=kafka-client,OU=ServiceUsers,O=Acme,C=US"),
            "kafka-client"
        );
        assert_eq!(m.name_for("CN=Alice,OU=Sales,O=Acme,C=US"), "alice@sales");
        assert_eq!(m.name_for("O=Nobody"), "O=Nobody");
        let m = PrincipalMapper::parse("RULE:^CN=([a-z]+).*$/$1/U").unwrap();
        assert_eq!(m.name_for("CN=bob,O=x"), "BOB");
        assert_eq!(m.name_for("C=US"), "C=US", "no rule matched: the DN as is");
        assert!(PrincipalMapper::parse("RULE:broken").is_err());
        assert!(PrincipalMapper::parse("NOPE").is_err());
    }

    #[test]
    fn subjects_read_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::CommonName, "client-1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_dn(cert.der()).unwrap(), "CN=client-1,O=Acme\\, Inc,C=US");
    }
}
