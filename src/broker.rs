//! `Broker`: what every handler shares (config, cluster metadata and logs,
//! advertised endpoints, the shutdown signal), and `RunningBroker`, which
//! starts listeners and background work and stops them cleanly.

use crate::api::RequestContext;
use crate::auth::acl;
use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::server::listener::{accept_loop, bind, ListenerContext};
use crate::storage::{now_ms, Partition};
use crate::txn::TransactionCoordinator;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Where clients are told to connect for one listener.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub cluster: Cluster,
    pub groups: GroupCoordinator,
    pub txns: TransactionCoordinator,
    pub endpoints: Vec<Endpoint>,
    pub quotas: crate::quota::QuotaEnforcer,
    pub shutdown: CancellationToken,
}

impl Broker {
    /// Whether the request's principal may do `operation` on the resource.
    /// Always true without an authorizer (`authorizer.class.name` unset).
    pub fn authorize(&self, ctx: &RequestContext, operation: i8, resource_type: i8, name: &str) -> bool {
        let settings = &self.config.security.authorizer;
        if !settings.enabled {
            return true;
        }
        let acls = self.cluster.acls();
        let host = ctx.peer.ip().to_string();
        acl::AclPolicy {
            acls: &acls,
            super_users: &settings.super_users,
            allow_everyone_if_no_acl_found: settings.allow_everyone_if_no_acl_found,
        }
        .authorize(&acl::AclCheck {
            principal: &ctx.principal,
            host: &host,
            operation,
            resource_type,
            name,
        })
    }

    pub fn authorize_cluster(&self, ctx: &RequestContext, operation: i8) -> bool {
        self.authorize(ctx, operation, acl::resource::CLUSTER, acl::CLUSTER_NAME)
    }

    /// Whether the principal may do `operation` on at least one resource of
    /// the type (Kafka's authorizeByResourceType, for idempotent producers).
    pub fn authorize_any(&self, ctx: &RequestContext, operation: i8, resource_type: i8) -> bool {
        let settings = &self.config.security.authorizer;
        if !settings.enabled || settings.super_users.iter().any(|s| **s == *ctx.principal) {
            return true;
        }
        let acls = self.cluster.acls();
        let host = ctx.peer.ip().to_string();
        let policy = acl::AclPolicy {
            acls: &acls,
            super_users: &[],
            allow_everyone_if_no_acl_found: false,
        };
        acls.iter().filter(|a| a.resource_type == resource_type).any(|a| {
            policy.authorize(&acl::AclCheck {
                principal: &ctx.principal,
                host: &host,
                operation,
                resource_type,
                name: &a.resource_name,
            })
        })
    }

    /// The advertised endpoint of the listener a request came in on.
    pub fn endpoint_for(&self, listener: &str) -> &Endpoint {
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .unwrap_or(&self.endpoints[0])
    }
}

/// A broker serving on its listeners. Dropping it does not stop it: call
/// `shutdown`.
pub struct RunningBroker {
    broker: Arc<Broker>,
    addresses: Vec<(String, SocketAddr)>,
    connections: TaskTracker,
    background: TaskTracker,
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl RunningBroker {
    /// Opens the logs, binds every listener and starts serving.
    pub async fn start(config: BrokerConfig) -> io::Result<RunningBroker> {
        let started = Instant::now();
        let (cluster, groups, txns, report) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                Cluster::open(&config).map(|(cluster, report)| {
                    let groups = GroupCoordinator::open(&cluster, &config);
                    let txns = TransactionCoordinator::open(&cluster, &config.transactions);
                    (cluster, groups, txns, report)
                })
            })
            .await
            .map_err(io::Error::other)??
        };
        let mut bound = Vec::new();
        for spec in &config.listeners {
            let listener = bind(spec)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", spec.url())))?;
            bound.push(listener);
        }
        let endpoints = config
            .advertised_listeners
            .iter()
            .map(|a| {
                // Port 0 and an empty or wildcard host are filled in from what was bound.
                let port = if a.port == 0 {
                    bound.iter().find(|b| b.name == a.name).map_or(0, |b| b.port)
                } else {
                    a.port
                };
                let host = if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                    hostname()
                } else {
                    a.host.clone()
                };
                Endpoint {
                    listener: a.name.clone(),
                    host,
                    port,
                }
            })
            .collect();
        let (quota_samples, quota_window_ms) = (config.quota_window_num, config.quota_window_size_seconds * 1000);
        let broker = Arc::new(Broker {
            config,
            cluster,
            groups,
            txns,
            endpoints,
            quotas: crate::quota::QuotaEnforcer::new(quota_samples, quota_window_ms),
            shutdown: CancellationToken::new(),
        });

        let connections = TaskTracker::new();
        let background = TaskTracker::new();
        let mut addresses = Vec::new();
        let mut urls = Vec::new();
        for listener in bound {
            let security = broker
                .config
                .security
                .listener(&listener.name)
                .cloned()
                .ok_or_else(|| io::Error::other(format!("no security settings for listener {}", listener.name)))?;
            let context =
                Arc::new(ListenerContext::new(&listener.name, &security, broker.clone()).map_err(io::Error::other)?);
            for socket in listener.sockets {
                let addr = socket.local_addr()?;
                addresses.push((listener.name.clone(), addr));
                urls.push(format!("{}://{}", listener.name, addr));
                background.spawn(accept_loop(
                    socket,
                    context.clone(),
                    broker.clone(),
                    connections.clone(),
                ));
            }
        }
        background.spawn(housekeeping(broker.clone()));
        if let Some(address) = &broker.config.metrics_address {
            let handle = crate::metrics::install()
                .ok_or_else(|| io::Error::other("the Prometheus recorder could not be installed"))?;
            let socket = tokio::net::TcpListener::bind(address.as_str())
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("metrics.prometheus.address {address}: {e}")))?;
            let bound = socket.local_addr()?;
            info!("metrics on http://{bound}/metrics");
            background.spawn(crate::metrics::http::serve(socket, broker.clone(), handle));
        }
        let timers = broker.clone();
        background.spawn(async move { timers.groups.run_timers(&timers.cluster, &timers.shutdown).await });
        let txn_timers = broker.clone();
        background.spawn(async move {
            let b = &txn_timers;
            b.txns.run_timers(&b.cluster, &b.groups, &b.shutdown).await
        });
        let dirs: Vec<String> = broker
            .config
            .log_dirs
            .iter()
            .map(|d| {
                std::fs::canonicalize(d)
                    .unwrap_or_else(|_| d.clone())
                    .display()
                    .to_string()
            })
            .collect();
        info!(
            topics = report.topics,
            partitions = report.partitions,
            recovered_segments = report.recovered_segments,
            truncated_bytes = report.truncated_bytes,
            clean_shutdown = report.clean_shutdown,
            "Sluice {} started in {} ms, listening on {}, data in {}",
            env!("CARGO_PKG_VERSION"),
            started.elapsed().as_millis(),
            urls.join(", "),
            dirs.join(", "),
        );
        Ok(RunningBroker {
            broker,
            addresses,
            connections,
            background,
        })
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The bound address of each listener socket, as (listener name, address).
    pub fn addresses(&self) -> &[(String, SocketAddr)] {
        &self.addresses
    }

    /// The first listener's address: what a test or an embedding connects to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addresses[0].1
    }

    /// Stops accepting, lets in-flight requests finish, then flushes and
    /// closes every log so that the next start is fast.
    pub async fn shutdown(self) -> io::Result<()> {
        info!("shutting down");
        self.broker.shutdown.cancel();
        self.background.close();
        self.connections.close();
        if tokio::time::timeout(Duration::from_secs(30), self.connections.wait())
            .await
            .is_err()
        {
            warn!("some connections did not finish within 30 s");
        }
        self.background.wait().await;
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.cluster.shutdown())
            .await
            .map_err(io::Error::other)??;
        info!("stopped");
        Ok(())
    }
}

/// Compacts the partitions of compacted topics that need it, one at a time
/// (off the async threads).
async fn clean_compacted(partitions: &[Arc<Partition>], dedupe_buffer_size: usize) {
    for p in partitions {
        if !p.log().config().compact {
            continue;
        }
        let partition = p.clone();
        let result = tokio::task::spawn_blocking(move || {
            crate::storage::cleaner::clean(&partition, now_ms(), dedupe_buffer_size)
        })
        .await;
        match result {
            Ok(Ok(Some(r))) => info!(
                topic = p.topic(),
                partition = p.index(),
                segments = r.segments_rewritten,
                records_removed = r.records_removed,
                bytes_before = r.bytes_before,
                bytes_after = r.bytes_after,
                "compacted"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => warn!(topic = p.topic(), partition = p.index(), error = %e, "compaction failed"),
            Err(e) => warn!(topic = p.topic(), partition = p.index(), error = %e, "compaction stopped"),
        }
    }
}

/// Background work: retention, compaction, time-based flushes, checkpoints, producer expiry.
async fn housekeeping(broker: Arc<Broker>) {
    let config = &broker.config;
    let tick = Duration::from_millis(config.flush_scheduler_interval_ms.clamp(10, 1000));
    let retention_every = Duration::from_millis(config.retention_check_interval_ms);
    let checkpoint_every = Duration::from_secs(60);
    let producer_expiry_every = Duration::from_secs(600);
    let mut last_retention = Instant::now();
    let cleaner_every = Duration::from_millis(config.cleaner_backoff_ms);
    let mut last_cleaning = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut last_expiry = Instant::now();
    let checkpoint_wanted = broker.cluster.checkpoint_wanted();
    loop {
        let mut checkpoint_now = false;
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
            _ = checkpoint_wanted.notified() => checkpoint_now = true,
        }
        let now = now_ms();
        let partitions = broker.cluster.all_partitions();
        crate::storage::maintenance::flush_due(&partitions, now).await;
        if last_retention.elapsed() >= retention_every {
            last_retention = Instant::now();
            crate::storage::maintenance::apply_retention(&partitions, now).await;
        }
        if config.cleaner_enable && last_cleaning.elapsed() >= cleaner_every {
            last_cleaning = Instant::now();
            clean_compacted(&partitions, config.cleaner_dedupe_buffer_size).await;
        }
        if last_expiry.elapsed() >= producer_expiry_every {
            last_expiry = Instant::now();
            let horizon = now - config.producer_id_expiration_ms;
            for p in &partitions {
                p.log().expire_producers(horizon);
            }
        }
        if checkpoint_now || last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            let b = broker.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.cluster.checkpoint()).await {
                warn!(error = %e, "could not write checkpoints");
            }
        }
    }
}
