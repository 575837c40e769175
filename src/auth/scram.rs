//! SCRAM credentials (RFC 5802/7677) as Kafka keeps them: salt, iteration
//! count, StoredKey and ServerKey. The password itself is never stored.

use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The number Kafka's protocol uses (AlterUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    pub iterations: i32,
    #[serde(with = "hex_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let (stored_key, server_key) = match mechanism {
            ScramMechanism::Sha256 => {
                let (client_key, server_key) = derive_keys::<Sha256>(salted);
                (Sha256::digest(client_key).to_vec(), server_key.to_vec())
            }
            ScramMechanism::Sha512 => {
                let (client_key, server_key) = derive_keys::<Sha512>(salted);
                (Sha512::digest(client_key).to_vec(), server_key.to_vec())
            }
        };
        ScramCredential {
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }

    /// From a password, with a fresh random salt (`--add-scram`).
    pub fn from_password(mechanism: ScramMechanism, password: &str, iterations: i32) -> ScramCredential {
        let salt: [u8; 32] = rand::random();
        let salted = salt_password(mechanism, password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt.to_vec(), &salted, iterations)
    }
}

/// PBKDF2 of the password, as SCRAM's Hi().
pub fn salt_password(mechanism: ScramMechanism, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
    let iterations = iterations.max(1) as u32;
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut out = sha2::digest::generic_array::GenericArray::default();
            hash_password::<Sha256>(password, iterations, salt, &mut out);
            out.to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut out = sha2::digest::generic_array::GenericArray::default();
            hash_password::<Sha512>(password, iterations, salt, &mut out);
            out.to_vec()
        }
    }
}

/// Parses `sluice --add-scram 'SCRAM-SHA-512=[name=alice,password=alice-secret]'`
/// (the syntax of `kafka-storage format --add-scram`; `iterations=` optional).
pub fn parse_add_scram(spec: &str) -> Result<(String, ScramMechanism, ScramCredential), String> {
    let (mech, rest) = spec
        .split_once('=')
        .ok_or_else(|| format!("'{spec}': expected MECHANISM=[name=...,password=...]"))?;
    let mechanism = ScramMechanism::parse(mech.trim())
        .ok_or_else(|| format!("'{spec}': mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let body = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| format!("'{spec}': the credential goes in [...]"))?;
    let (mut name, mut password, mut iterations) = (None, None, MIN_ITERATIONS);
    for field in body.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| format!("'{spec}': '{field}' is not key=value"))?;
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "name" => name = Some(v.to_string()),
            "password" => password = Some(v.to_string()),
            "iterations" => {
                iterations = v
                    .parse()
                    .ok()
                    .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n))
                    .ok_or_else(|| format!("'{spec}': iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}"))?
            }
            other => return Err(format!("'{spec}': unknown field '{other}'")),
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("'{spec}': name= is missing"))?;
    let password = password.ok_or_else(|| format!("'{spec}': password= is missing"))?;
    Ok((
        name,
        mechanism,
        ScramCredential::from_password(mechanism, &password, iterations),
    ))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("bad hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn rfc7677_server_signature() {
        // RFC 7677 section 3: "user"/"pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
        use hmac::{Hmac, Mac};
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81,
        ];
        assert_eq!(base64(&salt), "W22ZaJ0SNY7soEsUEjb6gQ==");
        let salted = salt_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let c = ScramCredential::from_salted_password(ScramMechanism::Sha256, salt.to_vec(), &salted, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut mac = Hmac::<Sha256>::new_from_slice(&c.server_key).unwrap();
        mac.update(auth_message.as_bytes());
        assert_eq!(
            base64(&mac.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn add_scram_syntax() {
        let (name, mech, c) = parse_add_scram("SCRAM-SHA-512=[name=alice,password=alice-secret]").unwrap();
        assert_eq!(
            (name.as_str(), mech, c.iterations),
            ("alice", ScramMechanism::Sha512, 4096)
        );
        assert_eq!(c.stored_key.len(), 64);
        let (_, _, c) = parse_add_scram("SCRAM-SHA-256=[name=\"bob\",password=\"x\",iterations=8192]").unwrap();
        assert_eq!(c.iterations, 8192);
        assert!(parse_add_scram("SCRAM-SHA-1=[name=a,password=b]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[password=b]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[name=a,password=b,iterations=10]").is_err());
    }
}
