//! A SASL listener's connection before and during authentication: frames
//! parsed as the connection does, then the SASL gate's decision and its
//! SaslHandshake/SaslAuthenticate handling (PLAIN, SCRAM-SHA-256/512,
//! OAUTHBEARER), the way src/server/connection.rs drives it.
#![no_main]

#[path = "common/credentials.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice::config::security::{SaslMechanism, SaslSettings};
use sluice::protocol::parse_request;
use sluice::server::frame::FrameReader;
use sluice::server::sasl_gate::{Decision, SaslGate};
use std::sync::OnceLock;
use std::time::Instant;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let settings = SaslSettings {
        mechanisms: vec![
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
            SaslMechanism::OAuthBearer,
        ],
        plain_users: Default::default(),
        oauthbearer: None,
        gssapi: None,
    };
    let mut gate = SaslGate::new(&settings, common::credentials(), 60_000);
    let peer = "127.0.0.1:1".parse().expect("address");
    runtime().block_on(async {
        let mut frames = FrameReader::new(data, 1 << 20);
        while let Ok(Some(frame)) = frames.next_frame().await {
            let Ok(request) = parse_request(frame) else { return };
            match gate.decide(request.api_key, Instant::now()) {
                Decision::Pass => {}
                Decision::Close(_) | Decision::Refuse(_) => return,
                Decision::Handle => match gate.handle(&request, peer, Instant::now()) {
                    Ok(reply) if !reply.close => {}
                    _ => return,
                },
            }
        }
    });
});
