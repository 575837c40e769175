//! Creating the logs of the partitions hosted here: in chunks on the blocking
//! pool when a topic or partition arrives, and again later for those a full
//! log directory refused, once space returns — so a full disk costs a wait
//! rather than a restart (Kafka takes the directory offline instead; its
//! partitions then need the broker restarted).

use super::replica_manager::{hosted_indexes, HostedTopics, ReplicaManager};
use crate::config::topic::LogConfig;
use crate::metadata::image::TopicImage;
use crate::storage::Partition;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{info, warn};

/// New partitions' logs are created this many at a time on one blocking thread.
const CREATE_CHUNK: usize = 512;

impl ReplicaManager {
    /// Creates the hosted partitions' logs missing since a failed creation.
    /// True when some were created (their roles are applied; coordinators
    /// may have partitions to load). Run by the metadata publisher, between
    /// images, so it never races `apply`.
    pub async fn create_missing_logs(self: &Arc<Self>) -> bool {
        if !self.logs_missing.swap(false, Ordering::AcqRel) {
            return false;
        }
        let Some(image) = self.roles.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return false;
        };
        let mut hosted = HostedTopics::clone(&self.topics.load());
        let current: Vec<_> = hosted.by_id.values().cloned().collect();
        let mut created = 0;
        for topic in current {
            let Some(t) = image.topics.by_id(topic.id) else {
                continue;
            };
            let missing: Vec<i32> = hosted_indexes(t, self.node_id, self.host_all)
                .into_iter()
                .filter(|i| topic.partition(*i).is_none())
                .collect();
            if missing.is_empty() {
                continue;
            }
            let log_config: LogConfig = topic.log_config.clone();
            let partitions = self.create_logs(t, &missing, &log_config).await;
            if partitions.is_empty() {
                continue;
            }
            created += partitions.len();
            info!(topic = %t.name, partitions = partitions.len(), "created partition logs missing since a failed creation");
            let mut all = topic.hosted.clone();
            all.extend(partitions);
            hosted.insert(Arc::new(topic.with(
                topic.configs.clone(),
                log_config,
                all,
                t.partitions.len(),
            )));
        }
        if created == 0 {
            return false;
        }
        self.topics.store(Arc::new(hosted));
        self.update_roles_blocking(&image).await;
        true
    }

    /// Creates the logs of a topic's partitions `indexes`, on the blocking
    /// pool, a chunk per thread. One that cannot be created (a full disk) is
    /// not hosted: it answers UNKNOWN_TOPIC_OR_PARTITION until the publisher
    /// creates it (`create_missing_logs`).
    pub(super) async fn create_logs(
        &self,
        topic: &Arc<TopicImage>,
        indexes: &[i32],
        config: &LogConfig,
    ) -> Vec<(i32, Arc<Partition>)> {
        let mut tasks = Vec::new();
        for chunk in indexes.chunks(CREATE_CHUNK) {
            let (logs, chunk, topic, config) = (self.logs.clone(), chunk.to_vec(), topic.clone(), config.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|p| {
                        logs.open_partition(&topic.name, p, topic.id, config.clone())
                            .map(|(log, _)| (p, log))
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut out = Vec::with_capacity(indexes.len());
        for task in tasks {
            let results = match task.await {
                Ok(results) => results,
                Err(e) => {
                    self.logs_missing.store(true, std::sync::atomic::Ordering::Release);
                    warn!(topic = %topic.name, error = %e, "partition creation stopped");
                    continue;
                }
            };
            for r in results {
                match r {
                    Ok(p) => out.push(p),
                    Err(e) => {
                        self.logs_missing.store(true, std::sync::atomic::Ordering::Release);
                        warn!(topic = %topic.name, error = %e, "could not create a partition log")
                    }
                }
            }
        }
        if !out.is_empty() {
            info!(topic = %topic.name, partitions = out.len(), id = %crate::metadata::topic_id_string(topic.id),
                "created partition logs");
        }
        out
    }
}
