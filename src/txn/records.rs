//! Records of `__transaction_state`, in Kafka's TransactionLog layout:
//! key v0 (transactional id), value v1 (producer id and epoch, timeout,
//! state, partitions, timestamps, and as tagged fields the previous and next
//! producer ids and the client's transaction version, KIP-890) — what Kafka
//! writes with transaction.version 2. Values v0 (Sluice before TV2, Kafka
//! with TV1) are read too. A null value forgets the id.

use crate::coordinator::flexible::{get_tagged_fields, get_uvarint, put_tagged_fields, put_uvarint, Truncated};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("transaction record is truncated")]
    Truncated,
    #[error("transaction record version {0} is not supported")]
    Version(i16),
    #[error("transaction state {0} is unknown")]
    State(i8),
    #[error("transaction record is not UTF-8")]
    Utf8,
}

impl From<Truncated> for RecordError {
    fn from(_: Truncated) -> RecordError {
        RecordError::Truncated
    }
}

/// Kafka's TransactionState, with its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Kafka's admin APIs and tools show.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// Kafka's TransactionVersion feature levels: 0 and 1 end a transaction
/// with the producer's epoch; 2 bumps the epoch at every end (KIP-890).
pub type TransactionVersion = i16;
pub const TV_0: TransactionVersion = 0;
pub const TV_2: TransactionVersion = 2;

/// What the coordinator knows of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the open transaction began; -1 when none is open.
    pub start_ms: i64,
    /// The producer id before the last change (a retried EndTxn after the
    /// epoch overflowed names it); -1 when none.
    pub previous_producer_id: i64,
    /// The producer id the transaction moves to when it completes (TV2, the
    /// epoch used up); -1 when none.
    pub next_producer_id: i64,
    /// The transaction version of the client's last add or end.
    pub client_version: TransactionVersion,
}

impl TxnMetadata {
    /// A new id's metadata: no transaction, nothing before it.
    pub fn new(producer_id: i64, producer_epoch: i16, timeout_ms: i32, now: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            producer_epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now,
            start_ms: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_version: TV_0,
        }
    }

    /// Whether its transactions bump the epoch at their end (KIP-890).
    pub fn bumps_epoch(&self) -> bool {
        self.client_version >= TV_2
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(s.as_bytes());
}

fn get_string(buf: &mut Bytes) -> Result<String, RecordError> {
    if buf.remaining() < 2 {
        return Err(RecordError::Truncated);
    }
    let len = buf.get_i16();
    if len < 0 || buf.remaining() < len as usize {
        return Err(RecordError::Truncated);
    }
    String::from_utf8(buf.split_to(len as usize).to_vec()).map_err(|_| RecordError::Utf8)
}

fn need(buf: &Bytes, n: usize) -> Result<(), RecordError> {
    if buf.remaining() < n {
        Err(RecordError::Truncated)
    } else {
        Ok(())
    }
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(0);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

pub fn decode_key(bytes: &[u8]) -> Result<String, RecordError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    need(&buf, 2)?;
    let version = buf.get_i16();
    if version != 0 {
        return Err(RecordError::Version(version));
    }
    get_string(&mut buf)
}

fn put_compact_string(buf: &mut BytesMut, s: &str) {
    put_uvarint(buf, s.len() as u32 + 1);
    buf.put_slice(s.as_bytes());
}

fn get_compact_string(buf: &mut Bytes) -> Result<String, RecordError> {
    let len = get_uvarint(buf)? as usize;
    let len = len.checked_sub(1).ok_or(RecordError::Truncated)?;
    need(buf, len)?;
    String::from_utf8(buf.split_to(len).to_vec()).map_err(|_| RecordError::Utf8)
}

fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match out.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => out.push((topic, vec![*partition])),
        }
    }
    out
}

/// The value as Kafka writes it with transaction.version 2 (v1, flexible).
pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(1);
    buf.put_i64(m.producer_id);
    buf.put_i16(m.producer_epoch);
    buf.put_i32(m.timeout_ms);
    buf.put_i8(m.state.code());
    // Kafka writes no partitions (a null array) for an Empty transaction.
    if m.state == TxnState::Empty {
        put_uvarint(&mut buf, 0);
    } else {
        let topics = by_topic(&m.partitions);
        put_uvarint(&mut buf, topics.len() as u32 + 1);
        for (topic, partitions) in topics {
            put_compact_string(&mut buf, topic);
            put_uvarint(&mut buf, partitions.len() as u32 + 1);
            for p in partitions {
                buf.put_i32(p);
            }
            put_uvarint(&mut buf, 0);
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    // Tagged fields, in tag order, only when not at their defaults.
    let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
    if m.previous_producer_id != -1 {
        tagged.push((0, m.previous_producer_id.to_be_bytes().to_vec()));
    }
    if m.next_producer_id != -1 {
        tagged.push((1, m.next_producer_id.to_be_bytes().to_vec()));
    }
    if m.client_version != 0 {
        tagged.push((2, m.client_version.to_be_bytes().to_vec()));
    }
    let fields: Vec<(u32, &[u8])> = tagged.iter().map(|(tag, data)| (*tag, data.as_slice())).collect();
    put_tagged_fields(&mut buf, &fields);
    buf.freeze()
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    need(&buf, 2)?;
    let version = buf.get_i16();
    if !(0..=1).contains(&version) {
        return Err(RecordError::Version(version));
    }
    let flexible = version >= 1;
    need(&buf, 8 + 2 + 4 + 1)?;
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let code = buf.get_i8();
    let state = TxnState::from_code(code).ok_or(RecordError::State(code))?;
    let topics = if flexible {
        get_uvarint(&mut buf)? as i64 - 1
    } else {
        need(&buf, 4)?;
        buf.get_i32() as i64
    };
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = if flexible {
            get_compact_string(&mut buf)?
        } else {
            get_string(&mut buf)?
        };
        let count = if flexible {
            get_uvarint(&mut buf)? as i64 - 1
        } else {
            need(&buf, 4)?;
            buf.get_i32() as i64
        };
        for _ in 0..count.max(0) {
            need(&buf, 4)?;
            partitions.insert((topic.clone(), buf.get_i32()));
        }
        if flexible {
            get_tagged_fields(&mut buf, |_, _| Ok::<(), RecordError>(()))?;
        }
    }
    need(&buf, 16)?;
    let mut m = TxnMetadata {
        state,
        partitions,
        last_update_ms: buf.get_i64(),
        start_ms: buf.get_i64(),
        ..TxnMetadata::new(producer_id, producer_epoch, timeout_ms, 0)
    };
    if flexible {
        get_tagged_fields(&mut buf, |tag, mut data| {
            match tag {
                0 if data.remaining() >= 8 => m.previous_producer_id = data.get_i64(),
                1 if data.remaining() >= 8 => m.next_producer_id = data.get_i64(),
                2 if data.remaining() >= 2 => m.client_version = data.get_i16(),
                0..=2 => return Err(RecordError::Truncated),
                // NextProducerEpoch (3) and later tags: not used here.
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        assert_eq!(decode_key(&encode_key("my-txn")).unwrap(), "my-txn");
        let m = TxnMetadata {
            producer_id: 1000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)]
                .into_iter()
                .collect(),
            last_update_ms: 5,
            start_ms: 4,
            previous_producer_id: 999,
            next_producer_id: 1001,
            client_version: TV_2,
        };
        let bytes = encode_value(&m);
        assert_eq!(decode_value(&bytes).unwrap(), m);
        assert_eq!(decode_value(&bytes[..bytes.len() - 3]), Err(RecordError::Truncated));
        let mut bad = bytes.to_vec();
        bad[16] = 42; // state code
        assert_eq!(decode_value(&bad), Err(RecordError::State(42)));
        // Defaults are left out: an Empty TV0 id is the fixed fields and no tags.
        let empty = TxnMetadata::new(7, 0, 1000, 3);
        let bytes = encode_value(&empty);
        assert_eq!(bytes.len(), 2 + 8 + 2 + 4 + 1 + 1 + 16 + 1);
        assert_eq!(decode_value(&bytes).unwrap(), empty);
    }

    /// Bytes of a value Kafka 4.4 wrote (TransactionLogValue v1 of an Ongoing
    /// transaction of a TV2 client, on "t" partitions 0 and 1).
    #[test]
    fn reads_kafka_v1_and_sluice_v0_values() {
        let mut kafka = vec![0, 1];
        kafka.extend(5i64.to_be_bytes());
        kafka.extend(3i16.to_be_bytes());
        kafka.extend(60_000i32.to_be_bytes());
        kafka.push(1); // Ongoing
        kafka.extend([2, 2, b't', 3, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        kafka.extend(20i64.to_be_bytes());
        kafka.extend(10i64.to_be_bytes());
        kafka.extend([2, 0, 8]);
        kafka.extend(4i64.to_be_bytes());
        kafka.extend([2, 2, 0, 2]);
        let m = decode_value(&kafka).unwrap();
        assert_eq!((m.producer_id, m.producer_epoch, m.state), (5, 3, TxnState::Ongoing));
        assert_eq!(m.partitions.len(), 2);
        assert_eq!((m.start_ms, m.last_update_ms), (10, 20));
        assert_eq!(
            (m.previous_producer_id, m.next_producer_id, m.client_version),
            (4, -1, TV_2)
        );
        assert_eq!(encode_value(&m).to_vec(), kafka, "written back the same");

        // v0, as Sluice wrote before transaction.version 2.
        let mut v0 = vec![0, 0];
        v0.extend(5i64.to_be_bytes());
        v0.extend(3i16.to_be_bytes());
        v0.extend(60_000i32.to_be_bytes());
        v0.push(4); // CompleteCommit
        v0.extend(0i32.to_be_bytes());
        v0.extend(20i64.to_be_bytes());
        v0.extend((-1i64).to_be_bytes());
        let m = decode_value(&v0).unwrap();
        assert_eq!(
            (m.state, m.client_version, m.next_producer_id),
            (TxnState::CompleteCommit, TV_0, -1)
        );
    }
}
