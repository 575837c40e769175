//! `OffsetsTopic`: group records kept durable in the internal topic
//! `__consumer_offsets` (a `StateTopic`). Each group lives in the partition
//! Kafka would put it in. Offsets committed inside a transaction
//! (TxnOffsetCommit) are written as transactional records and count only once
//! the transaction's commit marker follows them.

use super::coordinator::GroupLog;
use super::records::{RecordKey, RecordValue};
use crate::cluster::{Cluster, TopicError};
use crate::state_topic::{StateTopic, TxnProducer};
use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use std::collections::{BTreeMap, HashMap, HashSet};
use tracing::warn;

pub use crate::state_topic::partition_for;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Control record keys: version i16, then type i16 (0 abort, 1 commit).
const COMMIT_MARKER: i16 = 1;

/// What the topic holds: the latest value of each key, and the offsets of
/// transactions still open, by producer id.
#[derive(Default)]
pub struct LoadedGroups {
    pub records: BTreeMap<RecordKey, RecordValue>,
    pub pending: HashMap<i64, Vec<(RecordKey, RecordValue)>>,
}

pub struct OffsetsTopic {
    topic: StateTopic,
}

impl OffsetsTopic {
    /// The topic if it exists already.
    pub fn existing(cluster: &Cluster, min_threshold: u64) -> Option<OffsetsTopic> {
        StateTopic::existing(cluster, OFFSETS_TOPIC, min_threshold).map(|topic| OffsetsTopic { topic })
    }

    /// Creates the topic, as Kafka does on first use of a group.
    pub fn create(cluster: &Cluster, partitions: i32, segment_bytes: u64) -> Result<OffsetsTopic, TopicError> {
        StateTopic::create(cluster, OFFSETS_TOPIC, partitions, segment_bytes).map(|topic| OffsetsTopic { topic })
    }

    pub fn partition_count(&self) -> usize {
        self.topic.partition_count()
    }

    /// Reads every record of every partition, applying transaction markers.
    pub fn load(&self) -> LoadedGroups {
        let mut loaded = LoadedGroups::default();
        let apply = |state: &mut BTreeMap<RecordKey, RecordValue>, key: RecordKey, value: Option<RecordValue>| {
            match value {
                Some(v) => state.insert(key, v),
                None => state.remove(&key),
            };
        };
        self.topic.scan(|_, r| {
            let Some(key_bytes) = r.key.as_deref() else {
                return;
            };
            if r.control {
                let commit = key_bytes.len() >= 4 && i16::from_be_bytes([key_bytes[2], key_bytes[3]]) == COMMIT_MARKER;
                let done = loaded.pending.remove(&r.producer_id).unwrap_or_default();
                if commit {
                    for (key, value) in done {
                        apply(&mut loaded.records, key, Some(value));
                    }
                }
                return;
            }
            let Ok(key) = RecordKey::decode(key_bytes) else {
                return;
            };
            match RecordValue::decode(&key, r.value.as_deref()) {
                Ok(Some(v)) if r.transactional => loaded.pending.entry(r.producer_id).or_default().push((key, v)),
                Ok(value) if !r.transactional => apply(&mut loaded.records, key, value),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "skipping an unreadable group record"),
            }
        });
        loaded
    }

    fn append(
        &self,
        index: usize,
        records: Vec<(RecordKey, Option<Bytes>)>,
        producer: Option<TxnProducer>,
    ) -> Result<(), i16> {
        let records: Vec<(Bytes, Option<Bytes>)> = records.into_iter().map(|(k, v)| (k.encode(), v)).collect();
        self.topic.append(index, &records, producer).map_err(|e| {
            warn!(error = %e, "could not write to __consumer_offsets");
            E::CoordinatorNotAvailable.code()
        })
    }

    /// Rewrites the partitions that outgrew their threshold with the live
    /// records (`live`: group, key, value).
    pub fn maybe_rewrite(&mut self, touched: &HashSet<usize>, live: impl Fn() -> Vec<(String, RecordKey, Bytes)>) {
        let count = self.partition_count();
        self.topic.maybe_rewrite(touched, |index| {
            live()
                .into_iter()
                .filter(|(group, _, _)| partition_for(group, count) == index)
                .map(|(_, k, v)| (k.encode(), v))
                .collect()
        });
    }
}

/// A `GroupLog` over the offsets topic, creating it on first write and
/// remembering which partitions were written (for rewriting).
pub struct TopicWriter<'a> {
    pub topic: &'a mut Option<OffsetsTopic>,
    pub cluster: &'a Cluster,
    pub partitions: i32,
    pub segment_bytes: u64,
    pub touched: HashSet<usize>,
}

impl TopicWriter<'_> {
    /// The topic, created if this is the first write ever.
    pub fn topic(&mut self) -> Result<&OffsetsTopic, i16> {
        if self.topic.is_none() {
            let created = OffsetsTopic::create(self.cluster, self.partitions, self.segment_bytes).map_err(|e| {
                warn!(error = %e, "could not create __consumer_offsets");
                E::CoordinatorNotAvailable.code()
            })?;
            *self.topic = Some(created);
        }
        self.topic.as_ref().ok_or(E::CoordinatorNotAvailable.code())
    }

    fn write_as(
        &mut self,
        group: &str,
        records: Vec<(RecordKey, Option<Bytes>)>,
        producer: Option<TxnProducer>,
    ) -> Result<(), i16> {
        let topic = self.topic()?;
        let index = partition_for(group, topic.partition_count());
        topic.append(index, records, producer)?;
        self.touched.insert(index);
        Ok(())
    }
}

impl GroupLog for TopicWriter<'_> {
    fn write(&mut self, group: &str, records: Vec<(RecordKey, Option<Bytes>)>) -> Result<(), i16> {
        self.write_as(group, records, None)
    }

    fn write_txn(
        &mut self,
        group: &str,
        records: Vec<(RecordKey, Option<Bytes>)>,
        producer: TxnProducer,
    ) -> Result<(), i16> {
        self.write_as(group, records, Some(producer))
    }
}
