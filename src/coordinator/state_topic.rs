//! A coordinator's internal topic (`__consumer_offsets`,
//! `__transaction_state`): compacted, created on first use as Kafka creates
//! it, and a key lives in the partition Kafka would put it in. Its records
//! are written as record batches of keyed records.

use super::runtime::{CoordinatorRuntime, Shard};
use crate::metadata::controller::NewTopic;
use crate::metadata::Controller;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use kafka_protocol::ResponseError as E;
use std::collections::BTreeMap;
use tracing::warn;

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

/// The topic to create: compacted, with the coordinator's segment size.
pub fn new_state_topic(name: &str, partitions: i32, replication_factor: i16, segment_bytes: u64) -> NewTopic {
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    // Below segment.bytes' 1 MiB floor only the internal key may carry the size.
    let key = if segment_bytes < 1_048_576 {
        "internal.segment.bytes"
    } else {
        "segment.bytes"
    };
    configs.insert(key.to_string(), segment_bytes.min(i32::MAX as u64).to_string());
    NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        configs,
        assignments: None,
    }
}

/// Creates a coordinator's topic if it does not exist yet (the first use
/// does, as in Kafka); its shards are loaded once this returns Ok.
pub async fn ensure_state_topic<S: Shard>(
    runtime: &CoordinatorRuntime<S>,
    controller: &Controller,
    topic: impl FnOnce() -> NewTopic,
) -> Result<(), i16> {
    if runtime.partition_count() > 0 {
        return Ok(());
    }
    let topic = topic();
    let name = topic.name.clone();
    match controller.create_topics(vec![topic], false).await {
        Ok(results) => {
            if let Some(Err(e)) = results.into_iter().next() {
                if e.code() != E::TopicAlreadyExists.code() {
                    warn!(error = %e, "could not create {name}");
                }
            }
        }
        Err(e) => warn!(error = %e, "could not create {name}"),
    }
    if runtime.partition_count() > 0 {
        Ok(())
    } else {
        Err(E::CoordinatorNotAvailable.code())
    }
}

/// One batch of keyed records (None values are tombstones), transactional
/// when `producer` is given.
pub fn encode_batch(records: &[(Bytes, Option<Bytes>)], now: i64, producer: Option<TxnProducer>) -> Vec<u8> {
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
    buf.to_vec()
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
