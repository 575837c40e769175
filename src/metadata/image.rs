//! `MetadataImage`: the cluster's metadata at one offset of the metadata log,
//! immutable. Readers hold an `Arc` of it and never lock; a change builds a
//! new image (`MetadataDelta`) that shares every part it did not touch.

use super::records::{
    BrokerRegistration, ConfigResource, ControllerRegistration, MetadataRecord, PartitionRecord, QuotaEntity,
};
use crate::auth::acl::AclBinding;
use crate::auth::delegation_token::DelegationToken;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// One partition's replicas and leadership, as the image holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress: replicas joining and leaving (both in `replicas`).
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

impl PartitionRegistration {
    pub fn from_record(r: &PartitionRecord) -> PartitionRegistration {
        PartitionRegistration {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding_replicas: r.adding_replicas.clone(),
            removing_replicas: r.removing_replicas.clone(),
        }
    }

    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    pub fn to_record(&self, topic_id: Uuid, partition: i32) -> PartitionRecord {
        PartitionRecord {
            topic_id,
            partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            adding_replicas: self.adding_replicas.clone(),
            removing_replicas: self.removing_replicas.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    /// Indexed by partition id (Kafka's partitions are numbered from 0, no gaps).
    pub partitions: Vec<PartitionRegistration>,
}

impl TopicImage {
    pub fn partition(&self, index: i32) -> Option<&PartitionRegistration> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }

    pub fn is_internal(&self) -> bool {
        super::topic_name::is_internal(&self.name)
    }
}

/// Topics by name and by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicsImage {
    pub(super) by_name: Arc<BTreeMap<String, Arc<TopicImage>>>,
    pub(super) names: Arc<HashMap<Uuid, String>>,
}

impl TopicsImage {
    pub fn get(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.by_name.get(name)
    }

    pub fn by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.names.get(&id).and_then(|n| self.by_name.get(n))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }
}

/// One entity's client quotas and their values by key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientQuota {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

pub type ScramCredentials = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

#[derive(Debug, Clone, PartialEq)]
pub struct MetadataImage {
    /// Offset of the last record applied (-1: none).
    pub offset: i64,
    pub features: Arc<BTreeMap<String, i16>>,
    pub brokers: Arc<BTreeMap<i32, BrokerRegistration>>,
    pub controllers: Arc<BTreeMap<i32, ControllerRegistration>>,
    pub topics: TopicsImage,
    pub configs: Arc<BTreeMap<ConfigResource, BTreeMap<String, String>>>,
    pub scram: Arc<ScramCredentials>,
    pub acls: Arc<Vec<AclBinding>>,
    /// Delegation tokens by id.
    pub delegation_tokens: Arc<BTreeMap<String, DelegationToken>>,
    pub client_quotas: Arc<Vec<ClientQuota>>,
    /// Producer ids below this have been handed out.
    pub next_producer_id: i64,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage {
            offset: -1,
            features: Arc::default(),
            brokers: Arc::default(),
            controllers: Arc::default(),
            topics: TopicsImage::default(),
            configs: Arc::default(),
            scram: Arc::default(),
            acls: Arc::default(),
            delegation_tokens: Arc::default(),
            client_quotas: Arc::default(),
            next_producer_id: 0,
        }
    }
}

static NO_CONFIGS: BTreeMap<String, String> = BTreeMap::new();

impl MetadataImage {
    /// The config overrides of a resource (empty when it has none).
    pub fn configs_of(&self, resource: &ConfigResource) -> &BTreeMap<String, String> {
        self.configs.get(resource).unwrap_or(&NO_CONFIGS)
    }

    pub fn topic_configs(&self, topic: &str) -> &BTreeMap<String, String> {
        self.configs_of(&ConfigResource::Topic(topic.to_string()))
    }

    pub fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.scram.get(user).and_then(|m| m.get(&mechanism))
    }

    /// The records that rebuild this image from nothing (a snapshot).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in self.features.iter() {
            out.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(b.clone()));
        }
        for c in self.controllers.values() {
            out.push(MetadataRecord::RegisterController(c.clone()));
        }
        for t in self.topics.iter() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            for (i, p) in t.partitions.iter().enumerate() {
                out.push(MetadataRecord::Partition(p.to_record(t.id, i as i32)));
            }
        }
        for (resource, configs) in self.configs.iter() {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (user, mechanisms) in self.scram.iter() {
            for (mechanism, credential) in mechanisms {
                out.push(MetadataRecord::UserScramCredential {
                    name: user.clone(),
                    mechanism: *mechanism,
                    credential: credential.clone(),
                });
            }
        }
        out.extend(self.acls.iter().cloned().map(MetadataRecord::Acl));
        out.extend(
            self.delegation_tokens
                .values()
                .cloned()
                .map(MetadataRecord::DelegationToken),
        );
        for q in self.client_quotas.iter() {
            for (key, value) in &q.values {
                out.push(MetadataRecord::ClientQuota {
                    entity: q.entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds {
                next_producer_id: self.next_producer_id,
            });
        }
        out
    }
}
