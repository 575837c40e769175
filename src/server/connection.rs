//! One client connection: reads request frames, hands each to the dispatcher,
//! and writes responses back in request order. Requests on a connection are
//! served one at a time, as Kafka serves them, so pipelined requests are
//! answered in order; other connections are never held up. Anything that is
//! not a well-formed request closes this connection only.

use super::frame::FrameReader;
use crate::api::RequestContext;
use crate::broker::Broker;
use crate::protocol::ResponseFrame;
use crate::protocol::{dispatch, parse_request};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info_span, warn, Instrument};

pub async fn serve(stream: TcpStream, peer: SocketAddr, listener: String, broker: Arc<Broker>) {
    let span = info_span!("connection", %peer, listener = %listener);
    serve_inner(stream, peer, listener, broker)
        .instrument(span)
        .await
}

async fn serve_inner(stream: TcpStream, peer: SocketAddr, listener: String, broker: Arc<Broker>) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let mut frames = FrameReader::new(reader, broker.config.socket_request_max_bytes);
    debug!("accepted");
    loop {
        let next = tokio::select! {
            biased;
            _ = broker.shutdown.cancelled() => break,
            next = frames.next_frame() => next,
        };
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                debug!("closed by the client");
                break;
            }
            Err(e) => {
                warn!(error = %e, "closing connection: bad frame");
                break;
            }
        };
        let request = match parse_request(frame) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "closing connection: bad request");
                break;
            }
        };
        let client_id = request.header.client_id.as_ref().map(|c| c.to_string());
        let span = tracing::debug_span!(
            "request",
            api = ?request.api_key,
            version = request.version(),
            correlation_id = request.header.correlation_id,
            client_id = client_id.as_deref().unwrap_or(""),
        );
        let ctx = RequestContext {
            listener: listener.clone(),
            peer,
            client_id,
            api_version: request.version(),
            correlation_id: request.header.correlation_id,
        };
        match dispatch(&broker, &ctx, request)
            .instrument(span.clone())
            .await
        {
            Ok(Some(response)) => {
                if let Err(e) = write_frame(&mut writer, &response).await {
                    debug!(parent: &span, error = %e, "could not write response");
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(parent: &span, error = %e, "closing connection: request not served");
                break;
            }
        }
    }
}

/// Writes a frame's chunks with vectored writes, resuming after partial ones.
async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &ResponseFrame,
) -> std::io::Result<()> {
    let chunks = &frame.0;
    let (mut index, mut offset) = (0usize, 0usize);
    while index < chunks.len() {
        let mut slices = Vec::with_capacity((chunks.len() - index).min(64));
        slices.push(IoSlice::new(&chunks[index][offset..]));
        slices.extend(chunks[index + 1..].iter().take(63).map(|c| IoSlice::new(c)));
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while index < chunks.len() && written >= chunks[index].len() - offset {
            written -= chunks[index].len() - offset;
            index += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}
