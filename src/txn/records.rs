//! Records of `__transaction_state`, in Kafka's TransactionLog layout:
//! key v0 (transactional id), value v0 (producer id and epoch, timeout,
//! state, partitions, timestamps). A null value forgets the id.

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

pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf.put_i64(m.producer_id);
    buf.put_i16(m.producer_epoch);
    buf.put_i32(m.timeout_ms);
    buf.put_i8(m.state.code());
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &m.partitions {
        match by_topic.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => by_topic.push((topic, vec![*partition])),
        }
    }
    buf.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut buf, topic);
        buf.put_i32(partitions.len() as i32);
        for p in partitions {
            buf.put_i32(p);
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    buf.freeze()
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    need(&buf, 2)?;
    let version = buf.get_i16();
    if version != 0 {
        return Err(RecordError::Version(version));
    }
    need(&buf, 8 + 2 + 4 + 1 + 4)?;
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let code = buf.get_i8();
    let state = TxnState::from_code(code).ok_or(RecordError::State(code))?;
    let topics = buf.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut buf)?;
        need(&buf, 4)?;
        let count = buf.get_i32();
        for _ in 0..count.max(0) {
            need(&buf, 4)?;
            partitions.insert((topic.clone(), buf.get_i32()));
        }
    }
    need(&buf, 16)?;
    Ok(TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms: buf.get_i64(),
        start_ms: buf.get_i64(),
    })
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
        };
        let bytes = encode_value(&m);
        assert_eq!(decode_value(&bytes).unwrap(), m);
        assert_eq!(decode_value(&bytes[..bytes.len() - 3]), Err(RecordError::Truncated));
        let mut bad = bytes.to_vec();
        bad[16] = 42; // state code
        assert_eq!(decode_value(&bad), Err(RecordError::State(42)));
    }
}
