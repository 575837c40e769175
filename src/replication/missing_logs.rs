//! Partition logs that could not be created when their topic arrived (the
//! log directory was full) are created later, once space returns, so that a
//! full disk costs a wait rather than a restart. Kafka takes the directory
//! offline instead; its partitions then need the broker restarted.

use super::replica_manager::{hosted_indexes, HostedTopics, ReplicaManager};
use crate::config::topic::LogConfig;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::info;

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
}
