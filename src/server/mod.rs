//! The network layer: listeners, connections and request framing. It knows
//! nothing of storage: decoded requests go to `protocol::dispatch`.

mod client_cert_v1;
pub mod connection;
pub mod connection_limits;
pub mod connection_rate;
pub mod frame;
pub mod listener;
mod outgoing;
pub mod request_memory;
pub mod sasl_gate;
pub mod tls;
