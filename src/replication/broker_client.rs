//! A connection to another broker speaking Kafka's protocol, for what one
//! broker asks of another (a follower's Fetch). One request at a time: each
//! fetcher owns its connection, as Kafka's ReplicaFetcherThread does.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Larger responses than this are refused (a broken or hostile peer).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    TimedOut,
    #[error("could not encode the request: {0}")]
    Encode(String),
    #[error("malformed response: {0}")]
    Malformed(String),
}

pub struct BrokerConnection {
    stream: TcpStream,
    client_id: StrBytes,
    correlation_id: i32,
}

impl BrokerConnection {
    pub async fn connect(address: &str, client_id: &str, timeout: Duration) -> Result<BrokerConnection, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ClientError::TimedOut)??;
        stream.set_nodelay(true)?;
        Ok(BrokerConnection {
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation_id: 0,
        })
    }

    /// Sends one request at `version` and reads its response, within `timeout`.
    /// On any error the connection is no longer usable (drop it).
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|_| request.encode(&mut frame, version))
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        let correlation_id = self.correlation_id;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let size = self.stream.read_i32().await?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s >= 4 && *s <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| ClientError::Malformed(format!("response size {size}")))?;
            let mut body = vec![0u8; size];
            self.stream.read_exact(&mut body).await?;
            Ok::<Bytes, ClientError>(Bytes::from(body))
        };
        let mut body = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::TimedOut)??;
        let response_header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        if response_header.correlation_id != correlation_id {
            return Err(ClientError::Malformed(format!(
                "correlation id {}, expected {correlation_id}",
                response_header.correlation_id
            )));
        }
        R::Response::decode(&mut body, version).map_err(|e| ClientError::Malformed(e.to_string()))
    }
}
