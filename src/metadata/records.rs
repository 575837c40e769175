//! Metadata records: every change to the cluster's metadata is one of these,
//! appended to the metadata log and applied to the image (Kafka's KRaft
//! records: TopicRecord, PartitionRecord, ConfigRecord, ...). A batch of
//! records written together is applied whole or not at all.

use crate::auth::acl::AclBinding;
use crate::auth::delegation_token::DelegationToken;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a config record configures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// One broker's dynamic configs (Some(id)) or every broker's default (None).
    Broker(Option<i32>),
    /// A group's overrides of the broker's group settings (Kafka's GROUP resource).
    Group(String),
}

/// Where a broker can be reached, per listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

/// A broker as it registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// Kafka's broker epoch: the metadata offset of the registration.
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The id of its metadata log directory (`directory.id` in meta.properties),
    /// which DescribeQuorum shows for observers as Kafka does.
    #[serde(default)]
    pub directory_id: Option<Uuid>,
}

/// A controller as it registered (Kafka's RegisterControllerRecord): kept
/// until `kafka-cluster unregister-controller` removes it, voter or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRegistration {
    pub controller_id: i32,
    /// The controller process (a new one after every restart).
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
}

/// One partition's replicas and leadership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when no replica can lead.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): the replicas joining, which are
    /// already in `replicas`, and those to drop once they are in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

/// One client quota entity: (entity type, name) pairs sorted by type; a None
/// name is the type's default ("<default>").
pub type QuotaEntity = Vec<(String, Option<String>)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    FeatureLevel {
        name: String,
        level: i16,
    },
    RegisterBroker(BrokerRegistration),
    /// Removes a broker's registration (`kafka-cluster unregister`).
    UnregisterBroker {
        broker_id: i32,
        epoch: i64,
    },
    RegisterController(ControllerRegistration),
    /// Removes a controller's registration (`kafka-cluster unregister-controller`).
    UnregisterController {
        controller_id: i32,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    Partition(PartitionRecord),
    /// Removes the topic, its partitions and its configs.
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Sets a config (Some) or removes it (None).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    UserScramCredential {
        name: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    RemoveUserScramCredential {
        name: String,
        mechanism: ScramMechanism,
    },
    Acl(AclBinding),
    RemoveAcl(AclBinding),
    /// A delegation token made, renewed or given a new expiry (its HMAC is
    /// never written: nodes derive it from the shared secret key).
    DelegationToken(DelegationToken),
    RemoveDelegationToken {
        token_id: String,
    },
    /// Sets a quota value (Some) or removes it (None).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
    },
    /// Producer ids below this have been handed out to brokers.
    ProducerIds {
        next_producer_id: i64,
    },
}

impl MetadataRecord {
    /// The record's bytes in the metadata log.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data to JSON cannot fail (quota values are finite:
        // the controller refuses NaN and infinities).
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
