//! Reading a coordinator partition back (Kafka's CoordinatorLoader): every
//! record from the log start to the high watermark, in order, transaction
//! markers included. Blocking: run it off the async threads.

use super::state_topic::TxnProducer;
use crate::storage::batch::BatchHeader;
use crate::storage::Partition;
use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use tracing::warn;

/// One thing read from a coordinator partition.
pub enum Loaded {
    /// A keyed record; `producer` is set for a transactional one.
    Record {
        key: Bytes,
        value: Option<Bytes>,
        producer: Option<TxnProducer>,
    },
    /// A transaction's commit or abort marker.
    Marker { producer_id: i64, commit: bool },
}

/// Control record keys: version i16, then type i16 (0 abort, 1 commit).
fn is_commit(key: &[u8]) -> bool {
    key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == 1
}

/// Calls `f` with everything in the partition, in log order.
pub fn read_partition(partition: &Partition, mut f: impl FnMut(Loaded)) {
    let mut offset = partition.offsets().log_start_offset;
    loop {
        // To the log end, as Kafka's coordinator loader: a new leader's high
        // watermark may not have caught up with what its predecessor
        // committed, and what it holds is what the partition will keep.
        let end = partition.offsets().log_end_offset;
        let plan = match partition.plan_read(offset, end) {
            Ok(Some(plan)) => plan,
            Ok(None) => break,
            Err(e) => {
                warn!(topic = partition.topic(), partition = partition.index(), error = %e, "cannot read");
                break;
            }
        };
        let mut chunk = match plan.read(1 << 20, true) {
            Ok(c) if !c.is_empty() => c,
            _ => break,
        };
        while !chunk.is_empty() {
            let Some((_, size)) = BatchHeader::peek_offset_and_size(&chunk) else {
                break;
            };
            match BatchHeader::parse(&chunk) {
                Ok(h) => offset = h.next_offset(),
                Err(_) => break,
            }
            let mut batch = chunk.split_to(size.min(chunk.len()));
            let set = match RecordBatchDecoder::decode(&mut batch) {
                Ok(set) => set,
                Err(e) => {
                    warn!(topic = partition.topic(), partition = partition.index(), error = %e,
                        "skipping an unreadable batch");
                    continue;
                }
            };
            for r in set.records {
                let Some(key) = r.key else { continue };
                if r.control {
                    f(Loaded::Marker {
                        producer_id: r.producer_id,
                        commit: is_commit(&key),
                    });
                    continue;
                }
                let producer = r.transactional.then_some(TxnProducer {
                    producer_id: r.producer_id,
                    producer_epoch: r.producer_epoch,
                });
                f(Loaded::Record {
                    key,
                    value: r.value,
                    producer,
                });
            }
        }
    }
}
