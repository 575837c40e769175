//! Log compaction at the record level: the records of one stored batch (key,
//! offset, tombstone or not), and the batch rebuilt around the records kept.
//!
//! Record bytes are copied, never re-encoded: each record is stored relative
//! to its batch's base offset and first timestamp, and the rebuilt batch keeps
//! those, its producer fields, max timestamp and last offset delta. So offsets,
//! producer sequences and the time index stay what they were; only the record
//! count, length and CRC change (and the compressed bytes, recompressed with
//! the batch's own codec).

use super::batch::{rebuilt_batch, BatchHeader, BATCH_HEADER_LEN};
use super::codec::{compress, decompress, CodecError};
use bytes::Bytes;
use std::ops::Range;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompactionError {
    #[error("record {0} of the batch is malformed")]
    MalformedRecord(usize),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// One record of a batch, as compaction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    pub offset: i64,
    pub key: Option<Bytes>,
    /// A null value: the key is deleted.
    pub tombstone: bool,
    /// The record's bytes (length prefix included) in the batch's plain records.
    pub range: Range<usize>,
}

/// A batch's records, uncompressed, with a view of each.
pub struct BatchRecords {
    pub plain: Bytes,
    pub records: Vec<RecordView>,
}

/// Reads the records of `batch` (a whole stored batch, header included).
pub fn read_records(batch: &[u8], header: &BatchHeader) -> Result<BatchRecords, CompactionError> {
    let body = Bytes::copy_from_slice(batch.get(BATCH_HEADER_LEN..).unwrap_or_default());
    let plain = decompress(header.compression(), body)?;
    let mut records = Vec::with_capacity(header.records_count.max(0) as usize);
    let mut at = 0usize;
    for index in 0..header.records_count.max(0) as usize {
        let malformed = || CompactionError::MalformedRecord(index);
        let start = at;
        let length = read_varint(&plain, &mut at).ok_or_else(malformed)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= plain.len())
            .ok_or_else(malformed)?;
        let mut p = at + 1; // attributes
        read_varint(&plain[..end], &mut p).ok_or_else(malformed)?; // timestamp delta
        let offset_delta = read_varint(&plain[..end], &mut p).ok_or_else(malformed)?;
        let key = read_bytes(&plain, end, &mut p).ok_or_else(malformed)?;
        let value_len = read_varint(&plain[..end], &mut p).ok_or_else(malformed)?;
        records.push(RecordView {
            offset: header.base_offset + offset_delta,
            key,
            tombstone: value_len < 0,
            range: start..end,
        });
        at = end;
    }
    Ok(BatchRecords { plain, records })
}

/// `batch` with only the records in `keep` (views from `read_records`).
pub fn rebuild(
    batch: &[u8],
    header: &BatchHeader,
    read: &BatchRecords,
    keep: &[&RecordView],
) -> Result<Vec<u8>, CompactionError> {
    let mut plain = Vec::with_capacity(keep.iter().map(|r| r.range.len()).sum());
    for record in keep {
        plain.extend_from_slice(&read.plain[record.range.clone()]);
    }
    let records = compress(header.compression(), plain)?;
    Ok(rebuilt_batch(&batch[..BATCH_HEADER_LEN], keep.len() as i32, &records))
}

/// A zigzag varint (Kafka's varint and varlong), advancing `at`.
fn read_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// A varint-length-prefixed byte string (None for length -1) ending by `end`.
fn read_bytes(buf: &Bytes, end: usize, at: &mut usize) -> Option<Option<Bytes>> {
    let len = read_varint(&buf[..end], at)?;
    if len < 0 {
        return Some(None);
    }
    let stop = at.checked_add(usize::try_from(len).ok()?).filter(|&s| s <= end)?;
    let bytes = buf.slice(*at..stop);
    *at = stop;
    Some(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

    fn record(offset: i64, key: &str, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32 - 100,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(Bytes::from(key.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        crate::storage::batch::tests::encode_records(records, compression).to_vec()
    }

    #[test]
    fn keeps_the_chosen_records_with_their_offsets_under_every_codec() {
        let records = vec![
            record(100, "a", Some("1")),
            record(101, "b", Some("2")),
            record(102, "a", None),
            record(103, "c", Some("3")),
        ];
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode(&records, compression);
            let header = BatchHeader::parse_and_verify(&batch).expect("valid");
            let read = read_records(&batch, &header).expect("records");
            let seen: Vec<(i64, Option<Bytes>, bool)> = read
                .records
                .iter()
                .map(|r| (r.offset, r.key.clone(), r.tombstone))
                .collect();
            assert_eq!(
                seen,
                vec![
                    (100, Some(Bytes::from("a")), false),
                    (101, Some(Bytes::from("b")), false),
                    (102, Some(Bytes::from("a")), true),
                    (103, Some(Bytes::from("c")), false),
                ]
            );
            let keep: Vec<&RecordView> = read
                .records
                .iter()
                .filter(|r| r.offset != 100 && r.offset != 103)
                .collect();
            let rebuilt = rebuild(&batch, &header, &read, &keep).expect("rebuilt");
            let new_header = BatchHeader::parse_and_verify(&rebuilt).expect("valid CRC");
            assert_eq!(
                (
                    new_header.base_offset,
                    new_header.last_offset_delta,
                    new_header.records_count
                ),
                (100, 3, 2)
            );
            assert_eq!(
                (
                    new_header.max_timestamp,
                    new_header.producer_id,
                    new_header.base_sequence
                ),
                (header.max_timestamp, 7, 0)
            );
            let decoded = RecordBatchDecoder::decode(&mut Bytes::from(rebuilt)).expect("decodes");
            let back: Vec<(i64, i32, Option<Bytes>, Option<Bytes>)> = decoded
                .records
                .iter()
                .map(|r| (r.offset, r.sequence, r.key.clone(), r.value.clone()))
                .collect();
            assert_eq!(
                back,
                vec![
                    (101, 1, Some(Bytes::from("b")), Some(Bytes::from("2"))),
                    (102, 2, Some(Bytes::from("a")), None)
                ]
            );
        }
    }

    #[test]
    fn a_malformed_record_is_an_error_not_a_panic() {
        let batch = encode(&[record(0, "k", Some("v"))], Compression::None);
        let header = BatchHeader::parse(&batch).expect("header");
        for cut in BATCH_HEADER_LEN..batch.len() {
            assert!(read_records(&batch[..cut], &header).is_err(), "cut at {cut}");
        }
        let mut garbage = batch.clone();
        garbage[BATCH_HEADER_LEN] = 0x7f; // a record length far past the end
        assert_eq!(
            read_records(&garbage, &header).err(),
            Some(CompactionError::MalformedRecord(0))
        );
    }
}
