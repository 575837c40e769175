//! `RunningBroker`: opens the logs and the metadata, loads the
//! coordinators, binds the listeners and starts serving; and stops it all
//! cleanly.

use super::{Broker, Endpoint};
use crate::config::BrokerConfig;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::metadata::bootstrap;
use crate::metadata::controller::ControllerConfig;
use crate::metadata::format::FormatState;
use crate::metadata::log::MetadataLog;
use crate::metadata::records::BrokerEndpoint;
use crate::metadata::{Controller, MetadataCache, MetadataImage};
use crate::replication::{OpenReport, ReplicaManager};
use crate::server::listener::{accept_loop, bind, ListenerContext};
use crate::share::state::{ShareStateCoordinator, SHARE_STATE_TOPIC};
use crate::storage::{LogManager, Partition};
use crate::txn::producer_ids::ProducerIdManager;
use crate::txn::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// What start-up reads from disk.
struct Opened {
    /// The local metadata log of a single node (a cluster's is the quorum's).
    log: Option<MetadataLog>,
    /// What the format step wrote (a cluster node's).
    format: Option<FormatState>,
    image: Arc<MetadataImage>,
    cluster_id: String,
    replicas: Arc<ReplicaManager>,
    report: OpenReport,
}

/// The broker's static configuration (its file and overrides).
fn static_configs(config: &BrokerConfig) -> BTreeMap<String, String> {
    config.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Locks the log directories, loads the metadata and opens every partition
/// log. Blocking.
fn open_storage(config: &BrokerConfig) -> io::Result<Opened> {
    let logs = LogManager::open(&config.log_dirs)?;
    let (log, format, image, cluster_id) = if config.cluster.is_cluster(config.node_id) {
        // The quorum brings the metadata once started; logs open as it is published.
        let format = super::cluster::formatted(config)?;
        let cluster_id = format.cluster_id.clone();
        (None, Some(format), Arc::new(MetadataImage::default()), cluster_id)
    } else {
        let loaded = bootstrap::load(config)?;
        (Some(loaded.log), None, Arc::new(loaded.image), loaded.cluster_id)
    };
    let inter_broker = config
        .cluster
        .inter_broker_listener_name
        .clone()
        .unwrap_or_else(|| "PLAINTEXT".into());
    let (replicas, report) = ReplicaManager::open(
        logs,
        &image,
        config.node_id,
        static_configs(config),
        config.replication.clone(),
        inter_broker,
        config.cluster.is_cluster(config.node_id),
    )?;
    Ok(Opened {
        log,
        format,
        image,
        cluster_id,
        replicas: Arc::new(replicas),
        report,
    })
}

/// The partitions of a topic hosted here, and how many it has in all
/// (none if it does not exist).
fn hosted(replicas: &ReplicaManager, topic: &str) -> (Vec<Arc<Partition>>, usize) {
    replicas
        .topic(topic)
        .map(|t| (t.partitions().cloned().collect(), t.partition_count))
        .unwrap_or_default()
}

/// Registers this broker's endpoints and rack with the controller.
async fn register(broker: &Broker) -> io::Result<()> {
    let endpoints = broker
        .endpoints
        .iter()
        .map(|e| BrokerEndpoint {
            listener: e.listener.clone(),
            host: e.host.clone(),
            port: e.port,
            security_protocol: broker
                .config
                .security
                .listener(&e.listener)
                .map_or_else(|| e.listener.clone(), |l| l.protocol.name().to_string()),
        })
        .collect();
    // The metadata directory's id, as the format step wrote it (none on a single node).
    let directory_id = crate::metadata::meta_properties::read(crate::metadata::format::metadata_dir(&broker.config))
        .ok()
        .flatten()
        .and_then(|m| m.directory_id);
    broker
        .controller
        .register_broker(
            broker.node_id(),
            endpoints,
            broker.config.broker_rack.clone(),
            directory_id,
            broker.incarnation_id,
        )
        .await
        .map_err(|e| io::Error::other(format!("could not register the broker: {e}")))
}

/// Registers this controller with the active controller (KIP-919), retrying
/// until one answers.
async fn register_controller(broker: Arc<Broker>, endpoints: Vec<BrokerEndpoint>) {
    loop {
        let registered = broker
            .controller
            .register_controller(broker.node_id(), endpoints.clone(), broker.incarnation_id)
            .await;
        match registered {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "controller registration failed; retrying"),
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
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
        let opened = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_storage(&config))
                .await
                .map_err(io::Error::other)??
        };
        let Opened {
            log,
            format,
            image,
            cluster_id,
            replicas,
            report,
        } = opened;
        let metadata = Arc::new(MetadataCache::new(image.clone()));
        let (publications, publications_rx) = tokio::sync::mpsc::unbounded_channel();
        let controller_config = ControllerConfig {
            node_id: config.node_id,
            delete_topic_enable: config.delete_topic_enable,
            default_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            static_configs: static_configs(&config),
        };
        let controller = Arc::new(match log {
            Some(log) => Controller::new(
                controller_config,
                log,
                image.clone(),
                publications,
                metadata.subscribe(),
            ),
            None => {
                let format = format
                    .as_ref()
                    .ok_or_else(|| io::Error::other("a cluster node without its format"))?;
                if config.cluster.roles.is_some_and(|r| r.controller) {
                    let quorum =
                        super::cluster::start_quorum(&config, format, image.clone(), publications.clone()).await?;
                    Controller::over_quorum(
                        controller_config,
                        quorum,
                        super::cluster::initial_records(format, &config),
                        publications,
                        metadata.subscribe(),
                    )
                } else {
                    let client = Arc::new(super::cluster::quorum_client(&config));
                    tokio::spawn(super::cluster::follow_metadata(client.clone(), publications.clone()));
                    Controller::remote(controller_config, client, publications, metadata.subscribe())
                }
            }
        });
        let producer_ids = Arc::new(ProducerIdManager::new(controller.clone()));
        let groups = GroupCoordinator::new(&config, controller.clone(), metadata.clone());
        let txn_config = crate::config::TransactionConfig {
            // A single node holds every replica there is.
            state_log_replication_factor: if config.cluster.is_cluster(config.node_id) {
                config.transactions.state_log_replication_factor
            } else {
                1
            },
            ..config.transactions.clone()
        };
        let txns = TransactionCoordinator::new(&txn_config, controller.clone(), producer_ids.clone());
        let share_coordinator_config = crate::config::ShareCoordinatorConfig {
            state_topic_replication_factor: if config.cluster.is_cluster(config.node_id) {
                config.share_coordinator.state_topic_replication_factor
            } else {
                1
            },
            ..config.share_coordinator.clone()
        };
        let share_states = ShareStateCoordinator::new(&share_coordinator_config, controller.clone());
        // Coordinator partitions that exist are loaded before serving.
        let (groups, txns, share_states) = {
            let (offsets, offsets_count) = hosted(&replicas, OFFSETS_TOPIC);
            let (states, states_count) = hosted(&replicas, TRANSACTION_STATE_TOPIC);
            let (shares, shares_count) = hosted(&replicas, SHARE_STATE_TOPIC);
            tokio::task::spawn_blocking(move || {
                groups.runtime().load_blocking(&offsets, offsets_count);
                txns.runtime().load_blocking(&states, states_count);
                share_states.runtime().load_blocking(&shares, shares_count);
                (groups, txns, share_states)
            })
            .await
            .map_err(io::Error::other)?
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
        // Where this node's controller listeners are reached, for its registration.
        let controller_endpoints: Vec<BrokerEndpoint> = config
            .listeners
            .iter()
            .filter(|l| config.cluster.controller_listener_names.contains(&l.name))
            .map(|l| BrokerEndpoint {
                listener: l.name.clone(),
                host: if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                    hostname()
                } else {
                    l.host.clone()
                },
                port: bound.iter().find(|b| b.name == l.name).map_or(l.port, |b| b.port),
                security_protocol: config
                    .security
                    .listener(&l.name)
                    .map_or_else(|| l.name.clone(), |s| s.protocol.name().to_string()),
            })
            .collect();
        let fetch_sessions = crate::fetch_session::FetchSessions::new(config.fetch_session_cache_slots);
        let (quota_samples, quota_window_ms) = (config.quota_window_num, config.quota_window_size_seconds * 1000);
        let request_memory = config
            .queued_max_request_bytes
            .map(crate::server::request_memory::RequestMemory::new);
        let broker = Arc::new(Broker {
            config,
            cluster_id,
            metadata,
            controller,
            replicas,
            producer_ids,
            groups,
            txns,
            shares: Arc::new(crate::share::ShareManager::new()),
            fetch_sessions,
            share_states,
            endpoints,
            quotas: crate::quota::QuotaEnforcer::new(quota_samples, quota_window_ms),
            connections: Arc::new(crate::server::connection_limits::ConnectionCounter::new(
                crate::server::connection_rate::ConnectionRates::new(quota_samples, quota_window_ms),
            )),
            request_memory,
            shutdown: CancellationToken::new(),
            incarnation_id: uuid::Uuid::new_v4(),
        });

        let connections = TaskTracker::new();
        let background = TaskTracker::new();
        background.spawn(super::publisher::run(broker.clone(), publications_rx));
        if let Some(quorum) = broker.controller.quorum() {
            background.spawn(super::cluster::write_initial_records(
                broker.controller.clone(),
                quorum.clone(),
            ));
        }
        let mut addresses = Vec::new();
        let mut urls = Vec::new();
        for listener in bound {
            let security = broker
                .config
                .security
                .listener(&listener.name)
                .cloned()
                .ok_or_else(|| io::Error::other(format!("no security settings for listener {}", listener.name)))?;
            let context = Arc::new(
                ListenerContext::start(&listener.name, &security, broker.clone())
                    .await
                    .map_err(io::Error::other)?,
            );
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
        background.spawn(super::housekeeping::run(broker.clone()));
        // A controller-only node (process.roles=controller) is no broker: it
        // registers nothing, so no replica is ever placed on it.
        let is_broker = broker.config.cluster.roles.is_none_or(|r| r.broker);
        if broker.controller.is_clustered() {
            // The quorum needs this node's listener to elect a leader: register once it is up.
            let registering = broker.clone();
            background.spawn(async move {
                if !is_broker {
                    return;
                }
                // Until registered, this broker leads nothing: keep trying.
                loop {
                    match register(&registering).await {
                        Ok(()) => {
                            // Heartbeats only once registered: a restarted
                            // process must not keep its old session alive.
                            let ready = Arc::new(tokio::sync::Notify::new());
                            let heartbeats = super::cluster::heartbeat(registering.clone(), ready.clone());
                            let coordinators = async {
                                registering.replicas.caught_up().await;
                                ready.notify_one();
                                super::publisher::follow_coordinators(&registering).await
                            };
                            tokio::join!(heartbeats, coordinators);
                            return;
                        }
                        Err(e) => warn!(error = %e, "broker registration failed; retrying"),
                    }
                    tokio::select! {
                        _ = registering.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            });
            if broker.config.cluster.roles.is_some_and(|r| r.controller) {
                background.spawn(register_controller(broker.clone(), controller_endpoints));
            }
            background.spawn(super::replication::send_isr_changes(broker.clone()));
            background.spawn(super::replication::shrink_isrs(broker.clone()));
            background.spawn(super::cluster::fence_silent_brokers(broker.clone()));
            background.spawn(super::cluster::rebalance_leaders(broker.clone()));
        } else {
            register(&broker).await?;
        }
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
        let (gone_tx, gone_rx) = tokio::sync::mpsc::unbounded_channel();
        background.spawn(async move {
            let gone = move |members| {
                let _ = gone_tx.send(members);
            };
            timers.groups.run_timers(&timers.shutdown, gone).await
        });
        background.spawn(super::share_departures::run(broker.clone(), gone_rx));
        background.spawn(super::token_sweeper::sweep_expired_tokens(broker.clone()));
        let txn_timers = broker.clone();
        background.spawn(async move {
            let b = &txn_timers;
            b.txns.run_timers(&b.marker_targets(), &b.shutdown).await
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
        if is_broker {
            // Kafka's words for a broker that serves: harnesses written for
            // Kafka (Testcontainers' KafkaContainer) wait for this line.
            info!(
                "[BrokerLifecycleManager id={}] The broker has been unfenced. Transitioning from RECOVERY to RUNNING.",
                broker.node_id()
            );
        }
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
        let is_broker = self.broker.config.cluster.roles.is_none_or(|r| r.broker);
        if self.broker.controller.is_clustered() && is_broker {
            super::cluster::controlled_shutdown(&self.broker).await;
        }
        self.broker.shutdown.cancel();
        self.broker.replicas.stop_fetchers();
        self.broker.controller.stop();
        self.background.close();
        self.connections.close();
        let mut drained = tokio::time::timeout(Duration::from_secs(2), self.connections.wait())
            .await
            .is_ok();
        if let Some(quorum) = self.broker.controller.quorum() {
            // Requests still waiting on the quorum (another node's heartbeat or
            // forwarded write, which this leader can no longer commit once its
            // peers stop too) fail now rather than hold the shutdown.
            quorum.shutdown().await;
        }
        if !drained {
            drained = tokio::time::timeout(Duration::from_secs(28), self.connections.wait())
                .await
                .is_ok();
        }
        if !drained {
            warn!("some connections did not finish within 30 s");
        }
        self.background.wait().await;
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.replicas.shutdown())
            .await
            .map_err(io::Error::other)??;
        info!("stopped");
        Ok(())
    }
}
