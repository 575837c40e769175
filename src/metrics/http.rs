//! The scrape endpoint: `GET /metrics` over plain HTTP/1.1, one response per
//! connection. Small on purpose: Prometheus is its only client.

use crate::broker::Broker;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

pub async fn serve(listener: TcpListener, broker: Arc<Broker>, handle: PrometheusHandle) {
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (broker, handle) = (broker.clone(), handle.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &broker, &handle).await {
                debug!(error = %e, "metrics request failed");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, broker: &Broker, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request line and headers, up to 8 KiB, within 5 s.
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&request);
    let first = line.lines().next().unwrap_or_default();
    let (status, body) = if first.starts_with("GET /metrics ") || first.starts_with("GET /metrics?") {
        let mut body = handle.render();
        body.push_str(&super::exposition::render(broker).await);
        ("200 OK", body)
    } else {
        ("404 Not Found", "not found: the metrics are at /metrics\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
