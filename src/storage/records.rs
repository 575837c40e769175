//! The records inside a v2 batch, read in place: Kafka's record layout
//! (varint length, attributes, timestamp delta, offset delta, key, value,
//! headers) walked without building record structs, so checks and the cleaner
//! allocate nothing per record. Holds the one varint decoder of the broker.

use super::batch::{ControlType, BATCH_HEADER_LEN};
use super::codec::CodecError;
use std::ops::Range;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("record {0} of the batch is malformed")]
    Malformed(usize),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Kafka's zigzag varint: an i32 in at most 5 bytes. Advances `at`.
pub fn read_varint(buf: &[u8], at: &mut usize) -> Option<i32> {
    read_zigzag(buf, at, 5).and_then(|v| i32::try_from(v).ok())
}

/// Kafka's zigzag varlong: an i64 in at most 10 bytes. Advances `at`.
pub fn read_varlong(buf: &[u8], at: &mut usize) -> Option<i64> {
    read_zigzag(buf, at, 10)
}

fn read_zigzag(buf: &[u8], at: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut raw = 0u64;
    for i in 0..max_bytes {
        let byte = *buf.get(at.checked_add(i)?)?;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *at += i + 1;
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// One record, borrowed from its batch's (uncompressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    /// None: a tombstone (the key is deleted).
    pub value: Option<&'a [u8]>,
    /// The record's bytes, length prefix included, in the records section.
    pub range: Range<usize>,
}

/// The records of a section holding `count` of them; stops at the first
/// malformed one, which it yields as an error.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    at: usize,
    index: usize,
    count: usize,
}

impl<'a> RecordIter<'a> {
    pub fn new(records: &'a [u8], count: i32) -> Self {
        RecordIter {
            buf: records,
            at: 0,
            index: 0,
            count: count.max(0) as usize,
        }
    }

    fn parse(&mut self) -> Option<RecordRef<'a>> {
        let start = self.at;
        let mut p = start;
        let length = usize::try_from(read_varint(self.buf, &mut p)?).ok()?;
        let end = p.checked_add(length).filter(|&e| e <= self.buf.len())?;
        let record = &self.buf[..end];
        p += 1; // attributes (unused in v2)
        let timestamp_delta = read_varlong(record, &mut p)?;
        let offset_delta = read_varint(record, &mut p)?;
        let key = read_bytes(record, &mut p)?;
        let value = read_bytes(record, &mut p)?;
        self.at = end;
        Some(RecordRef {
            offset_delta,
            timestamp_delta,
            key,
            value,
            range: start..end,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordRef<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let index = self.index;
        self.index += 1;
        match self.parse() {
            Some(record) => Some(Ok(record)),
            None => {
                self.index = self.count;
                Some(Err(RecordError::Malformed(index)))
            }
        }
    }
}

/// A varint-length-prefixed byte string (None for length -1).
fn read_bytes<'a>(record: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varint(record, at)?;
    if len < 0 {
        return Some(None);
    }
    let stop = at.checked_add(len as usize).filter(|&s| s <= record.len())?;
    let bytes = &record[*at..stop];
    *at = stop;
    Some(Some(bytes))
}

/// Reads the marker type of a control batch from its single record's key
/// (version i16, type i16). Control batches are never compressed.
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    control_type_of_records(batch.get(BATCH_HEADER_LEN..)?)
}

/// As `control_type`, from the batch's records section.
pub fn control_type_of_records(records: &[u8]) -> Option<ControlType> {
    let record = RecordIter::new(records, 1).next()?.ok()?;
    match record.key? {
        [_, _, 0, 0, ..] => Some(ControlType::Abort),
        [_, _, 0, 1, ..] => Some(ControlType::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::{encode_records, record};
    use crate::storage::batch::BatchHeader;
    use kafka_protocol::records::Compression;

    #[test]
    fn varints_as_kafka_writes_them_and_no_longer() {
        let cases: [(&[u8], Option<i64>); 6] = [
            (&[0x00], Some(0)),
            (&[0x01], Some(-1)),
            (&[0x02], Some(1)),
            (&[0xfe, 0xff, 0xff, 0xff, 0x0f], Some(i32::MAX as i64)),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], Some(i32::MIN as i64)),
            (&[0x80, 0x80], None), // truncated
        ];
        for (bytes, want) in cases {
            let mut at = 0;
            assert_eq!(read_varint(bytes, &mut at).map(i64::from), want, "{bytes:?}");
            assert_eq!(at, if want.is_some() { bytes.len() } else { 0 });
        }
        // Six bytes is too long for a varint, fine for a varlong.
        let long = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(read_varint(&long, &mut 0), None);
        assert_eq!(read_varlong(&long, &mut 0), Some(1 << 34));
        // Eleven bytes is too long for anything.
        assert_eq!(read_varlong(&[0x80; 11], &mut 0), None);
        let mut at = 0;
        let max = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varlong(&max, &mut at), Some(i64::MAX));
        assert_eq!(at, 10);
    }

    #[test]
    fn walks_keys_values_and_tombstones_of_a_plain_section() {
        let records = [
            record(0, Some("a"), Some("1")),
            record(1, None, Some("2")),
            record(2, Some("c"), None),
        ];
        {
            let batch = encode_records(&records, Compression::None);
            let header = BatchHeader::parse_and_verify(&batch).expect("valid");
            let section = &batch[BATCH_HEADER_LEN..];
            let seen: Vec<_> = RecordIter::new(section, header.records_count)
                .map(|r| r.map(|r| (r.offset_delta, r.timestamp_delta, r.key, r.value)))
                .collect::<Result<_, _>>()
                .expect("records");
            assert_eq!(
                seen,
                vec![
                    (0, 0, Some(&b"a"[..]), Some(&b"1"[..])),
                    (1, 1, None, Some(&b"2"[..])),
                    (2, 2, Some(&b"c"[..]), None)
                ]
            );
        }
    }

    #[test]
    fn a_cut_or_lying_record_is_an_error_not_a_panic() {
        let batch = encode_records(&[record(0, Some("k"), Some("v"))], Compression::None);
        let section = &batch[BATCH_HEADER_LEN..];
        for cut in 0..section.len() {
            let first = RecordIter::new(&section[..cut], 1).next();
            assert_eq!(first, Some(Err(RecordError::Malformed(0))), "cut at {cut}");
        }
        let mut lying = section.to_vec();
        lying[0] = 0x7e; // a length far past the end
        let mut iter = RecordIter::new(&lying, 2);
        assert_eq!(iter.next(), Some(Err(RecordError::Malformed(0))));
        assert_eq!(iter.next(), None, "nothing after a malformed record");
    }
}
