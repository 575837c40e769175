//! `MetadataDelta`: records applied to an image, giving the next image and
//! what changed (Kafka's MetadataDelta). The new image shares every part the
//! records did not touch; the changes tell the broker what to do (create or
//! delete partition logs, reconfigure them).

use super::image::{ClientQuota, MetadataImage, PartitionRegistration, TopicImage};
use super::records::{ConfigResource, MetadataRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::warn;
use uuid::Uuid;

/// What a delta changed, for the broker to act on.
#[derive(Debug, Default, Clone)]
pub struct MetadataChanges {
    /// Topics that did not exist before.
    pub created_topics: BTreeSet<Uuid>,
    /// Topics removed, as they were before.
    pub deleted_topics: Vec<Arc<TopicImage>>,
    /// New or changed partitions of topics that existed before.
    pub changed_partitions: BTreeMap<Uuid, BTreeSet<i32>>,
    /// Topics whose config overrides changed.
    pub topic_configs: BTreeSet<String>,
    /// Dynamic broker configs changed (one broker's or every broker's).
    pub broker_configs: bool,
}

impl MetadataChanges {
    /// What changed from `old` to `new` when `new` came whole (a snapshot
    /// installed from the quorum's leader), not record by record.
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> MetadataChanges {
        let mut changes = MetadataChanges {
            broker_configs: true,
            ..Default::default()
        };
        for topic in old.topics.iter() {
            if new.topics.by_id(topic.id).is_none() {
                changes.deleted_topics.push(topic.clone());
            }
        }
        for topic in new.topics.iter() {
            changes.topic_configs.insert(topic.name.clone());
            match old.topics.by_id(topic.id) {
                None => {
                    changes.created_topics.insert(topic.id);
                }
                Some(before) => {
                    let changed: BTreeSet<i32> = (0..topic.partitions.len() as i32)
                        .filter(|p| before.partition(*p) != topic.partition(*p))
                        .collect();
                    if !changed.is_empty() {
                        changes.changed_partitions.insert(topic.id, changed);
                    }
                }
            }
        }
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.created_topics.is_empty()
            && self.deleted_topics.is_empty()
            && self.changed_partitions.is_empty()
            && self.topic_configs.is_empty()
            && !self.broker_configs
    }
}

pub struct MetadataDelta {
    image: MetadataImage,
    changes: MetadataChanges,
}

impl MetadataDelta {
    pub fn new(base: &MetadataImage) -> MetadataDelta {
        MetadataDelta {
            image: base.clone(),
            changes: MetadataChanges::default(),
        }
    }

    /// The image as the records replayed so far leave it.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Applies one record read at `offset`. Records come from our own
    /// controller through a checksummed log; one that does not fit (a
    /// partition of an unknown topic) is skipped, never a panic.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) {
        self.image.offset = offset;
        let image = &mut self.image;
        match record {
            MetadataRecord::FeatureLevel { name, level } => {
                Arc::make_mut(&mut image.features).insert(name.clone(), *level);
            }
            MetadataRecord::RegisterBroker(b) => {
                Arc::make_mut(&mut image.brokers).insert(b.broker_id, b.clone());
            }
            MetadataRecord::UnregisterBroker { broker_id, epoch } => {
                // An older registration's removal must not remove a newer one.
                if image.brokers.get(broker_id).is_some_and(|b| b.epoch == *epoch) {
                    Arc::make_mut(&mut image.brokers).remove(broker_id);
                }
            }
            MetadataRecord::RegisterController(c) => {
                Arc::make_mut(&mut image.controllers).insert(c.controller_id, c.clone());
            }
            MetadataRecord::UnregisterController { controller_id } => {
                Arc::make_mut(&mut image.controllers).remove(controller_id);
            }
            MetadataRecord::Topic { name, topic_id } => {
                let topics = &mut image.topics;
                if let Some(old) = topics.by_name.get(name) {
                    warn!(topic = %name, old = %old.id, new = %topic_id, "a topic record replaces a live topic");
                    return;
                }
                Arc::make_mut(&mut topics.by_name).insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: Vec::new(),
                    }),
                );
                Arc::make_mut(&mut topics.names).insert(*topic_id, name.clone());
                self.changes.created_topics.insert(*topic_id);
            }
            MetadataRecord::Partition(r) => {
                let topics = &mut image.topics;
                let Some(name) = topics.names.get(&r.topic_id).cloned() else {
                    warn!(topic_id = %r.topic_id, partition = r.partition, "a partition record of an unknown topic");
                    return;
                };
                let Some(topic) = Arc::make_mut(&mut topics.by_name).get_mut(&name) else {
                    return;
                };
                let topic = Arc::make_mut(topic);
                let registration = PartitionRegistration::from_record(r);
                match usize::try_from(r.partition) {
                    Ok(i) if i < topic.partitions.len() => topic.partitions[i] = registration,
                    Ok(i) if i == topic.partitions.len() => topic.partitions.push(registration),
                    _ => {
                        warn!(topic = %name, partition = r.partition, "a partition record out of sequence");
                        return;
                    }
                }
                if !self.changes.created_topics.contains(&r.topic_id) {
                    self.changes
                        .changed_partitions
                        .entry(r.topic_id)
                        .or_default()
                        .insert(r.partition);
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topics = &mut image.topics;
                let Some(name) = Arc::make_mut(&mut topics.names).remove(topic_id) else {
                    return;
                };
                let removed = Arc::make_mut(&mut topics.by_name).remove(&name);
                Arc::make_mut(&mut image.configs).remove(&ConfigResource::Topic(name.clone()));
                self.changes.changed_partitions.remove(topic_id);
                self.changes.topic_configs.remove(&name);
                if !self.changes.created_topics.remove(topic_id) {
                    self.changes.deleted_topics.extend(removed);
                }
            }
            MetadataRecord::Config { resource, name, value } => {
                let configs = Arc::make_mut(&mut image.configs);
                match value {
                    Some(v) => {
                        configs
                            .entry(resource.clone())
                            .or_default()
                            .insert(name.clone(), v.clone());
                    }
                    None => {
                        if let Some(c) = configs.get_mut(resource) {
                            c.remove(name);
                            if c.is_empty() {
                                configs.remove(resource);
                            }
                        }
                    }
                }
                match resource {
                    ConfigResource::Topic(topic) => {
                        self.changes.topic_configs.insert(topic.clone());
                    }
                    ConfigResource::Broker(_) => self.changes.broker_configs = true,
                    // Read where used (the group coordinator looks at the image).
                    ConfigResource::Group(_) => {}
                }
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => {
                Arc::make_mut(&mut image.scram)
                    .entry(name.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                let scram = Arc::make_mut(&mut image.scram);
                if let Some(m) = scram.get_mut(name) {
                    m.remove(mechanism);
                    if m.is_empty() {
                        scram.remove(name);
                    }
                }
            }
            MetadataRecord::Acl(binding) => {
                if !image.acls.contains(binding) {
                    Arc::make_mut(&mut image.acls).push(binding.clone());
                }
            }
            MetadataRecord::RemoveAcl(binding) => {
                if image.acls.contains(binding) {
                    Arc::make_mut(&mut image.acls).retain(|a| a != binding);
                }
            }
            MetadataRecord::DelegationToken(token) => {
                Arc::make_mut(&mut image.delegation_tokens).insert(token.token_id.clone(), token.clone());
            }
            MetadataRecord::RemoveDelegationToken { token_id } => {
                if image.delegation_tokens.contains_key(token_id) {
                    Arc::make_mut(&mut image.delegation_tokens).remove(token_id);
                }
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                let quotas = Arc::make_mut(&mut image.client_quotas);
                let index = match quotas.iter().position(|q| &q.entity == entity) {
                    Some(i) => i,
                    None => {
                        quotas.push(ClientQuota {
                            entity: entity.clone(),
                            values: BTreeMap::new(),
                        });
                        quotas.len() - 1
                    }
                };
                match value {
                    Some(v) => quotas[index].values.insert(key.clone(), *v),
                    None => quotas[index].values.remove(key),
                };
                if quotas[index].values.is_empty() {
                    quotas.remove(index);
                }
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                image.next_producer_id = image.next_producer_id.max(*next_producer_id);
            }
        }
    }

    /// Replays records numbered from `first_offset`.
    pub fn replay_all<'a>(&mut self, first_offset: i64, records: impl IntoIterator<Item = &'a MetadataRecord>) {
        for (i, r) in records.into_iter().enumerate() {
            self.replay(first_offset + i as i64, r);
        }
    }

    /// Replays a snapshot: records that leave the image at `offset`.
    pub fn replay_snapshot(&mut self, offset: i64, records: &[MetadataRecord]) {
        self.replay_all(offset + 1 - records.len() as i64, records);
        self.image.offset = offset;
    }

    pub fn apply(self) -> (MetadataImage, MetadataChanges) {
        (self.image, self.changes)
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
