//! `StateTopic`: an internal, compacted topic where a coordinator keeps its
//! state as keyed records (`__consumer_offsets`, `__transaction_state`),
//! written through the native log. A key lives in the partition Kafka would
//! put it in. Compaction is by rewriting: when a partition grows past a
//! threshold, its live records go into a fresh segment and everything before
//! it is dropped — unless a transaction is open in it, whose records must stay
//! until its marker.

use crate::cluster::{Cluster, NewTopic, TopicError};
use crate::storage::{now_ms, LogError, Partition};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tracing::{info, warn};

/// Records per batch when rewriting.
const REWRITE_BATCH: usize = 500;

/// Java's `String.hashCode`, which Kafka uses to place keys in partitions.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Which partition holds `key`: Kafka's `Utils.abs(key.hashCode()) % partitions`.
pub fn partition_for(key: &str, partitions: usize) -> usize {
    let hash = java_string_hash(key);
    let abs = if hash == i32::MIN {
        0
    } else {
        hash.unsigned_abs() as usize
    };
    abs % partitions.max(1)
}

/// The producer of a transactional write (TxnOffsetCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

pub struct StateTopic {
    name: &'static str,
    partitions: Vec<Arc<Partition>>,
    /// Rewrite a partition once its log is larger than this.
    thresholds: Vec<u64>,
    min_threshold: u64,
}

impl StateTopic {
    /// The topic if it exists already.
    pub fn existing(cluster: &Cluster, name: &'static str, min_threshold: u64) -> Option<StateTopic> {
        let topic = cluster.topic(name)?;
        Some(StateTopic {
            name,
            thresholds: vec![min_threshold; topic.partitions.len()],
            partitions: topic.partitions.clone(),
            min_threshold,
        })
    }

    /// Creates the topic (compacted), as Kafka does on first use.
    pub fn create(
        cluster: &Cluster,
        name: &'static str,
        partitions: i32,
        segment_bytes: u64,
    ) -> Result<StateTopic, TopicError> {
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
            name: name.to_string(),
            partitions,
            replication_factor: 1,
            configs,
        };
        match cluster.create_topic(new, false) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        StateTopic::existing(cluster, name, segment_bytes).ok_or(TopicError::Unknown)
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    pub fn partition(&self, index: usize) -> Option<&Arc<Partition>> {
        self.partitions.get(index)
    }

    /// Calls `f` with every record of every partition, in log order,
    /// markers included (their `control` flag set).
    pub fn scan(&self, mut f: impl FnMut(usize, &Record)) {
        for (index, partition) in self.partitions.iter().enumerate() {
            let mut offset = partition.offsets().log_start_offset;
            loop {
                let end = partition.offsets().high_watermark;
                let plan = match partition.plan_read(offset, end) {
                    Ok(Some(plan)) => plan,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(topic = self.name, partition = index, error = %e, "cannot read");
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
                    match crate::storage::batch::BatchHeader::parse(&chunk) {
                        Ok(h) => offset = h.next_offset(),
                        Err(_) => break,
                    }
                    let mut batch = chunk.split_to(size.min(chunk.len()));
                    match RecordBatchDecoder::decode(&mut batch) {
                        Ok(set) => set.records.iter().for_each(|r| f(index, r)),
                        Err(e) => {
                            warn!(topic = self.name, partition = index, error = %e, "skipping an unreadable batch")
                        }
                    }
                }
            }
        }
    }

    fn encode(records: &[(Bytes, Option<Bytes>)], now: i64, producer: Option<TxnProducer>) -> BytesMut {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: producer.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.map_or(-1, |p| p.producer_id),
                producer_epoch: producer.map_or(-1, |p| p.producer_epoch),
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Transactional state records carry no sequence, as in Kafka.
                sequence: if producer.is_some() { i as i32 - 1 } else { i as i32 },
                timestamp: now,
                key: Some(key.clone()),
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

    /// Appends records (key, value or None for a tombstone) to one partition,
    /// in a transaction when `producer` is given.
    pub fn append(
        &self,
        index: usize,
        records: &[(Bytes, Option<Bytes>)],
        producer: Option<TxnProducer>,
    ) -> Result<(), LogError> {
        let Some(partition) = self.partitions.get(index) else {
            return Err(LogError::Deleted);
        };
        let mut batch = StateTopic::encode(records, now_ms(), producer);
        partition.append_now(&mut batch).map(|_| ())
    }

    /// Rewrites the partitions that outgrew their threshold: `live(index)`
    /// gives that partition's live records (key, value); partitions with an
    /// open transaction wait.
    pub fn maybe_rewrite(&mut self, touched: &HashSet<usize>, live: impl Fn(usize) -> Vec<(Bytes, Bytes)>) {
        let over: Vec<usize> = touched
            .iter()
            .copied()
            .filter(|i| {
                let log = self.partitions[*i].log();
                log.size_bytes() > self.thresholds[*i] && log.producers().first_unstable_offset().is_none()
            })
            .collect();
        for index in over {
            let partition = &self.partitions[index];
            let mine: Vec<(Bytes, Option<Bytes>)> = live(index).into_iter().map(|(k, v)| (k, Some(v))).collect();
            let now = now_ms();
            let start = {
                let mut log = partition.log();
                if let Err(e) = log.roll(now) {
                    warn!(topic = self.name, error = %e, "could not roll for a rewrite");
                    continue;
                }
                log.log_end_offset()
            };
            let mut written = 0u64;
            let mut ok = true;
            for chunk in mine.chunks(REWRITE_BATCH) {
                let mut batch = StateTopic::encode(chunk, now, None);
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
                warn!(topic = self.name, error = %e, "could not drop rewritten history");
                continue;
            }
            let after = partition.log().size_bytes();
            self.thresholds[index] = self.min_threshold.max(2 * written);
            info!(
                topic = self.name,
                partition = index,
                records = mine.len(),
                before,
                after,
                "rewrote"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_where_kafka_puts_them() {
        // Java: "my-group".hashCode() is -1906497762; Kafka takes its absolute value.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }
}
