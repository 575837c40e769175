//! The parts of a JWT in compact form and its claims, read as Kafka's
//! validators read them (numbers may be fractional seconds; a scope is one
//! string or a list of them).

use super::Rejection;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

pub type Claims = Map<String, Value>;

/// `header.payload.signature`, each Base64URL (the signature may be empty).
pub struct CompactJwt<'a> {
    pub header: Claims,
    pub claims: Claims,
    pub signature: &'a str,
}

fn decode_part(part: &str) -> Result<Vec<u8>, Rejection> {
    // Clients pad or not; Kafka's unsecured tokens have been seen with either alphabet.
    let lenient = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, lenient);
    url.decode(part)
        .or_else(|_| standard.decode(part))
        .or_else(|_| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')))
        .or_else(|_| STANDARD_NO_PAD.decode(part.trim_end_matches('=')))
        .map_err(|_| Rejection::invalid("malformed Base64 URL encoded value"))
}

fn json_object(part: &str) -> Result<Claims, Rejection> {
    match serde_json::from_slice::<Value>(&decode_part(part)?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Rejection::invalid("malformed JSON")),
    }
}

pub fn parse(token: &str) -> Result<CompactJwt<'_>, Rejection> {
    if token.contains("..") {
        return Err(Rejection::invalid("Malformed compact serialization contains '..'"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(Rejection::invalid(
            "JWT compact serializations must have 3 dot-separated Base64URL-encoded values",
        ));
    };
    Ok(CompactJwt {
        header: json_object(header)?,
        claims: json_object(claims)?,
        signature,
    })
}

/// A number claim in seconds, as milliseconds (None when absent).
pub fn seconds_claim_ms(claims: &Claims, name: &str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|s| Some((s * 1000.0).round() as i64))
            .ok_or_else(|| Rejection::invalid(format!("The '{name}' claim is not a number"))),
        Some(_) => Err(Rejection::invalid(format!("The '{name}' claim was not of type Number"))),
    }
}

/// A string claim, trimmed; refused when absent, not a string or blank.
pub fn required_string_claim(claims: &Claims, name: &str) -> Result<String, Rejection> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) => Err(Rejection::invalid(format!("{name} value must be non-empty"))),
        Some(_) => Err(Rejection::invalid(format!("The '{name}' claim was not of type String"))),
        None => Err(Rejection::invalid(format!("No principal name in JWT claim: {name}"))),
    }
}

/// The scope: one string (one scope, as Kafka reads it) or a list of strings.
pub fn scope_claim(claims: &Claims, name: &str) -> Result<Vec<String>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.trim().to_string()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.trim().to_string()),
                _ => Err(Rejection::invalid(format!("The '{name}' claim holds a non-string"))),
            })
            .filter(|s| s.as_ref().map_or(true, |s| !s.is_empty()))
            .collect(),
        Some(_) => Err(Rejection::invalid(format!("The '{name}' claim was not of type List"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn parts_and_claims() {
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(r#"{"sub":" alice ","exp":1.5,"scope":["a","b"]}"#)
        );
        let jwt = parse(&token).unwrap();
        assert_eq!(jwt.header["alg"], "none");
        assert_eq!(jwt.signature, "");
        assert_eq!(required_string_claim(&jwt.claims, "sub").unwrap(), "alice");
        assert_eq!(seconds_claim_ms(&jwt.claims, "exp").unwrap(), Some(1500));
        assert_eq!(seconds_claim_ms(&jwt.claims, "iat").unwrap(), None);
        assert_eq!(scope_claim(&jwt.claims, "scope").unwrap(), vec!["a", "b"]);
        assert!(parse("a.b").is_err());
        assert!(parse(&format!("{}..x", b64("{}"))).is_err());
        assert!(parse(&format!("{}.{}.", b64("[1]"), b64("{}"))).is_err());
        assert!(parse("!!.??.").is_err());
    }
}
