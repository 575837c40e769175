//! The records of `__consumer_offsets`, in Kafka's own layouts, so that
//! Kafka's tools can read the topic: keys are versioned (0/1 offset commit,
//! 2 group metadata) and values carry their own version.

use super::{consumer_records, streams_records};
use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const SHARE_GROUP_METADATA_KEY_VERSION: i16 = 11;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct RecordError(&'static str);

impl RecordError {
    pub(super) fn truncated() -> RecordError {
        RecordError("truncated")
    }

    pub(super) fn unknown_key() -> RecordError {
        RecordError("unknown key version")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// KIP-932: a share group and its epoch (Kafka's ShareGroupMetadata).
    ShareGroup {
        group: String,
    },
    /// KIP-848: a consumer group's records (keys 3 and 5-8); `member` for
    /// the per-member ones.
    Consumer {
        kind: i16,
        group: String,
        member: Option<String>,
    },
    /// KIP-1071: a streams group's records (keys 17 and 19-23).
    Streams {
        kind: i16,
        group: String,
        member: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in v1 values: an explicit expiry chosen by the committer.
    pub expire_timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    Offset(OffsetValue),
    Group(GroupValue),
    ShareGroup(ShareGroupValue),
    Consumer(super::consumer_records::ConsumerValue),
    Streams(streams_records::StreamsValue),
}

/// Kafka's ShareGroupMetadataValue (v0, flexible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareGroupValue {
    pub epoch: i32,
    /// A hash of the subscribed topics' metadata (0: not computed here).
    pub metadata_hash: i64,
}

impl ShareGroupValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i32(self.epoch);
        buf.put_i64(self.metadata_hash);
        buf.put_u8(0); // no tagged fields
        buf.freeze()
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

impl RecordKey {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                buf.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut buf, group);
            }
            RecordKey::ShareGroup { group } => {
                buf.put_i16(SHARE_GROUP_METADATA_KEY_VERSION);
                put_string(&mut buf, group);
            }
            RecordKey::Consumer { kind, group, member } | RecordKey::Streams { kind, group, member } => {
                buf.put_i16(*kind);
                put_string(&mut buf, group);
                if let Some(m) = member {
                    put_string(&mut buf, m);
                }
            }
        }
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<RecordKey, RecordError> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Ok(RecordKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            2 => Ok(RecordKey::Group { group: r.string()? }),
            SHARE_GROUP_METADATA_KEY_VERSION => Ok(RecordKey::ShareGroup { group: r.string()? }),
            kind @ (consumer_records::GROUP_METADATA | consumer_records::TARGET_METADATA) => Ok(RecordKey::Consumer {
                kind,
                group: r.string()?,
                member: None,
            }),
            kind @ (consumer_records::MEMBER_METADATA
            | consumer_records::TARGET_MEMBER
            | consumer_records::CURRENT_ASSIGNMENT) => Ok(RecordKey::Consumer {
                kind,
                group: r.string()?,
                member: Some(r.string()?),
            }),
            kind if streams_records::is_streams_kind(kind) => Ok(RecordKey::Streams {
                kind,
                group: r.string()?,
                member: if streams_records::is_member_kind(kind) {
                    Some(r.string()?)
                } else {
                    None
                },
            }),
            _ => Err(RecordError("unknown key version")),
        }
    }

    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::ShareGroup { group }
            | RecordKey::Consumer { group, .. }
            | RecordKey::Streams { group, .. } => group,
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp);
        buf.freeze()
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout);
            buf.put_i32(m.session_timeout);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }
}

impl RecordValue {
    /// Decodes the value for `key`; None for a tombstone (null value).
    pub fn decode(key: &RecordKey, value: Option<&[u8]>) -> Result<Option<RecordValue>, RecordError> {
        let Some(bytes) = value else { return Ok(None) };
        if let RecordKey::Consumer { kind, .. } = key {
            return consumer_records::ConsumerValue::decode(*kind, bytes).map(|v| Some(RecordValue::Consumer(v)));
        }
        if let RecordKey::Streams { kind, .. } = key {
            return streams_records::StreamsValue::decode(*kind, bytes).map(|v| Some(RecordValue::Streams(v)));
        }
        let mut r = Reader(bytes);
        let version = r.i16()?;
        match key {
            RecordKey::Consumer { .. } | RecordKey::Streams { .. } => Err(RecordError::unknown_key()),
            RecordKey::ShareGroup { .. } => {
                let epoch = r.i32()?;
                let metadata_hash = r.i64()?;
                let _ = version;
                Ok(Some(RecordValue::ShareGroup(ShareGroupValue { epoch, metadata_hash })))
            }
            RecordKey::Offset { .. } => {
                let offset = r.i64()?;
                let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
                let metadata = r.string()?;
                let commit_timestamp = r.i64()?;
                let expire_timestamp = if version == 1 { Some(r.i64()?) } else { None };
                Ok(Some(RecordValue::Offset(OffsetValue {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp,
                    expire_timestamp,
                })))
            }
            RecordKey::Group { .. } => {
                if version > 3 {
                    return Err(RecordError("unsupported group metadata version"));
                }
                let protocol_type = r.string()?;
                let generation = r.i32()?;
                let protocol = r.nullable_string()?;
                let leader = r.nullable_string()?;
                let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
                let count = r.i32()?;
                if count < 0 || count as usize > r.0.len() {
                    return Err(RecordError("bad member count"));
                }
                let mut members = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let member_id = r.string()?;
                    let group_instance_id = if version >= 3 { r.nullable_string()? } else { None };
                    let client_id = r.string()?;
                    let client_host = r.string()?;
                    let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
                    let session_timeout = r.i32()?;
                    let subscription = r.bytes()?;
                    let assignment = r.bytes()?;
                    members.push(MemberValue {
                        member_id,
                        group_instance_id,
                        client_id,
                        client_host,
                        rebalance_timeout,
                        session_timeout,
                        subscription,
                        assignment,
                    });
                }
                Ok(Some(RecordValue::Group(GroupValue {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp,
                    members,
                })))
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| RecordError("i16"))?,
        ))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| RecordError("i32"))?,
        ))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| RecordError("i64"))?,
        ))
    }
    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError("string is not UTF-8"))
    }
    fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?.ok_or(RecordError("null string"))
    }
    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "meta".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let k = key.encode();
        // Kafka's OffsetCommitKey v1: version, group, topic, partition.
        assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(RecordKey::decode(&k).unwrap(), key);
        let v = value.encode();
        assert_eq!(
            RecordValue::decode(&key, Some(&v)).unwrap(),
            Some(RecordValue::Offset(value))
        );
        assert_eq!(RecordValue::decode(&key, None).unwrap(), None);
        assert!(RecordValue::decode(&key, Some(&v[..5])).is_err());
    }

    #[test]
    fn group_records_round_trip() {
        let key = RecordKey::Group { group: "grp".into() };
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: 123,
            members: vec![MemberValue {
                member_id: "m-1".into(),
                group_instance_id: Some("static".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300000,
                session_timeout: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let k = key.encode();
        assert_eq!(RecordKey::decode(&k).unwrap(), key);
        let v = value.encode();
        assert_eq!(
            RecordValue::decode(&key, Some(&v)).unwrap(),
            Some(RecordValue::Group(value))
        );
    }
}
