//! Each hosted partition's role, from the metadata image (Kafka's
//! makeLeaders / makeFollowers): the leader of a replicated partition keeps
//! a `LeaderPartition` (its log's high watermark moved by the ISR), a
//! follower fetches from its leader, and a partition alone on this broker
//! commits at each append as a single node does.

use super::fetcher::{Followed, Key};
use super::leader_partition::LeaderPartition;
use super::replica_manager::{LedPartition, ReplicaManager};
use crate::metadata::image::MetadataImage;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{info, warn};

impl ReplicaManager {
    /// Brings every hosted partition's role in line with `image`. Runs off
    /// the async threads (a new leader epoch is written to its checkpoint).
    pub(super) fn update_roles(&self, image: &Arc<MetadataImage>) {
        let mut last = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref().is_some_and(|l| l.offset > image.offset) {
            return;
        }
        *last = Some(image.clone());
        let may_lead = self.may_lead.load(Ordering::Acquire);
        let me = self.node_id;
        if let Some(b) = image.brokers.get(&me) {
            self.fetchers.set_broker_epoch(b.epoch);
        }
        let hosted = self.topics.load_full();
        let current = self.leaders.load_full();
        let mut leaders: HashMap<Key, LedPartition> = HashMap::new();
        let mut followed: HashSet<Key> = HashSet::new();
        for topic in hosted.by_id.values() {
            let Some(image_topic) = image.topics.by_id(topic.id) else {
                continue;
            };
            for (index, reg) in image_topic.partitions.iter().enumerate() {
                let index = index as i32;
                let Some(partition) = topic.partition(index) else {
                    continue;
                };
                // In a failed log directory: neither led nor followed here.
                if partition.log().is_offline() {
                    continue;
                }
                let key = (topic.id, index);
                let replicated = reg.replicas.len() > 1;
                if reg.leader == me {
                    self.fetchers.unfollow(topic.id, index);
                    {
                        let mut log = partition.log();
                        if log.leader_epoch() < reg.leader_epoch {
                            if let Err(e) = log.become_leader(reg.leader_epoch) {
                                warn!(topic = %topic.name, partition = index, error = %e,
                                    "could not record a new leader epoch");
                            }
                        }
                        if log.is_replicated() != replicated {
                            log.set_replicated(replicated);
                        }
                    }
                    if !replicated {
                        partition.set_observer(None);
                        continue;
                    }
                    if !may_lead {
                        continue;
                    }
                    let led = match current.get(&key) {
                        Some(led) if led.leader.leader_epoch == reg.leader_epoch => {
                            if led.leader.partition_epoch() != reg.partition_epoch {
                                led.leader.committed(partition, reg);
                            }
                            led.clone()
                        }
                        _ => {
                            let leader = Arc::new(LeaderPartition::new(
                                topic.id,
                                partition,
                                me,
                                reg,
                                self.replication.lag_time_max_ms,
                            ));
                            partition.set_observer(Some(leader.clone()));
                            info!(topic = %topic.name, partition = index, epoch = reg.leader_epoch,
                                isr = ?reg.isr, "leading a replicated partition");
                            LedPartition {
                                partition: partition.clone(),
                                leader,
                            }
                        }
                    };
                    leaders.insert(key, led);
                } else if reg.replicas.contains(&me) {
                    partition.set_observer(None);
                    {
                        let mut log = partition.log();
                        if !log.is_replicated() {
                            log.set_replicated(true);
                        }
                    }
                    let Some(address) = self.address_of(image, reg.leader) else {
                        continue;
                    };
                    followed.insert(key);
                    if self.fetchers.following(topic.id, index) != Some((reg.leader, address.clone(), reg.leader_epoch))
                    {
                        info!(topic = %topic.name, partition = index, leader = reg.leader, epoch = reg.leader_epoch,
                            "following the leader");
                        self.fetchers.follow(
                            reg.leader,
                            address,
                            Followed::new(topic.id, partition.clone(), reg.leader_epoch),
                        );
                    }
                } else {
                    partition.set_observer(None);
                }
            }
        }
        self.fetchers.retain(&followed);
        self.leaders.store(Arc::new(leaders));
    }

    /// A broker's address on the inter-broker listener.
    pub(super) fn address_of(&self, image: &MetadataImage, broker: i32) -> Option<String> {
        if broker < 0 {
            return None;
        }
        let registration = image.brokers.get(&broker)?;
        let endpoint = registration
            .endpoints
            .iter()
            .find(|e| e.listener == self.inter_broker_listener)?;
        Some(format!("{}:{}", endpoint.host, endpoint.port))
    }
}
