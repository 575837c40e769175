//! `sasl.kerberos.principal.to.local.rules`: how a Kerberos principal
//! (`alice@REALM`, `kafka/host@REALM`) becomes the short name of its Kafka
//! principal (`User:alice`), with the syntax and order of Kafka's
//! KerberosShortNamer (Hadoop's auth_to_local):
//! `DEFAULT` (the first component, for the default realm only) and
//! `RULE:[n:format](match)s/from/to/[g][/L|/U]`.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Custom {
        components: usize,
        format: String,
        matches: Option<Regex>,
        substitution: Option<(Regex, String, bool)>,
        lower: bool,
        upper: bool,
    },
}

#[derive(Debug, Clone)]
pub struct KerberosShortNamer {
    default_realm: String,
    rules: Vec<Rule>,
}

/// A principal split as Kafka's KerberosName: service (first component), host, realm.
#[derive(Debug, PartialEq, Eq)]
pub struct KerberosName<'a> {
    pub service: &'a str,
    pub host: Option<&'a str>,
    pub realm: Option<&'a str>,
}

pub fn parse_name(name: &str) -> Result<KerberosName<'_>, String> {
    let (primary, realm) = match name.split_once('@') {
        Some((p, r)) if !r.contains(['@', '/']) => (p, Some(r)),
        Some(_) => return Err(format!("Malformed Kerberos name: {name}")),
        None if !name.contains('/') => (name, None),
        None => return Err(format!("Malformed Kerberos name: {name}")),
    };
    let (service, host) = match primary.split_once('/') {
        Some((s, h)) if !h.contains('/') => (s, Some(h)),
        Some(_) => return Err(format!("Malformed Kerberos name: {name}")),
        None => (primary, None),
    };
    Ok(KerberosName { service, host, realm })
}

/// Java's `$1` group references, for Rust's regex (`${1}`, so `$1a` stays group 1 then "a").
fn java_replacement(to: &str) -> String {
    let digits = Regex::new(r"\$(\d+)").expect("a valid pattern");
    digits.replace_all(to, "$${$1}").into_owned()
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    if text == "DEFAULT" {
        return Ok(Rule::Default);
    }
    let grammar = Regex::new(r"^RULE:\[(\d*):([^\]]*)\](\(([^)]*)\))?(s/([^/]*)/([^/]*)/(g)?)?/?(L|U)?$")
        .expect("a valid pattern");
    let c = grammar.captures(text).ok_or_else(|| format!("Invalid rule: {text}"))?;
    let components = c[1].parse::<usize>().map_err(|_| format!("Invalid rule: {text}"))?;
    let compile = |p: &str| Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("Invalid rule: {text}: {e}"));
    let matches = c.get(4).map(|m| compile(m.as_str())).transpose()?;
    let substitution = match (c.get(6), c.get(7)) {
        (Some(from), Some(to)) => Some((
            Regex::new(from.as_str()).map_err(|e| format!("Invalid rule: {text}: {e}"))?,
            java_replacement(to.as_str()),
            c.get(8).is_some(),
        )),
        _ => None,
    };
    Ok(Rule::Custom {
        components,
        format: c[2].to_string(),
        matches,
        substitution,
        lower: c.get(9).is_some_and(|m| m.as_str() == "L"),
        upper: c.get(9).is_some_and(|m| m.as_str() == "U"),
    })
}

/// `$0` is the realm, `$1` the first component, `$2` the second.
fn fill(format: &str, params: &[&str]) -> Option<String> {
    let mut out = String::new();
    let mut chars = format.char_indices().peekable();
    while let Some((_, ch)) = chars.next() {
        if ch != '$' {
            out.push(ch);
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        if digits.is_empty() {
            continue;
        }
        out.push_str(params.get(digits.parse::<usize>().ok()?)?);
    }
    Some(out)
}

impl KerberosShortNamer {
    /// Rules as Kafka's list value gives them: separated by commas, tried in order.
    pub fn parse(default_realm: &str, rules: &str) -> Result<KerberosShortNamer, String> {
        let texts: Vec<&str> = rules.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
        let rules = if texts.is_empty() {
            vec![Rule::Default]
        } else {
            texts.into_iter().map(parse_rule).collect::<Result<_, _>>()?
        };
        Ok(KerberosShortNamer {
            default_realm: default_realm.to_string(),
            rules,
        })
    }

    /// The short name, or why no rule gives one (the login is refused then).
    pub fn short_name(&self, principal: &str) -> Result<String, String> {
        let name = parse_name(principal)?;
        let Some(realm) = name.realm else {
            return Ok(name.service.to_string());
        };
        let params: Vec<&str> = match name.host {
            None => vec![realm, name.service],
            Some(host) => vec![realm, name.service, host],
        };
        for rule in &self.rules {
            let result = match rule {
                Rule::Default => (realm == self.default_realm).then(|| name.service.to_string()),
                Rule::Custom {
                    components,
                    format,
                    matches,
                    substitution,
                    lower,
                    upper,
                } => {
                    if params.len() - 1 != *components {
                        None
                    } else {
                        let base =
                            fill(format, &params).ok_or_else(|| format!("bad format in rule for {principal}"))?;
                        if matches.as_ref().is_some_and(|m| !m.is_match(&base)) {
                            None
                        } else {
                            let out = match substitution {
                                None => base,
                                Some((from, to, true)) => from.replace_all(&base, to.as_str()).into_owned(),
                                Some((from, to, false)) => from.replace(&base, to.as_str()).into_owned(),
                            };
                            Some(if *lower {
                                out.to_lowercase()
                            } else if *upper {
                                out.to_uppercase()
                            } else {
                                out
                            })
                        }
                    }
                }
            };
            if let Some(result) = result {
                if result.contains(['/', '@']) {
                    return Err(format!("Non-simple name {result} after auth_to_local rule"));
                }
                return Ok(result);
            }
        }
        Err(format!("No rules apply to {principal}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_takes_the_first_component_in_the_default_realm() {
        let n = KerberosShortNamer::parse("EXAMPLE.COM", "").unwrap();
        assert_eq!(n.short_name("alice@EXAMPLE.COM").unwrap(), "alice");
        assert_eq!(n.short_name("kafka/broker1.example.com@EXAMPLE.COM").unwrap(), "kafka");
        assert!(n.short_name("alice@OTHER.COM").is_err());
        assert_eq!(n.short_name("bob").unwrap(), "bob");
    }

    #[test]
    fn rules_as_kafkas_documentation_writes_them() {
        // Kafka's docs: map user@MYDOMAIN.COM to user, lower case.
        let n = KerberosShortNamer::parse(
            "EXAMPLE.COM",
            "RULE:[1:$1@$0](.*@MYDOMAIN.COM)s/@.*//L,RULE:[2:$1](kafka)s/^.*$/broker/,DEFAULT",
        )
        .unwrap();
        assert_eq!(n.short_name("Alice@MYDOMAIN.COM").unwrap(), "alice");
        assert_eq!(n.short_name("kafka/host@OTHER.ORG").unwrap(), "broker");
        assert_eq!(n.short_name("carol@EXAMPLE.COM").unwrap(), "carol");
        assert!(n.short_name("dave@ELSEWHERE").is_err());
        // Upper case, and a rule that leaves an '@' is refused as Kafka refuses it.
        let u = KerberosShortNamer::parse("X", "RULE:[1:$1]/U").unwrap();
        assert_eq!(u.short_name("eve@Y").unwrap(), "EVE");
        let bad = KerberosShortNamer::parse("X", "RULE:[1:$1@$0]").unwrap();
        assert!(bad.short_name("eve@Y").is_err());
        assert!(KerberosShortNamer::parse("X", "RULE:nonsense").is_err());
    }
}
