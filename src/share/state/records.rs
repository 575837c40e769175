//! Records of `__share_group_state`, in Kafka's layouts (ShareSnapshotKey /
//! ShareSnapshotValue, ShareUpdateKey / ShareUpdateValue): a key is its
//! record type then group, topic id and partition; a value is its version
//! then a flexible struct. A snapshot holds a share-partition's whole state,
//! an update only the batches written since; a tombstone deletes it.

use super::batches::StateBatch;
use crate::coordinator::flexible::{get_tagged_fields, get_uvarint, put_tagged_fields, put_uvarint, Truncated};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use uuid::Uuid;

const SNAPSHOT: i16 = 0;
const UPDATE: i16 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed __share_group_state record: {0}")]
pub struct RecordError(&'static str);

impl From<Truncated> for RecordError {
    fn from(_: Truncated) -> RecordError {
        RecordError("truncated")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

impl StateKey {
    /// What places the key in a partition of the topic (Kafka's
    /// SharePartitionKey.asCoordinatorKey): "group:topicId:partition".
    pub fn coordinator_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.group,
            crate::metadata::ids::topic_id_string(self.topic_id),
            self.partition
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    /// Records at or above the start whose delivery is done; -1 unknown.
    pub delivery_complete_count: i32,
    pub create_timestamp: i64,
    pub write_timestamp: i64,
    pub batches: Vec<StateBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub snapshot_epoch: i32,
    pub leader_epoch: i32,
    /// -1: unchanged.
    pub start_offset: i64,
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateValue {
    Snapshot(Snapshot),
    Update(Update),
    /// The share-partition's state is deleted (a snapshot key's tombstone).
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    pub key: StateKey,
    pub value: StateValue,
}

impl StateRecord {
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let kind = match self.value {
            StateValue::Update(_) => UPDATE,
            _ => SNAPSHOT,
        };
        let mut key = BytesMut::new();
        key.put_i16(kind);
        key.put_i16(self.key.group.len().min(i16::MAX as usize) as i16);
        key.put_slice(self.key.group.as_bytes());
        key.put_slice(self.key.topic_id.as_bytes());
        key.put_i32(self.key.partition);
        let value = match &self.value {
            StateValue::Deleted => None,
            StateValue::Snapshot(s) => {
                let mut v = BytesMut::new();
                v.put_i16(0);
                v.put_i32(s.snapshot_epoch);
                v.put_i32(s.state_epoch);
                v.put_i32(s.leader_epoch);
                v.put_i64(s.start_offset);
                v.put_i64(s.create_timestamp);
                v.put_i64(s.write_timestamp);
                put_batches(&mut v, &s.batches);
                put_complete_count(&mut v, s.delivery_complete_count);
                Some(v.freeze())
            }
            StateValue::Update(u) => {
                let mut v = BytesMut::new();
                v.put_i16(0);
                v.put_i32(u.snapshot_epoch);
                v.put_i32(u.leader_epoch);
                v.put_i64(u.start_offset);
                put_batches(&mut v, &u.batches);
                put_complete_count(&mut v, u.delivery_complete_count);
                Some(v.freeze())
            }
        };
        (key.freeze(), value)
    }

    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<StateRecord, RecordError> {
        let mut k = key;
        need(k, 4)?;
        let kind = k.get_i16();
        let len = k.get_i16();
        let len = usize::try_from(len).map_err(|_| RecordError("null group id"))?;
        need(k, len + 20)?;
        let group = String::from_utf8(k[..len].to_vec()).map_err(|_| RecordError("group id is not UTF-8"))?;
        k.advance(len);
        let topic_id = Uuid::from_slice(&k[..16]).map_err(|_| RecordError("topic id"))?;
        k.advance(16);
        let partition = k.get_i32();
        let key = StateKey {
            group,
            topic_id,
            partition,
        };
        let Some(mut v) = value else {
            return Ok(StateRecord {
                key,
                value: StateValue::Deleted,
            });
        };
        need(v, 2)?;
        let _version = v.get_i16();
        let value = match kind {
            SNAPSHOT => {
                need(v, 36)?;
                let (snapshot_epoch, state_epoch, leader_epoch) = (v.get_i32(), v.get_i32(), v.get_i32());
                let (start_offset, create_timestamp, write_timestamp) = (v.get_i64(), v.get_i64(), v.get_i64());
                let batches = get_batches(&mut v)?;
                let delivery_complete_count = get_complete_count(&mut v)?;
                StateValue::Snapshot(Snapshot {
                    snapshot_epoch,
                    state_epoch,
                    leader_epoch,
                    start_offset,
                    delivery_complete_count,
                    create_timestamp,
                    write_timestamp,
                    batches,
                })
            }
            UPDATE => {
                need(v, 16)?;
                let (snapshot_epoch, leader_epoch, start_offset) = (v.get_i32(), v.get_i32(), v.get_i64());
                let batches = get_batches(&mut v)?;
                let delivery_complete_count = get_complete_count(&mut v)?;
                StateValue::Update(Update {
                    snapshot_epoch,
                    leader_epoch,
                    start_offset,
                    delivery_complete_count,
                    batches,
                })
            }
            _ => return Err(RecordError("unknown record type")),
        };
        Ok(StateRecord { key, value })
    }
}

fn need(b: &[u8], n: usize) -> Result<(), RecordError> {
    if b.len() < n {
        Err(RecordError("truncated"))
    } else {
        Ok(())
    }
}

fn put_batches(buf: &mut BytesMut, batches: &[StateBatch]) {
    put_uvarint(buf, batches.len() as u32 + 1);
    for b in batches {
        buf.put_i64(b.first);
        buf.put_i64(b.last);
        buf.put_i8(b.state);
        buf.put_i16(b.count);
        put_uvarint(buf, 0);
    }
}

fn get_batches(buf: &mut &[u8]) -> Result<Vec<StateBatch>, RecordError> {
    let n = get_uvarint(buf)?;
    let n = n.checked_sub(1).ok_or(RecordError("null batches"))? as usize;
    // Each batch takes at least 20 bytes: a lying count cannot allocate much.
    need(buf, n.saturating_mul(20))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        need(buf, 19)?;
        let (first, last, state, count) = (buf.get_i64(), buf.get_i64(), buf.get_i8(), buf.get_i16());
        skip_tagged(buf)?;
        out.push(StateBatch {
            first,
            last,
            state,
            count,
        });
    }
    Ok(out)
}

/// The struct's tagged fields: DeliveryCompleteCount is tag 0, written only
/// when known (its default is -1).
fn put_complete_count(buf: &mut BytesMut, count: i32) {
    if count == -1 {
        put_tagged_fields(buf, &[]);
    } else {
        put_tagged_fields(buf, &[(0, &count.to_be_bytes())]);
    }
}

fn get_complete_count(buf: &mut &[u8]) -> Result<i32, RecordError> {
    let mut count = -1;
    get_tagged_fields(buf, |tag, mut data: Bytes| {
        if tag == 0 && data.len() == 4 {
            count = data.get_i32();
        }
        Ok::<(), RecordError>(())
    })?;
    Ok(count)
}

fn skip_tagged(buf: &mut &[u8]) -> Result<(), RecordError> {
    get_tagged_fields(buf, |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey {
            group: "g".into(),
            topic_id: Uuid::from_u128(7),
            partition: 3,
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let batches = vec![StateBatch {
            first: 5,
            last: 9,
            state: 2,
            count: 1,
        }];
        for value in [
            StateValue::Snapshot(Snapshot {
                snapshot_epoch: 1,
                state_epoch: 2,
                leader_epoch: 3,
                start_offset: 5,
                delivery_complete_count: 5,
                create_timestamp: 10,
                write_timestamp: 11,
                batches: batches.clone(),
            }),
            StateValue::Update(Update {
                snapshot_epoch: 1,
                leader_epoch: 3,
                start_offset: -1,
                delivery_complete_count: -1,
                batches,
            }),
            StateValue::Deleted,
        ] {
            let record = StateRecord { key: key(), value };
            let (k, v) = record.encode();
            assert_eq!(StateRecord::decode(&k, v.as_deref()), Ok(record));
        }
    }

    #[test]
    fn kafka_layout_of_a_snapshot_key() {
        let (k, _) = StateRecord {
            key: key(),
            value: StateValue::Deleted,
        }
        .encode();
        // type 0, "g", 16 bytes of topic id, partition 3
        assert_eq!(&k[..5], &[0, 0, 0, 1, b'g']);
        assert_eq!(k.len(), 2 + 2 + 1 + 16 + 4);
        assert_eq!(&k[21..], &[0, 0, 0, 3]);
    }

    #[test]
    fn truncated_or_lying_values_are_refused() {
        let (k, v) = StateRecord {
            key: key(),
            value: StateValue::Update(Update {
                snapshot_epoch: 0,
                leader_epoch: 0,
                start_offset: 0,
                delivery_complete_count: -1,
                batches: vec![],
            }),
        }
        .encode();
        let v = v.unwrap_or_default();
        for cut in 0..v.len() {
            assert!(StateRecord::decode(&k, Some(&v[..cut])).is_err(), "cut at {cut}");
        }
        let mut lying = v[..18].to_vec();
        lying.extend_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
        assert!(StateRecord::decode(&k, Some(&lying)).is_err());
    }
}
