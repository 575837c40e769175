//! Idle connections to other brokers, kept for the request/response
//! exchanges that come and go (transaction markers and verification, share
//! state reads and writes): one is taken for an exchange and put back after
//! it, instead of a TCP connection (and a peer's connection task) per call.

use super::broker_client::{BrokerConnection, ClientError};
use kafka_protocol::protocol::Request;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept per (address, client id); more in use at once are
/// closed after their exchange.
const MAX_IDLE: usize = 4;

#[derive(Default)]
pub struct ConnectionPool {
    idle: Mutex<HashMap<(String, String), Vec<BrokerConnection>>>,
}

impl ConnectionPool {
    fn take(&self, key: &(String, String)) -> Option<BrokerConnection> {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(key)
            .and_then(Vec::pop)
    }

    fn give_back(&self, key: (String, String), connection: BrokerConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE {
            list.push(connection);
        }
    }

    /// Sends a request to the broker at `address` and waits for its answer.
    /// A kept connection the peer has closed meanwhile (an I/O error before
    /// any answer) is replaced by a new one once; a connection that failed
    /// is never kept.
    pub async fn send<R: Request>(
        &self,
        address: &str,
        client_id: &str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let key = (address.to_string(), client_id.to_string());
        if let Some(mut kept) = self.take(&key) {
            match kept.send(request, version, timeout).await {
                Ok(response) => {
                    self.give_back(key, kept);
                    return Ok(response);
                }
                Err(ClientError::Io(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut connection = BrokerConnection::connect(address, client_id, timeout).await?;
        let response = connection.send(request, version, timeout).await?;
        self.give_back(key, connection);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A peer that answers ApiVersions v3 on every connection, counting
    /// connections, and closes each after `answers_per_connection` answers.
    async fn peer(answers_per_connection: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for _ in 0..answers_per_connection {
                        let Ok(size) = socket.read_i32().await else { return };
                        let mut body = vec![0u8; size as usize];
                        if socket.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let mut body = bytes::Bytes::from(body);
                        let header = RequestHeader::decode(&mut body, ApiVersionsRequest::header_version(3)).unwrap();
                        let mut frame = BytesMut::new();
                        frame.put_i32(0);
                        ResponseHeader::default()
                            .with_correlation_id(header.correlation_id)
                            .encode(&mut frame, ApiVersionsResponse::header_version(3))
                            .unwrap();
                        ApiVersionsResponse::default().encode(&mut frame, 3).unwrap();
                        let size = (frame.len() - 4) as i32;
                        frame[..4].copy_from_slice(&size.to_be_bytes());
                        if socket.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn exchanges_in_turn_share_one_connection() {
        let (address, accepted) = peer(usize::MAX).await;
        let pool = ConnectionPool::default();
        for _ in 0..5 {
            let answer = pool
                .send(&address, "test", &ApiVersionsRequest::default(), 3, TIMEOUT)
                .await;
            assert_eq!(answer.unwrap().error_code, 0);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced() {
        let (address, accepted) = peer(1).await;
        let pool = ConnectionPool::default();
        for _ in 0..3 {
            let answer = pool
                .send(&address, "test", &ApiVersionsRequest::default(), 3, TIMEOUT)
                .await;
            assert_eq!(answer.unwrap().error_code, 0);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn each_client_id_has_its_own_connections() {
        let (address, accepted) = peer(usize::MAX).await;
        let pool = ConnectionPool::default();
        for client_id in ["a", "b", "a", "b"] {
            let answer = pool
                .send(&address, client_id, &ApiVersionsRequest::default(), 3, TIMEOUT)
                .await;
            assert!(answer.is_ok());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
