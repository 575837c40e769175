//! Listeners: bind each configured `NAME://host:port` and accept connections
//! until shutdown.

use super::connection;
use crate::broker::Broker;
use crate::config::listener::ListenerSpec;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

pub struct BoundListener {
    pub name: String,
    pub sockets: Vec<TcpListener>,
    pub port: u16,
}

/// Binds every address the host resolves to (all interfaces when the host is
/// empty). Port 0 takes a free port, shared by all addresses of the listener.
pub async fn bind(spec: &ListenerSpec) -> io::Result<BoundListener> {
    let host = if spec.host.is_empty() {
        "0.0.0.0"
    } else {
        spec.host.as_str()
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, spec.port)).await?.collect();
    let mut sockets = Vec::new();
    let mut port = spec.port;
    let mut first_error = None;
    for mut addr in addrs {
        if port != 0 {
            addr.set_port(port);
        }
        match TcpListener::bind(addr).await {
            Ok(l) => {
                port = l.local_addr()?.port();
                sockets.push(l);
            }
            Err(e) => {
                debug!(%addr, error = %e, "could not bind one address of a listener");
                first_error.get_or_insert(e);
            }
        }
    }
    if sockets.is_empty() {
        return Err(first_error
            .unwrap_or_else(|| io::Error::other(format!("{} resolves to no address", spec.host))));
    }
    Ok(BoundListener {
        name: spec.name.clone(),
        sockets,
        port,
    })
}

/// Accepts connections on one socket until the broker shuts down.
pub async fn accept_loop(
    socket: TcpListener,
    name: String,
    broker: Arc<Broker>,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(connection::serve(
                    stream,
                    peer,
                    name.clone(),
                    broker.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
