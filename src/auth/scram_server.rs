//! The server side of SCRAM-SHA-256/512 (RFC 5802) as Kafka's
//! ScramSaslServer runs it, with the client-first extensions Kafka defines:
//! `tokenauth=true` names a delegation token instead of a user (KIP-48).
//! rsasl's SCRAM server leaves extensions out of the signed AuthMessage,
//! so a token login could never verify there.

use super::scram::{ScramCredential, ScramMechanism};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Who the client-first message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    /// `tokenauth=true`: `user` is a delegation token id.
    pub token_auth: bool,
    authzid: Option<String>,
    gs2_header: String,
    bare: String,
    nonce: String,
}

/// Why an exchange failed; the client is only ever told that it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramFailure {
    Malformed(&'static str),
    /// An authorization id other than the user.
    OtherAuthzId,
    WrongProof,
}

fn unescape(name: &str) -> Result<String, ScramFailure> {
    // RFC 5802: ',' and '=' travel as =2C and =3D; any other '=' is an error.
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramFailure::Malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ClientFirst {
    pub fn parse(token: &[u8]) -> Result<ClientFirst, ScramFailure> {
        let text = std::str::from_utf8(token).map_err(|_| ScramFailure::Malformed("not UTF-8"))?;
        let mut parts = text.splitn(3, ',');
        let (flag, authzid_raw, bare) = match (parts.next(), parts.next(), parts.next()) {
            (Some(f), Some(a), Some(b)) => (f, a, b),
            _ => return Err(ScramFailure::Malformed("no GS2 header")),
        };
        // Kafka's listeners offer no channel binding: "n" or "y" only.
        if flag != "n" && flag != "y" {
            return Err(ScramFailure::Malformed("channel binding is not supported"));
        }
        let authzid = match authzid_raw {
            "" => None,
            a => Some(unescape(
                a.strip_prefix("a=")
                    .ok_or(ScramFailure::Malformed("bad authorization id"))?,
            )?),
        };
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(ScramFailure::Malformed("no user name"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
            .ok_or(ScramFailure::Malformed("no nonce"))?;
        let mut token_auth = false;
        for extension in fields {
            let (key, value) = extension
                .split_once('=')
                .ok_or(ScramFailure::Malformed("bad extension"))?;
            if key == "tokenauth" {
                token_auth = value.eq_ignore_ascii_case("true");
            }
        }
        Ok(ClientFirst {
            user: unescape(user)?,
            token_auth,
            authzid,
            gs2_header: format!("{flag},{authzid_raw},"),
            bare: bare.to_string(),
            nonce: nonce.to_string(),
        })
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    // An HMAC key may have any length; new_from_slice cannot fail for it.
    match mechanism {
        ScramMechanism::Sha256 => Hmac::<Sha256>::new_from_slice(key)
            .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
            .unwrap_or_default(),
        ScramMechanism::Sha512 => Hmac::<Sha512>::new_from_slice(key)
            .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
            .unwrap_or_default(),
    }
}

fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The exchange after the server-first message: what the client's proof
/// must verify against.
pub struct AwaitingFinal {
    mechanism: ScramMechanism,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    credential: ScramCredential,
}

/// Answers a parsed client-first message with the credential of whom it
/// names: the server-first message to send, and the state for the final one.
pub fn server_first(
    mechanism: ScramMechanism,
    first: ClientFirst,
    credential: ScramCredential,
) -> Result<(Vec<u8>, AwaitingFinal), ScramFailure> {
    if first.authzid.as_ref().is_some_and(|z| *z != first.user) {
        return Err(ScramFailure::OtherAuthzId);
    }
    let server_nonce: [u8; 24] = rand::random();
    let nonce = format!("{}{}", first.nonce, b64().encode(server_nonce));
    let server_first = format!(
        "r={nonce},s={},i={}",
        b64().encode(&credential.salt),
        credential.iterations
    );
    let out = server_first.clone().into_bytes();
    Ok((
        out,
        AwaitingFinal {
            mechanism,
            first,
            server_first,
            nonce,
            credential,
        },
    ))
}

impl AwaitingFinal {
    /// Checks the client's proof; the server-final message (its signature) if right.
    pub fn finish(self, token: &[u8]) -> Result<Vec<u8>, ScramFailure> {
        let text = std::str::from_utf8(token).map_err(|_| ScramFailure::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramFailure::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramFailure::Malformed("no channel binding"))?;
        if b64().decode(binding).ok().as_deref() != Some(self.first.gs2_header.as_bytes()) {
            return Err(ScramFailure::Malformed("channel binding differs from the GS2 header"));
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramFailure::Malformed("no nonce"))?;
        if nonce != self.nonce {
            return Err(ScramFailure::Malformed("the nonce is not the server's"));
        }
        let proof = b64()
            .decode(proof)
            .map_err(|_| ScramFailure::Malformed("proof not base64"))?;
        let auth_message = format!("{},{},{}", self.first.bare, self.server_first, without_proof);
        let m = self.mechanism;
        let client_signature = hmac(m, &self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramFailure::WrongProof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&hash(m, &client_key), &self.credential.stored_key) {
            return Err(ScramFailure::WrongProof);
        }
        let server_signature = hmac(m, &self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", b64().encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::salt_password;

    /// A client's side of the exchange (RFC 5802), to drive the server.
    fn client_final(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        gs2: &str,
    ) -> (String, Vec<u8>) {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        let salt = b64().decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        let iterations: i32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = salt_password(m, password.as_bytes(), &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c={},r={nonce}", b64().encode(gs2));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(m, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_key = hmac(m, &salted, b"Server Key");
        let expected = format!("v={}", b64().encode(hmac(m, &server_key, auth_message.as_bytes())));
        (
            format!("{without_proof},p={}", b64().encode(proof)),
            expected.into_bytes(),
        )
    }

    fn run(m: ScramMechanism, stored_password: &str, password: &str, first: &str) -> Result<(), ScramFailure> {
        let credential = ScramCredential::from_password(m, stored_password, 4096);
        let parsed = ClientFirst::parse(first.as_bytes())?;
        let gs2 = parsed.gs2_header.clone();
        let bare = parsed.bare.clone();
        let (server_first, state) = server_first(m, parsed, credential)?;
        let server_first = String::from_utf8(server_first).unwrap();
        let (final_message, expected) = client_final(m, password, &bare, &server_first, &gs2);
        let answer = state.finish(final_message.as_bytes())?;
        assert_eq!(answer, expected);
        Ok(())
    }

    #[test]
    fn a_right_password_verifies_with_or_without_extensions() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            assert_eq!(run(m, "pw", "pw", "n,,n=alice,r=abc"), Ok(()));
            // Kafka's token login signs its extension too.
            assert_eq!(run(m, "pw", "pw", "n,,n=tok1,r=abc,tokenauth=true"), Ok(()));
            assert_eq!(run(m, "pw", "nope", "n,,n=alice,r=abc"), Err(ScramFailure::WrongProof));
        }
    }

    #[test]
    fn client_first_parts() {
        let f = ClientFirst::parse(b"n,,n=a=2Cb=3Dc,r=xyz,tokenauth=true").unwrap();
        assert_eq!((f.user.as_str(), f.token_auth), ("a,b=c", true));
        let f = ClientFirst::parse(b"n,a=alice,n=alice,r=xyz").unwrap();
        assert_eq!(f.authzid.as_deref(), Some("alice"));
        assert!(!f.token_auth);
        assert!(ClientFirst::parse(b"garbage").is_err());
        assert!(ClientFirst::parse(b"p=tls-unique,,n=a,r=x").is_err());
        assert!(ClientFirst::parse(b"n,,m=x,n=a,r=x").is_err());
        assert!(ClientFirst::parse(b"n,,n=a=x,r=x").is_err());
        let other = ClientFirst::parse(b"n,a=bob,n=alice,r=xyz").unwrap();
        let credential = ScramCredential::from_password(ScramMechanism::Sha256, "pw", 4096);
        assert!(matches!(
            server_first(ScramMechanism::Sha256, other, credential),
            Err(ScramFailure::OtherAuthzId)
        ));
    }
}
