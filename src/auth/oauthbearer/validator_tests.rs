use super::*;
use crate::config::oauthbearer::JwksSource;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const NOW_MS: i64 = 1_800_000_000_000;

fn now_s() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn unsecured_token(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn unsecured_options(required_scope: &[&str]) -> TokenValidator {
    TokenValidator::Unsecured(UnsecuredOptions {
        claims: ClaimNames {
            sub: "sub".into(),
            scope: "scope".into(),
        },
        required_scope: required_scope.iter().map(|s| s.to_string()).collect(),
        clock_skew_ms: 1000,
    })
}

#[test]
fn unsecured_tokens_as_kafkas_default_handler() {
    let v = unsecured_options(&[]);
    let exp = NOW_MS / 1000 + 60;
    let ok = v.validate(&unsecured_token(json!({"sub":"alice","exp":exp,"iat":exp-120})), NOW_MS);
    assert_eq!(
        ok,
        Ok(BearerToken {
            principal: "alice".into(),
            expires_ms: exp * 1000
        })
    );
    // Expired (beyond the skew), issued in the future, no sub, no exp, signed.
    for claims in [
        json!({"sub":"alice","exp":NOW_MS / 1000 - 2}),
        json!({"sub":"alice","exp":exp,"iat":NOW_MS / 1000 + 5}),
        json!({"exp":exp}),
        json!({"sub":"alice"}),
        json!({"sub":"","exp":exp}),
    ] {
        assert!(
            v.validate(&unsecured_token(claims.clone()), NOW_MS).is_err(),
            "{claims}"
        );
    }
    let signed = unsecured_token(json!({"sub":"a","exp":exp})) + "c2ln";
    assert!(v.validate(&signed, NOW_MS).is_err());
    // A required scope missing is insufficient_scope, with the scope named.
    let scoped = unsecured_options(&["write"]);
    let refused = scoped
        .validate(&unsecured_token(json!({"sub":"a","exp":exp,"scope":"read"})), NOW_MS)
        .unwrap_err();
    assert_eq!(
        refused.challenge(),
        r#"{"status":"insufficient_scope", "scope":"[write]"}"#
    );
    assert!(scoped
        .validate(
            &unsecured_token(json!({"sub":"a","exp":exp,"scope":["read","write"]})),
            NOW_MS
        )
        .is_ok());
}

struct Signer {
    key: EncodingKey,
    jwk: Jwk,
}

fn signer(kid: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let (x, y) = point[1..].split_at(32);
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }))
    .unwrap();
    Signer {
        key: EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk,
    }
}

fn sign(signer: &Signer, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, &signer.key).unwrap()
}

fn signed_validator(keys: Vec<Jwk>) -> TokenValidator {
    TokenValidator::Signed {
        settings: JwksSettings {
            source: JwksSource::File("/dev/null".into()),
            refresh_ms: 1000,
            retry_backoff_ms: 10,
            retry_backoff_max_ms: 100,
            expected_audience: vec!["kafka".into()],
            expected_issuer: Some("https://idp.test".into()),
            clock_skew_s: 5,
            claims: ClaimNames {
                sub: "sub".into(),
                scope: "scope".into(),
            },
        },
        keys: Arc::new(JwksKeys::fixed(keys)),
    }
}

#[test]
fn signed_tokens_are_checked_against_the_jwks_keys() {
    let idp = signer("k1");
    let other = signer("k1");
    let v = signed_validator(vec![idp.jwk.clone()]);
    let now = now_s();
    let good = json!({"sub":"alice","aud":"kafka","iss":"https://idp.test","exp":now+60,"iat":now});
    let token = v.validate(&sign(&idp, Some("k1"), good.clone()), 0).unwrap();
    assert_eq!(token.principal, "alice");
    assert_eq!(token.expires_ms, (now + 60) * 1000);
    // Without a kid, the keys of the algorithm's family are tried.
    assert!(v.validate(&sign(&idp, None, good.clone()), 0).is_ok());
    let with = |change: serde_json::Value| {
        let mut claims = good.clone();
        claims
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        claims
    };
    let refused = [
        ("signed by another key", sign(&other, Some("k1"), good.clone())),
        ("an unknown kid", sign(&idp, Some("k2"), good.clone())),
        ("wrong audience", sign(&idp, Some("k1"), with(json!({"aud":"other"})))),
        (
            "wrong issuer",
            sign(&idp, Some("k1"), with(json!({"iss":"https://evil"}))),
        ),
        ("expired", sign(&idp, Some("k1"), with(json!({"exp": now - 30})))),
        ("not yet valid", sign(&idp, Some("k1"), with(json!({"nbf": now + 60})))),
        ("no iat", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("iat");
            sign(&idp, Some("k1"), c)
        }),
        ("no aud", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("aud");
            sign(&idp, Some("k1"), c)
        }),
        ("unsecured", unsecured_token(good.clone())),
    ];
    for (what, token) in refused {
        let rejection = v.validate(&token, 0).unwrap_err();
        assert_eq!(rejection.challenge(), r#"{"status":"invalid_token"}"#, "{what}");
    }
    // Expired within the clock skew is still good.
    assert!(v
        .validate(&sign(&idp, Some("k1"), with(json!({"exp": now - 2}))), 0)
        .is_ok());
}

#[test]
fn claims_only_reads_the_claims_without_a_signature() {
    let v = TokenValidator::ClaimsOnly(ClaimNames {
        sub: "client_id".into(),
        scope: "scope".into(),
    });
    let exp = NOW_MS / 1000 + 60;
    let t = format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(json!({"client_id":"svc","exp":exp}).to_string())
    );
    assert_eq!(v.validate(&t, NOW_MS).unwrap().principal, "svc");
    assert!(v.validate(&t, (exp + 1) * 1000).is_err());
    let dup = format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(json!({"client_id":"svc","exp":exp,"scope":["a","a"]}).to_string())
    );
    assert!(v.validate(&dup, NOW_MS).is_err());
}
