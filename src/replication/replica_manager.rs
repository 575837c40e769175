//! `ReplicaManager`: the hosted topics and their partition logs, as a table
//! published whole (`ArcSwap`): Produce and Fetch look partitions up without
//! a lock. The metadata publisher applies each image's changes here — new
//! partitions' logs created and deleted topics' logs removed off the async
//! threads — before the image is served.

use super::fetcher::FetcherManager;
use super::leader_partition::{IsrChange, LeaderPartition};
use super::throttle::ReplicationQuotas;
use crate::config::replication::ReplicationConfig;
use crate::config::topic::{LogConfig, TopicDefaults};
use crate::metadata::controller::topic_defaults;
use crate::metadata::delta::MetadataChanges;
use crate::metadata::image::{MetadataImage, TopicImage};
use crate::storage::LogError;
use crate::storage::{LogManager, Partition};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tracing::{info, warn};
use uuid::Uuid;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub log_config: LogConfig,
    /// The partitions with a replica on this broker, by index (in a
    /// cluster a broker keeps logs only for its own replicas).
    pub hosted: BTreeMap<i32, Arc<Partition>>,
    /// How many partitions the topic has, hosted here or not.
    pub partition_count: usize,
    /// Traffic counters; they live as long as the topic (kept when its
    /// configs or partitions change, gone when it is deleted).
    pub stats: Arc<TopicStats>,
}

impl Topic {
    pub fn is_internal(&self) -> bool {
        crate::metadata::topic_name::is_internal(&self.name)
    }

    /// The partition's log, if this broker has a replica of it.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.hosted.get(&index)
    }

    /// Every partition hosted here, by index.
    pub fn partitions(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.hosted.values()
    }

    fn new(
        t: &TopicImage,
        configs: BTreeMap<String, String>,
        log_config: LogConfig,
        hosted: BTreeMap<i32, Arc<Partition>>,
    ) -> Topic {
        Topic {
            name: t.name.clone(),
            id: t.id,
            configs,
            log_config,
            hosted,
            partition_count: t.partitions.len(),
            stats: Arc::default(),
        }
    }

    pub(super) fn with(
        &self,
        configs: BTreeMap<String, String>,
        log_config: LogConfig,
        hosted: BTreeMap<i32, Arc<Partition>>,
        partition_count: usize,
    ) -> Topic {
        Topic {
            name: self.name.clone(),
            id: self.id,
            configs,
            log_config,
            hosted,
            partition_count,
            stats: self.stats.clone(),
        }
    }
}

/// A topic's traffic since the broker started, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct TopicStats {
    pub bytes_in: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_out: AtomicU64,
    pub produce_requests: AtomicU64,
    pub fetch_requests: AtomicU64,
}

impl TopicStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Default, Clone)]
pub(super) struct HostedTopics {
    pub(super) by_name: BTreeMap<String, Arc<Topic>>,
    pub(super) by_id: HashMap<Uuid, Arc<Topic>>,
}

impl HostedTopics {
    pub(super) fn insert(&mut self, topic: Arc<Topic>) {
        self.by_id.insert(topic.id, topic.clone());
        self.by_name.insert(topic.name.clone(), topic);
    }

    fn remove(&mut self, id: Uuid) -> Option<Arc<Topic>> {
        let topic = self.by_id.remove(&id)?;
        self.by_name.remove(&topic.name);
        Some(topic)
    }
}

/// What opening the logs found, for the start-up log line.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub topics: usize,
    pub partitions: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
    pub clean_shutdown: bool,
}

/// A replicated partition this broker leads.
#[derive(Clone)]
pub struct LedPartition {
    pub partition: Arc<Partition>,
    pub leader: Arc<LeaderPartition>,
}

pub struct ReplicaManager {
    pub(super) node_id: i32,
    pub(super) logs: Arc<LogManager>,
    static_configs: BTreeMap<String, String>,
    pub(super) topics: ArcSwap<HostedTopics>,
    defaults: ArcSwap<TopicDefaults>,
    pub(super) replication: ReplicationConfig,
    /// The listener followers fetch from (`inter.broker.listener.name`).
    pub(super) inter_broker_listener: String,
    /// The replicated partitions led here.
    pub(super) leaders: ArcSwap<HashMap<(Uuid, i32), LedPartition>>,
    pub(super) fetchers: FetcherManager,
    /// Replication throttles (`*.replication.throttled.*`).
    pub quotas: Arc<ReplicationQuotas>,
    isr_changes: mpsc::UnboundedSender<IsrChange>,
    /// Replicas in failed log directories (topic id, index).
    offline: Mutex<Vec<(Uuid, i32)>>,
    isr_changes_rx: Mutex<Option<mpsc::UnboundedReceiver<IsrChange>>>,
    /// Connections to other brokers for one-off exchanges (markers, share state).
    pub connections: super::connection_pool::ConnectionPool,
    /// Roles are applied one image at a time; the last image applied.
    pub(super) roles: Mutex<Option<Arc<MetadataImage>>>,
    /// Whether this broker may lead replicated partitions: in a cluster,
    /// once it has registered (its metadata caught up with the quorum's), so
    /// that a restarted broker never leads on the stale image it replayed.
    pub(super) may_lead: std::sync::atomic::AtomicBool,
    /// A single node hosts every partition; a cluster's broker its replicas.
    pub(super) host_all: bool,
    /// Some partition log could not be created (a full disk): the
    /// publisher tries again (`log_creation`).
    pub(super) logs_missing: std::sync::atomic::AtomicBool,
}

/// The partitions of `t` whose logs `node_id` keeps.
pub(super) fn hosted_indexes(t: &TopicImage, node_id: i32, host_all: bool) -> Vec<i32> {
    (0..t.partitions.len() as i32)
        .filter(|i| host_all || t.partitions[*i as usize].replicas.contains(&node_id))
        .collect()
}

impl ReplicaManager {
    /// Opens the log of every partition in the image (start-up; blocking).
    pub fn open(
        logs: LogManager,
        image: &MetadataImage,
        node_id: i32,
        static_configs: BTreeMap<String, String>,
        replication: ReplicationConfig,
        inter_broker_listener: String,
        clustered: bool,
    ) -> io::Result<(ReplicaManager, OpenReport)> {
        let defaults = topic_defaults(image, node_id, &static_configs)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let mut report = OpenReport {
            clean_shutdown: logs.was_clean_shutdown(),
            ..Default::default()
        };
        let (isr_changes, isr_changes_rx) = mpsc::unbounded_channel();
        let mut hosted = HostedTopics::default();
        for t in image.topics.iter() {
            let configs = image.topic_configs(&t.name).clone();
            let log_config = LogConfig::resolve(&defaults, &configs);
            let mut partitions = BTreeMap::new();
            for p in hosted_indexes(t, node_id, !clustered) {
                let (partition, load) = logs
                    .open_partition(&t.name, p, t.id, log_config.clone())
                    .map_err(|e| io::Error::other(format!("loading {}-{p}: {e}", t.name)))?;
                if let Some(reason) = &load.truncation_reason {
                    warn!(topic = %t.name, partition = p, bytes = load.truncated_bytes, reason = %reason,
                        "truncated an invalid tail of the log");
                }
                report.recovered_segments += load.recovered_segments;
                report.truncated_bytes += load.truncated_bytes;
                partitions.insert(p, partition);
            }
            report.partitions += partitions.len();
            hosted.insert(Arc::new(Topic::new(t, configs, log_config, partitions)));
        }
        report.topics = hosted.by_name.len();
        // In a cluster the image is empty until the quorum publishes it, and
        // every directory would look unknown here: they open as it arrives.
        let on_disk = if clustered {
            Vec::new()
        } else {
            logs.partitions_on_disk()
        };
        for (topic, p) in on_disk {
            match hosted.by_name.get(&topic) {
                Some(t) if t.partition(p).is_some() => {}
                Some(_) => {
                    warn!(topic = %topic, partition = p, "partition directory of a replica not on this broker; left untouched")
                }
                None => {
                    warn!(topic = %topic, partition = p, "partition directory belongs to no known topic; left untouched")
                }
            }
        }
        let quotas = Arc::new(ReplicationQuotas::new(node_id));
        quotas.update(image, &static_configs);
        let manager = ReplicaManager {
            node_id,
            logs: Arc::new(logs),
            static_configs,
            topics: ArcSwap::from_pointee(hosted),
            defaults: ArcSwap::from_pointee(defaults),
            fetchers: FetcherManager::new(node_id, replication.clone(), quotas.clone()),
            quotas,
            replication,
            inter_broker_listener,
            leaders: ArcSwap::from_pointee(HashMap::new()),
            isr_changes,
            offline: Mutex::new(Vec::new()),
            isr_changes_rx: Mutex::new(Some(isr_changes_rx)),
            connections: Default::default(),
            roles: Mutex::new(None),
            may_lead: std::sync::atomic::AtomicBool::new(!clustered),
            host_all: !clustered,
            logs_missing: Default::default(),
        };
        Ok((manager, report))
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.load().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.load().by_id.get(&id).cloned()
    }

    /// Every hosted topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.load().by_name.values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic).and_then(|t| t.partition(index).cloned())
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .load()
            .by_name
            .values()
            .flat_map(|t| t.partitions().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The topic defaults (static and dynamic broker configs resolved).
    pub fn topic_defaults(&self) -> Arc<TopicDefaults> {
        self.defaults.load_full()
    }

    /// Acts on a new image: deleted topics' logs go, new partitions' logs
    /// are created, changed configs reach the logs. The table is swapped in
    /// once all of it is done.
    pub async fn apply(self: &Arc<Self>, image: &Arc<MetadataImage>, changes: &MetadataChanges) {
        let mut hosted = HostedTopics::clone(&self.topics.load());
        if changes.broker_configs {
            match topic_defaults(image, self.node_id, &self.static_configs) {
                Ok(d) => self.defaults.store(Arc::new(d)),
                Err(e) => warn!(error = %e, "dynamic broker configs do not resolve; topic defaults kept"),
            }
        }
        let defaults = self.defaults.load_full();
        if changes.broker_configs
            || !changes.topic_configs.is_empty()
            || !changes.created_topics.is_empty()
            || !changes.deleted_topics.is_empty()
        {
            self.quotas.update(image, &self.static_configs);
        }
        let mut doomed = Vec::new();
        for old in &changes.deleted_topics {
            if let Some(t) = hosted.remove(old.id) {
                doomed.push(t);
            }
        }
        // A created topic is built whole; changed ones get the replicas that
        // came here (new partitions, reassignments) and lose those that left.
        let mut wanted: Vec<(Arc<TopicImage>, Vec<i32>)> = Vec::new();
        let mut leaving: Vec<Arc<Partition>> = Vec::new();
        for id in &changes.created_topics {
            if let Some(t) = image.topics.by_id(*id) {
                let here = hosted_indexes(t, self.node_id, self.host_all);
                wanted.push((t.clone(), here));
            }
        }
        for (id, indexes) in &changes.changed_partitions {
            let (Some(t), Some(current)) = (image.topics.by_id(*id), hosted.by_id.get(id).cloned()) else {
                continue;
            };
            let here: Vec<i32> = hosted_indexes(t, self.node_id, self.host_all);
            let arriving: Vec<i32> = indexes
                .iter()
                .copied()
                .filter(|i| here.contains(i) && current.partition(*i).is_none())
                .collect();
            let gone: Vec<i32> = indexes
                .iter()
                .copied()
                .filter(|i| !here.contains(i) && current.partition(*i).is_some())
                .collect();
            if !gone.is_empty() {
                let mut kept = current.hosted.clone();
                for i in gone {
                    if let Some(p) = kept.remove(&i) {
                        info!(topic = %t.name, partition = i, "no longer a replica here: deleting its log");
                        leaving.push(p);
                    }
                }
                let topic = current.with(
                    current.configs.clone(),
                    current.log_config.clone(),
                    kept,
                    t.partitions.len(),
                );
                hosted.insert(Arc::new(topic));
            }
            if !arriving.is_empty() || current.partition_count != t.partitions.len() {
                wanted.push((t.clone(), arriving));
            }
        }
        for (t, indexes) in wanted {
            let configs = image.topic_configs(&t.name).clone();
            let log_config = LogConfig::resolve(&defaults, &configs);
            let partitions = self.create_logs(&t, &indexes, &log_config).await;
            let topic = match hosted.by_id.get(&t.id) {
                Some(current) => {
                    let mut all = current.hosted.clone();
                    all.extend(partitions);
                    current.with(configs, log_config, all, t.partitions.len())
                }
                None => Topic::new(&t, configs, log_config, partitions.into_iter().collect()),
            };
            hosted.insert(Arc::new(topic));
        }
        let reconfigure: Vec<Arc<Topic>> = if changes.broker_configs {
            hosted.by_name.values().cloned().collect()
        } else {
            changes
                .topic_configs
                .iter()
                .filter_map(|name| hosted.by_name.get(name).cloned())
                .collect()
        };
        for topic in reconfigure {
            let configs = image.topic_configs(&topic.name).clone();
            let log_config = LogConfig::resolve(&defaults, &configs);
            for p in topic.partitions() {
                p.log().set_config(log_config.clone());
            }
            hosted.insert(Arc::new(topic.with(
                configs,
                log_config,
                topic.hosted.clone(),
                topic.partition_count,
            )));
        }
        self.topics.store(Arc::new(hosted));
        self.update_roles_blocking(image).await;
        for topic in doomed {
            self.delete_logs(topic).await;
        }
        if !leaving.is_empty() {
            self.delete_partition_logs(leaving).await;
        }
    }

    /// Runs `update_roles` off the async threads.
    pub(super) async fn update_roles_blocking(self: &Arc<Self>, image: &Arc<MetadataImage>) {
        let (manager, image) = (self.clone(), image.clone());
        if let Err(e) = crate::storage::blocking(move || manager.update_roles(&image)).await {
            warn!(error = %e, "partition roles not updated");
        }
    }

    /// This broker's metadata has caught up with the quorum's: it may lead
    /// replicated partitions from now on (roles are applied again).
    pub async fn caught_up(self: &Arc<Self>) {
        self.may_lead.store(true, std::sync::atomic::Ordering::Release);
        let last = self.roles.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(image) = last {
            self.update_roles_blocking(&image).await;
        }
    }

    /// The replicated partition led here, if it is.
    pub fn led(&self, topic_id: Uuid, index: i32) -> Option<LedPartition> {
        self.leaders.load().get(&(topic_id, index)).cloned()
    }

    /// The leader epoch a partition is followed in here, if it is: a
    /// follower serves consumers in that epoch (KIP-392).
    pub fn followed_epoch(&self, topic_id: Uuid, index: i32) -> Option<i32> {
        self.fetchers.following(topic_id, index).map(|(_, _, epoch)| epoch)
    }

    /// Moves a hosted partition's log to log directory `dir` (AlterReplicaLogDirs),
    /// off the async threads.
    pub async fn move_to_dir(&self, partition: Arc<Partition>, dir: usize) -> Result<(), LogError> {
        let logs = self.logs.clone();
        crate::storage::blocking(move || logs.move_partition(&partition, dir))
            .await
            .map_err(LogError::Io)?
    }

    /// The index in `log.dirs` of the directory that is `path`, if any.
    pub fn log_dir_index(&self, path: &std::path::Path) -> Option<usize> {
        self.logs.find_dir(path)
    }

    /// A broker's address on the inter-broker listener, as the image has it.
    pub fn inter_broker_address(&self, image: &MetadataImage, broker: i32) -> Option<String> {
        self.address_of(image, broker)
    }

    /// `replica.selector.class`, if set.
    pub fn replica_selector(&self) -> Option<crate::config::replication::ReplicaSelector> {
        self.replication.replica_selector
    }

    /// Every replicated partition led here.
    pub fn all_led(&self) -> Vec<LedPartition> {
        self.leaders.load().values().cloned().collect()
    }

    /// Asks for an ISR change (sent to the controller by the broker).
    pub fn request_isr_change(&self, change: IsrChange) {
        let _ = self.isr_changes.send(change);
    }

    /// The ISR changes to send to the controller (taken once).
    pub fn take_isr_changes(&self) -> Option<mpsc::UnboundedReceiver<IsrChange>> {
        self.isr_changes_rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    async fn delete_logs(&self, topic: Arc<Topic>) {
        let logs = self.logs.clone();
        let partitions: Vec<Arc<Partition>> = topic.partitions().cloned().collect();
        let _ = tokio::task::spawn_blocking(move || {
            for p in &partitions {
                logs.delete_partition(p);
                p.wake_waiters();
            }
        })
        .await;
        info!(topic = %topic.name, "deleted topic");
    }

    /// Deletes the logs of replicas moved off this broker.
    async fn delete_partition_logs(&self, partitions: Vec<Arc<Partition>>) {
        let logs = self.logs.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in &partitions {
                logs.delete_partition(p);
                p.wake_waiters();
            }
        })
        .await;
    }

    /// Notified when recovery points have moved and should be checkpointed.
    pub fn checkpoint_wanted(&self) -> Arc<tokio::sync::Notify> {
        self.logs.checkpoint_wanted().clone()
    }

    /// Writes the checkpoint files (recovery points, log start offsets). Blocking.
    pub fn checkpoint(&self) -> io::Result<()> {
        let failed = self.logs.checkpoint(&self.all_partitions());
        for dir in failed {
            self.dir_failed(dir);
        }
        Ok(())
    }

    /// A log directory failed: every partition in it goes out of service
    /// here (KAFKA_STORAGE_ERROR, no fetching, no leading) and is reported to
    /// the controller, which moves its leadership (`offline_replicas`).
    pub fn dir_failed(&self, dir: usize) {
        let hosted = self.topics.load_full();
        let mut offline = self.offline.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, index) in self.logs.partitions_in(dir) {
            let Some(t) = hosted.by_name.get(&topic) else { continue };
            if let Some(p) = t.partition(index) {
                p.log().mark_offline();
                self.fetchers.unfollow(t.id, index);
                offline.push((t.id, index));
            }
        }
        warn!(
            partitions = offline.len(),
            "replicas offline after a log directory failure"
        );
    }

    /// This broker's replicas in failed log directories.
    pub fn offline_replicas(&self) -> Vec<(Uuid, i32)> {
        self.offline.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the followers' fetching.
    pub fn stop_fetchers(&self) {
        self.fetchers.shutdown();
    }

    /// Closes every log cleanly. Blocking.
    pub fn shutdown(&self) -> io::Result<()> {
        self.logs.shutdown(&self.all_partitions())
    }
}
