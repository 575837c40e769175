//! The v2 record batch header: parsing, validation and in-place patching.
//!
//! The broker never decodes records on the produce or fetch path: it reads the
//! 61-byte batch header, checks the CRC-32C, and patches the base offset (and,
//! for LogAppendTime topics, the timestamp fields) before storing the batch as is.

use bytes::Bytes;
use thiserror::Error;

/// Bytes before the batch length field is counted: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the whole v2 batch header, up to and including the record count.
pub const BATCH_HEADER_LEN: usize = 61;

const BASE_OFFSET: usize = 0;
const LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch is truncated")]
    Truncated,
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch magic {0} is not supported (only v2)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch is invalid: {0}")]
    Invalid(&'static str),
}

/// The fixed fields of a v2 record batch, read without touching the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes that follow the length field.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Reads the base offset and the length field only: enough to step over a batch.
    pub fn peek_offset_and_size(buf: &[u8]) -> Option<(i64, usize)> {
        if buf.len() < LOG_OVERHEAD {
            return None;
        }
        let len = be_i32(buf, LENGTH);
        if len < 0 {
            return None;
        }
        Some((be_i64(buf, BASE_OFFSET), LOG_OVERHEAD + len as usize))
    }

    /// Parses the header at the start of `buf` (which must hold at least the header).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated);
        }
        let batch_length = be_i32(buf, LENGTH);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        if buf.len() <= MAGIC {
            return Err(BatchError::Truncated);
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH),
            magic,
            crc: be_i32(buf, CRC) as u32,
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            producer_id: be_i64(buf, PRODUCER_ID),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH),
            base_sequence: be_i32(buf, BASE_SEQUENCE),
            records_count: be_i32(buf, RECORDS_COUNT),
        })
    }

    /// Parses the header and checks that the whole batch is present and its CRC holds.
    pub fn parse_and_verify(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = BatchHeader::parse(buf)?;
        let total = header.total_size();
        if buf.len() < total {
            return Err(BatchError::Truncated);
        }
        let computed = crc32c::crc32c(&buf[ATTRIBUTES..total]);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// Size of the batch including the offset and length fields.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Saturating: a damaged segment's base offset can be anything (the CRC
    /// does not cover it), and reading it must not overflow (fuzz: log_recovery).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(self.last_offset_delta as i64)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// True when the batch carries a producer id and sequence (idempotent or transactional).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        // Sequences wrap at i32::MAX back to 0, as in Kafka.
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Records in a run of whole batches, from their headers alone.
pub fn count_records(mut batches: &[u8]) -> u64 {
    let mut count = 0u64;
    while let Ok(header) = BatchHeader::parse(batches) {
        count += header.records_count.max(0) as u64;
        let size = header.total_size();
        if size > batches.len() {
            break;
        }
        batches = &batches[size..];
    }
    count
}

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// A transaction marker batch, as the coordinator writes it into each
/// partition of a transaction: one control record whose key holds the type
/// and whose value holds the coordinator epoch.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    kind: ControlType,
    timestamp: i64,
) -> Vec<u8> {
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let kind_code: i16 = match kind {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind_code.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.into()),
        value: Some(value.into()),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    // Encoding one in-memory record cannot fail.
    let _ = RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    );
    buf.to_vec()
}

/// Writes the broker-assigned fields into a batch that is about to be stored.
/// Base offset and leader epoch sit outside the CRC; the timestamp fields do
/// not, so the CRC is recomputed only when LogAppendTime rewrites them.
pub fn assign_offsets(batch: &mut [u8], base_offset: i64, leader_epoch: i32, log_append_time: Option<i64>) {
    let (head, records) = batch.split_at_mut(BATCH_HEADER_LEN.min(batch.len()));
    assign_offsets_split(head, records, base_offset, leader_epoch, log_append_time);
}

/// As `assign_offsets`, for a batch held as its header (`head`, 61 bytes)
/// and its records.
pub fn assign_offsets_split(
    head: &mut [u8],
    records: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    if head.len() < BATCH_HEADER_LEN {
        return; // not a batch: BatchHeader::parse refuses it
    }
    head[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    head[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now) = log_append_time {
        let attributes = be_i16(head, ATTRIBUTES) | TIMESTAMP_TYPE_MASK;
        head[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        head[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head[ATTRIBUTES..]), records);
        head[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A batch on its way into a log: its header, which offset assignment
/// patches, apart from its records, which stay shared with the request that
/// carried them. So a produced batch is not copied before it is written.
#[derive(Debug, Clone)]
pub struct PendingBatch {
    head: [u8; BATCH_HEADER_LEN],
    records: Bytes,
}

impl PendingBatch {
    /// `batch` holds one whole batch; it must hold at least a header.
    pub fn new(batch: Bytes) -> Result<PendingBatch, BatchError> {
        let head = batch
            .get(..BATCH_HEADER_LEN)
            .and_then(|h| <[u8; BATCH_HEADER_LEN]>::try_from(h).ok())
            .ok_or(BatchError::Truncated)?;
        Ok(PendingBatch {
            head,
            records: batch.slice(BATCH_HEADER_LEN..),
        })
    }

    pub fn len(&self) -> usize {
        BATCH_HEADER_LEN + self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn records(&self) -> &[u8] {
        &self.records
    }

    /// The header, to patch, and the records.
    pub fn parts_mut(&mut self) -> (&mut [u8], &[u8]) {
        (&mut self.head, &self.records)
    }

    /// The whole batch, in one buffer (tests, and the rare reader that needs it).
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.records].concat()
    }
}

/// A copy of a batch header (its first 61 bytes) naming another codec; the CRC
/// is set when the batch is rebuilt around its records (`rebuilt_batch`).
pub fn with_codec(header: &[u8], codec: i16) -> Vec<u8> {
    let mut head = header[..BATCH_HEADER_LEN].to_vec();
    let attributes = (be_i16(&head, ATTRIBUTES) & !COMPRESSION_MASK) | (codec & COMPRESSION_MASK);
    head[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    head
}

/// A batch with the fixed fields of `header` (its first 61 bytes) around new
/// records: the record count, length and CRC are set for them.
pub fn rebuilt_batch(header: &[u8], records_count: i32, records: &[u8]) -> Vec<u8> {
    let mut batch = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    batch.extend_from_slice(&header[..BATCH_HEADER_LEN]);
    batch.extend_from_slice(records);
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[LENGTH..LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    batch[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::records::control_type;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    /// Builds one v2 batch of `count` records, as a producer would send it.
    pub fn encode_batch(count: usize, timestamp: i64, compression: Compression) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|i| {
                let mut r = record(i as i64, Some(&format!("key-{i}")), Some(&format!("value-{i}")));
                r.timestamp = timestamp + i as i64;
                r.headers = [(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"v")))]
                    .into_iter()
                    .collect();
                r
            })
            .collect();
        encode_records(&records, compression)
    }

    /// A plain producer's record at `offset` (sequence alike), stamped 1000 + offset.
    pub fn record(offset: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 1_000 + offset,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        }
    }

    /// `records` as one v2 batch (they must fit one: same producer, consecutive sequences).
    pub fn encode_records(records: &[Record], compression: Compression) -> BytesMut {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode batch");
        buf
    }

    #[test]
    fn assigning_offsets_keeps_the_crc_valid() {
        let mut buf = encode_batch(4, 5, Compression::Gzip);
        assign_offsets(&mut buf, 1234, 7, None);
        let h = BatchHeader::parse_and_verify(&buf).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 1237);
        assign_offsets(&mut buf, 1234, 7, Some(99_999));
        let h = BatchHeader::parse_and_verify(&buf).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99_999);
    }

    #[test]
    fn control_batches_say_what_they_mark() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let batch = control_batch(42, 3, 0, kind, 1_000);
            let header = BatchHeader::parse_and_verify(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (header.producer_id, header.producer_epoch, header.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(control_type(&batch), Some(kind));
        }
        assert_eq!(control_type(&encode_batch(1, 0, Compression::None)), None);
    }

    #[test]
    fn offsets_of_a_batch_at_the_end_of_the_offset_range_do_not_overflow() {
        // The batch header of fuzz/artifacts/log_recovery/crash-f66be038…: a
        // stored batch whose base offset a damaged file set to i64::MAX - 3.
        let mut batch = encode_batch(6, 1_700_000_000_000, Compression::None).to_vec();
        batch[..8].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc]);
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.last_offset(), i64::MAX);
        assert_eq!(header.next_offset(), i64::MAX);
    }

    #[test]
    fn sequence_wraps() {
        let mut buf = encode_batch(3, 0, Compression::None);
        buf[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let h = BatchHeader::parse(&buf).unwrap();
        assert_eq!(h.last_sequence(), 0);
    }
}
