//! Cluster metadata as data (Kafka's KRaft design, KIP-500/KIP-631): every
//! change — a topic, a partition's replicas, a config, a SCRAM credential,
//! an ACL, a quota, a block of producer ids — is a `MetadataRecord` appended
//! to the metadata log by the `Controller`. Records applied to an immutable
//! `MetadataImage` (`MetadataDelta`) give the next image, which the broker
//! publishes whole (`MetadataCache`): the request path reads an image and
//! takes no broker-wide lock. On a single node the log is a local file.

pub mod bootstrap;
pub mod cache;
pub mod controller;
pub mod delta;
pub mod features;
pub mod format;
pub mod formatter;
pub mod ids;
pub mod image;
pub mod legacy;
pub mod log;
pub mod meta_properties;
pub mod placement;
pub mod records;
pub mod topic_name;

pub use cache::{MetadataCache, Publication};
pub use controller::{Controller, ControllerError};
pub use format::{read_format, FormatError, FormatState};
pub use ids::{new_uuid, parse_topic_id, random_kafka_uuid, topic_id_string};
pub use image::{MetadataImage, TopicImage};
