//! The line a test harness waits for: one JSON object on stdout, printed
//! once the broker answers, naming what it bound (port 0 resolved) and where
//! its data is. Logs go to stderr, so stdout carries nothing else.

use super::RunningBroker;
use serde_json::{json, Map, Value};

impl RunningBroker {
    /// `{"sluice":"ready","bootstrap":"127.0.0.1:40987","listeners":{"PLAINTEXT":"127.0.0.1:40987"},...}`
    pub fn ready_line(&self) -> String {
        ready_line(self)
    }
}

fn ready_line(running: &RunningBroker) -> String {
    let broker = running.broker();
    let config = &broker.config;
    let controllers = &config.cluster.controller_listener_names;
    let mut bound = Map::new();
    for (name, addr) in running.addresses() {
        // A listener with several sockets (a host name resolving to two
        // addresses) is named by its first.
        bound
            .entry(name.clone())
            .or_insert_with(|| Value::from(addr.to_string()));
    }
    let mut advertised = Map::new();
    for e in &broker.endpoints {
        advertised.insert(e.listener.clone(), Value::from(format!("{}:{}", e.host, e.port)));
    }
    // What a client puts in bootstrap.servers: the first advertised client listener.
    let bootstrap = broker
        .endpoints
        .iter()
        .find(|e| !controllers.contains(&e.listener))
        .map(|e| format!("{}:{}", e.host, e.port));
    let log_dirs: Vec<String> = config.log_dirs.iter().map(|d| absolute(d)).collect();
    json!({
        "sluice": "ready",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "node_id": config.node_id,
        "bootstrap": bootstrap,
        "listeners": bound,
        "advertised_listeners": advertised,
        "log_dirs": log_dirs,
    })
    .to_string()
}

fn absolute(dir: &std::path::Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}
