//! The client's initial response (RFC 7628 §3.1), checked as Kafka's
//! OAuthBearerClientInitialResponse checks it:
//! `n,[a=<authzid>],\x01auth=Bearer <token>\x01[key=value\x01]...\x01`.

use std::collections::BTreeMap;

const SEPARATOR: char = '\u{1}';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialResponse {
    pub token: String,
    /// Empty when the client names no authorization id.
    pub authorization_id: String,
    pub extensions: BTreeMap<String, String>,
}

/// `saslname` of RFC 5801: any of 0x01-0x7F but ',' and '=', or the escapes =2C and =3D.
fn is_saslname(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"2C") || bytes[i + 1..].starts_with(b"3D") => i += 3,
            b'=' | b',' | 0 | 0x80.. => return false,
            _ => i += 1,
        }
    }
    !s.is_empty()
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_value(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
}

/// `b64token` of RFC 6750: what Kafka's AUTH_PATTERN takes as a token.
fn is_token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b))
}

pub fn parse(bytes: &[u8]) -> Result<InitialResponse, &'static str> {
    const MALFORMED: &str = "Invalid OAUTHBEARER client first message";
    let text = std::str::from_utf8(bytes).map_err(|_| MALFORMED)?;
    let rest = text.strip_prefix("n,").ok_or(MALFORMED)?;
    let (authzid, rest) = rest.split_once(',').ok_or(MALFORMED)?;
    let authorization_id = match authzid {
        "" => String::new(),
        a => {
            let name = a.strip_prefix("a=").filter(|n| is_saslname(n)).ok_or(MALFORMED)?;
            name.replace("=2C", ",").replace("=3D", "=")
        }
    };
    // \x01 key=value\x01 ... \x01: the pairs end with an empty one.
    let pairs = rest
        .strip_prefix(SEPARATOR)
        .and_then(|r| r.strip_suffix(SEPARATOR))
        .ok_or(MALFORMED)?;
    let mut extensions = BTreeMap::new();
    let mut auth = None;
    if !pairs.is_empty() {
        let pairs = pairs.strip_suffix(SEPARATOR).ok_or(MALFORMED)?;
        for pair in pairs.split(SEPARATOR) {
            let (key, value) = pair.split_once('=').ok_or(MALFORMED)?;
            if !is_key(key) || !is_value(value) {
                return Err(MALFORMED);
            }
            if key == "auth" {
                auth = Some(value);
            } else {
                extensions.insert(key.to_string(), value.to_string());
            }
        }
    }
    let auth = auth.ok_or("Invalid OAUTHBEARER client first message: 'auth' not specified")?;
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or("Invalid OAUTHBEARER client first message: invalid 'auth' format")?;
    let token = token.trim_start_matches(' ');
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || !is_token(token) {
        return Err("Invalid OAUTHBEARER client first message: invalid 'auth' format");
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("Invalid scheme in OAUTHBEARER client first message");
    }
    Ok(InitialResponse {
        token: token.to_string(),
        authorization_id,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_and_librdkafka_initial_responses() {
        // Kafka's toBytes(): no extensions, then one.
        let r = parse(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap();
        assert_eq!(r.token, "abc.def.");
        assert!(r.authorization_id.is_empty() && r.extensions.is_empty());
        let r = parse(b"n,a=alice,\x01auth=Bearer t0k\x01traceId=42\x01\x01").unwrap();
        assert_eq!(r.authorization_id, "alice");
        assert_eq!(r.extensions.get("traceId").map(String::as_str), Some("42"));
        let r = parse(b"n,,\x01auth=bearer   xyz==\x01\x01").unwrap();
        assert_eq!(r.token, "xyz==");
    }

    #[test]
    fn malformed_responses_are_refused() {
        for bad in [
            &b""[..],
            b"n,,auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"n,,\x01\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01auth=Bearer x y\x01\x01",
            b"n,,\x01auth=Bearer x\x01bad-key=1\x01\x01",
            b"y,,\x01auth=Bearer x\x01\x01",
            b"n,a=,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer \xff\x01\x01",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
