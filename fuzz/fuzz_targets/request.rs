//! A client's byte stream as the connection reads it: frames (FrameReader),
//! then each frame's header (parse_request) and body decoded for its API and
//! version (registry::decode_body, the handlers' decoder), and the error
//! response the broker would build from it. Quorum frames go to their own
//! decoder, as on a controller listener.
#![no_main]

use kafka_protocol::ResponseError;
use libfuzzer_sys::fuzz_target;
use sluice::protocol::error_response::error_response;
use sluice::protocol::{parse_request, registry};
use sluice::server::frame::FrameReader;
use std::sync::OnceLock;

/// socket.request.max.bytes' default: the reader grows only with bytes that arrive.
const MAX_FRAME: usize = 104_857_600;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let mut frames = FrameReader::new(data, MAX_FRAME);
        while let Ok(Some(frame)) = frames.next_frame().await {
            if sluice::quorum::rpc::is_quorum_frame(&frame) {
                let _ = sluice::quorum::rpc::decode_request(&frame);
                continue;
            }
            let Ok(request) = parse_request(frame) else { continue };
            if registry::decode_body(&request).is_ok() {
                // What the broker answers when it refuses a request it decoded.
                let _ = error_response(&request, ResponseError::ClusterAuthorizationFailed.code());
            }
        }
    });
});
