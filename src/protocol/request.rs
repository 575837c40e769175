//! Splits a request frame into its header and body, refusing what cannot be
//! a Kafka request before any handler sees it.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RequestError {
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed request header: {0}")]
    Header(String),
    #[error("malformed {api:?} v{version} request: {reason}")]
    Body { api: ApiKey, version: i16, reason: String },
    #[error("could not encode the {api:?} v{version} response: {reason}")]
    Encode { api: ApiKey, version: i16, reason: String },
}

pub struct ParsedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
    /// The whole frame (header and body), for a request forwarded elsewhere.
    pub frame: Bytes,
}

impl ParsedRequest {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Api key and version sit in the first four bytes of every request.
pub fn peek_api(frame: &[u8]) -> Option<(i16, i16)> {
    if frame.len() < 4 {
        return None;
    }
    Some((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
    ))
}

/// Decodes the request header; the body is left for the handler's decoder.
pub fn parse_request(mut frame: Bytes) -> Result<ParsedRequest, RequestError> {
    // Api key (2), version (2), correlation id (4): the least any header holds.
    if frame.len() < 8 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let (key, version) = peek_api(&frame).ok_or(RequestError::TooShort(frame.len()))?;
    let api_key = ApiKey::try_from(key).map_err(|_| RequestError::UnknownApiKey(key))?;
    let whole = frame.clone();
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| RequestError::Header(e.to_string()))?;
    let body = frame.copy_to_bytes(frame.remaining());
    Ok(ParsedRequest {
        api_key,
        header,
        body,
        frame: whole,
    })
}
