//! `OffsetsTopic`: group records kept durable in the internal topic
//! `__consumer_offsets`, through the native log. Each group lives in the
//! partition Kafka would put it in. The topic is compacted by rewriting: when
//! a partition grows past a threshold, the live records are written into a
//! fresh segment and everything before it is dropped.

use super::coordinator::{java_string_hash, GroupLog};
use super::records::{RecordKey, RecordValue};
use crate::cluster::{Cluster, NewTopic, TopicError};
use crate::storage::{now_ms, Partition};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError as E;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tracing::{info, warn};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Records per batch when rewriting.
const REWRITE_BATCH: usize = 500;

pub struct OffsetsTopic {
    partitions: Vec<Arc<Partition>>,
    /// Rewrite a partition once its log is larger than this.
    thresholds: Vec<u64>,
    min_threshold: u64,
}

/// Which partition of `__consumer_offsets` holds a group: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`.
pub fn partition_for(group: &str, partitions: usize) -> usize {
    let hash = java_string_hash(group);
    let abs = if hash == i32::MIN {
        0
    } else {
        hash.unsigned_abs() as usize
    };
    abs % partitions.max(1)
}

impl OffsetsTopic {
    /// The topic if it exists already.
    pub fn existing(cluster: &Cluster, min_threshold: u64) -> Option<OffsetsTopic> {
        let topic = cluster.topic(OFFSETS_TOPIC)?;
        Some(OffsetsTopic {
            thresholds: vec![min_threshold; topic.partitions.len()],
            partitions: topic.partitions.clone(),
            min_threshold,
        })
    }

    /// Creates the topic, as Kafka does on first use of a group.
    pub fn create(cluster: &Cluster, partitions: i32, segment_bytes: u64) -> Result<OffsetsTopic, TopicError> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        // Below segment.bytes' 1 MiB floor only the internal key may carry the size.
        let key = if segment_bytes < 1_048_576 {
            "internal.segment.bytes"
        } else {
            "segment.bytes"
        };
        configs.insert(key.to_string(), segment_bytes.min(i32::MAX as u64).to_string());
        let new = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions,
            replication_factor: 1,
            configs,
        };
        match cluster.create_topic(new, false) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        OffsetsTopic::existing(cluster, segment_bytes).ok_or(TopicError::Unknown)
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Reads every record of every partition: the latest value of each key.
    pub fn load(&self) -> BTreeMap<RecordKey, RecordValue> {
        let mut state = BTreeMap::new();
        for partition in &self.partitions {
            let mut offset = partition.offsets().log_start_offset;
            loop {
                let end = partition.offsets().high_watermark;
                let plan = match partition.plan_read(offset, end) {
                    Ok(Some(plan)) => plan,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(partition = partition.index(), error = %e, "cannot read __consumer_offsets");
                        break;
                    }
                };
                let mut chunk = match plan.read(1 << 20, true) {
                    Ok(c) if !c.is_empty() => c,
                    _ => break,
                };
                while !chunk.is_empty() {
                    let Some((_, size)) = crate::storage::batch::BatchHeader::peek_offset_and_size(&chunk) else {
                        break;
                    };
                    if let Ok(h) = crate::storage::batch::BatchHeader::parse(&chunk) {
                        offset = h.next_offset();
                    }
                    let mut batch = chunk.split_to(size.min(chunk.len()));
                    let Ok(set) = RecordBatchDecoder::decode(&mut batch) else {
                        break;
                    };
                    for r in set.records {
                        let Some(key) = r.key.as_deref().and_then(|k| RecordKey::decode(k).ok()) else {
                            continue;
                        };
                        match RecordValue::decode(&key, r.value.as_deref()) {
                            Ok(Some(v)) => {
                                state.insert(key, v);
                            }
                            Ok(None) => {
                                state.remove(&key);
                            }
                            Err(e) => warn!(error = %e, "skipping an unreadable group record"),
                        }
                    }
                }
            }
        }
        state
    }

    fn encode(records: &[(RecordKey, Option<Bytes>)], now: i64) -> BytesMut {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: now,
                key: Some(key.encode()),
                value: value.clone(),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        // Encoding in-memory records into a buffer cannot fail.
        let _ = RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        );
        buf
    }

    fn append(&self, index: usize, records: &[(RecordKey, Option<Bytes>)]) -> Result<(), i16> {
        let mut batch = OffsetsTopic::encode(records, now_ms());
        self.partitions[index].append_now(&mut batch).map(|_| ()).map_err(|e| {
            warn!(error = %e, "could not write to __consumer_offsets");
            E::CoordinatorNotAvailable.code()
        })
    }

    /// Rewrites the partitions that outgrew their threshold: the live records
    /// (`live`: group, key, value) go into a new segment, older ones are dropped.
    pub fn maybe_rewrite(&mut self, touched: &HashSet<usize>, live: impl Fn() -> Vec<(String, RecordKey, Bytes)>) {
        let over: Vec<usize> = touched
            .iter()
            .copied()
            .filter(|i| self.partitions[*i].log().size_bytes() > self.thresholds[*i])
            .collect();
        if over.is_empty() {
            return;
        }
        let live = live();
        let count = self.partitions.len();
        for index in over {
            let partition = &self.partitions[index];
            let mine: Vec<(RecordKey, Option<Bytes>)> = live
                .iter()
                .filter(|(group, _, _)| partition_for(group, count) == index)
                .map(|(_, k, v)| (k.clone(), Some(v.clone())))
                .collect();
            let now = now_ms();
            let start = {
                let mut log = partition.log();
                if let Err(e) = log.roll(now) {
                    warn!(error = %e, "could not roll __consumer_offsets for a rewrite");
                    continue;
                }
                log.log_end_offset()
            };
            let mut written = 0u64;
            let mut ok = true;
            for chunk in mine.chunks(REWRITE_BATCH) {
                let mut batch = OffsetsTopic::encode(chunk, now);
                written += batch.len() as u64;
                if partition.append_now(&mut batch).is_err() {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            let before = partition.log().size_bytes();
            if let Err(e) = partition.log().delete_records_before(start) {
                warn!(error = %e, "could not drop the rewritten history of __consumer_offsets");
                continue;
            }
            let after = partition.log().size_bytes();
            self.thresholds[index] = self.min_threshold.max(2 * written);
            info!(
                partition = index,
                records = mine.len(),
                before,
                after,
                "rewrote __consumer_offsets"
            );
        }
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

impl GroupLog for TopicWriter<'_> {
    fn write(&mut self, group: &str, records: Vec<(RecordKey, Option<Bytes>)>) -> Result<(), i16> {
        if self.topic.is_none() {
            let created = OffsetsTopic::create(self.cluster, self.partitions, self.segment_bytes).map_err(|e| {
                warn!(error = %e, "could not create __consumer_offsets");
                E::CoordinatorNotAvailable.code()
            })?;
            *self.topic = Some(created);
        }
        let topic = self.topic.as_ref().expect("created above");
        let index = partition_for(group, topic.partition_count());
        topic.append(index, &records)?;
        self.touched.insert(index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_where_kafka_puts_them() {
        // Java: "my-group".hashCode() is -1906497762; Kafka takes its absolute value.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }
}
