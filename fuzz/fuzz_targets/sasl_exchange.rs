//! One SASL exchange on its own (auth::sasl::SaslExchange): the client's
//! tokens straight in, without Kafka framing, so the fuzzer works on the
//! mechanisms' own parsers (PLAIN through rsasl, SCRAM client-first and
//! client-final, OAUTHBEARER's initial response and unsecured JWT).
//!
//! First byte: the mechanism. The rest: tokens separated by 0xFF 0xFF. In a
//! token after the first, "%NONCE%" becomes the nonce of the server's last
//! answer, so a SCRAM client-final can get past the nonce check to the proof.
#![no_main]

#[path = "common/credentials.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice::auth::sasl::{SaslExchange, Step};
use sluice::config::security::SaslMechanism;

const SEPARATOR: &[u8] = &[0xff, 0xff];
const NONCE: &[u8] = b"%NONCE%";

fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = data.windows(sep.len()).position(|w| w == sep) {
        out.push(&data[..at]);
        data = &data[at + sep.len()..];
    }
    out.push(data);
    out
}

/// The "r=" attribute of a SCRAM server-first message.
fn server_nonce(server_first: &[u8]) -> Option<&[u8]> {
    split(server_first, b",").into_iter().find_map(|f| f.strip_prefix(b"r="))
}

fn with_nonce(token: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
    let Some(nonce) = nonce else { return token.to_vec() };
    split(token, NONCE).join(nonce)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let mechanism = match which % 4 {
        0 => SaslMechanism::Plain,
        1 => SaslMechanism::ScramSha256,
        2 => SaslMechanism::ScramSha512,
        _ => SaslMechanism::OAuthBearer,
    };
    let Ok(mut exchange) = SaslExchange::start(mechanism, common::credentials()) else { return };
    let mut last: Vec<u8> = Vec::new();
    for token in split(rest, SEPARATOR) {
        let token = with_nonce(token, server_nonce(&last));
        match exchange.step(&token) {
            Ok(Step::Continue(out)) => last = out,
            Ok(Step::Done { principal, .. }) => {
                // Only alice's password (or her token) may log in; an unsecured
                // bearer token names whom it likes.
                if mechanism != SaslMechanism::OAuthBearer {
                    assert_eq!(principal, format!("User:{}", common::USER));
                }
                return;
            }
            Err(_) => return,
        }
    }
});
