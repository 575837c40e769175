//! Response framing: length prefix, response header, body.

use super::RequestError;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

/// Encodes a whole response frame, ready for the socket.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, RequestError> {
    let fail = |reason: String| RequestError::Encode {
        api: api_key,
        version,
        reason,
    };
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| fail(e.to_string()))?;
    let body_size = body.compute_size(version).map_err(|e| fail(e.to_string()))?;
    let size = header_size + body_size;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| fail(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| fail(e.to_string()))?;
    Ok(buf.freeze())
}
