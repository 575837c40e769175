//! The records of a batch read one at a time from its plain stream (see
//! `codec_stream`), keeping only what the reader asks for: values and headers
//! are skipped as they stream by, a key goes to the caller as a reader, and a
//! kept record is copied whole into an encoder. So looking inside a batch
//! costs memory by its keys, not by what it decompresses to, as Kafka's
//! streaming record iterators.

use super::batch::{BatchHeader, BATCH_HEADER_LEN};
use super::codec_stream::plain_reader;
use super::records::RecordError;
use std::io::{self, BufRead, Read, Write};

/// A record's fields other than its key's bytes, value and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead<K> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    /// What the caller made of the key's bytes; None for a null key.
    pub key: Option<K>,
    /// False for a tombstone (a null value).
    pub has_value: bool,
}

/// The records of one batch (`count` of them), streamed.
pub struct RecordStream<R> {
    reader: R,
    index: usize,
    count: usize,
}

/// The batch's records streamed from its (possibly compressed) section.
pub fn stream_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Result<RecordStream<Box<dyn BufRead + 'a>>, RecordError> {
    let body = batch.get(BATCH_HEADER_LEN..header.total_size()).unwrap_or_default();
    Ok(RecordStream::new(
        plain_reader(header.compression(), body)?,
        header.records_count,
    ))
}

impl<R: BufRead> RecordStream<R> {
    pub fn new(reader: R, count: i32) -> Self {
        RecordStream {
            reader,
            index: 0,
            count: count.max(0) as usize,
        }
    }

    /// The next record, with its key read by `read_key` (given a reader of
    /// exactly the key's bytes, and their number); None after the last. A
    /// malformed record is an error, and the end of the stream.
    pub fn next_record<K>(
        &mut self,
        read_key: impl FnOnce(&mut dyn Read, usize) -> io::Result<K>,
    ) -> Option<Result<RecordHead<K>, RecordError>> {
        let index = self.start()?;
        Some(self.read_head(read_key).map_err(|_| self.fail(index)))
    }

    /// Walks the next record: copied whole (length prefix included) into
    /// `out` when `keep` says so of its head (its key read by `read_key`),
    /// skipped otherwise. The answer is `keep`'s, None after the last record.
    pub fn copy_record<K>(
        &mut self,
        out: &mut dyn Write,
        read_key: impl FnOnce(&mut dyn Read, usize) -> io::Result<K>,
        keep: impl FnOnce(&RecordHead<K>) -> bool,
    ) -> Option<Result<bool, CopyError>> {
        let index = self.start()?;
        let result = self.copy_one(out, read_key, keep);
        if result.is_err() {
            self.count = self.index;
        }
        Some(result.map_err(|e| e.at(index)))
    }

    fn copy_one<K>(
        &mut self,
        out: &mut dyn Write,
        read_key: impl FnOnce(&mut dyn Read, usize) -> io::Result<K>,
        keep: impl FnOnce(&RecordHead<K>) -> bool,
    ) -> Result<bool, CopyError> {
        let length = read_zigzag(&mut self.reader, 5).map_err(CopyError::Read)?;
        let length = u64::try_from(length).map_err(|_| CopyError::Read(malformed()))?;
        // The head (and key) is read first to decide, and kept to write out.
        let mut head_bytes = Vec::new();
        let head = read_fields(
            &mut Copying::new((&mut self.reader).take(length), &mut head_bytes),
            read_key,
        )
        .map_err(CopyError::Read)?;
        let kept = keep(&head);
        let mut rest = (&mut self.reader).take(length - head_bytes.len() as u64);
        if kept {
            write_varint(out, length as i64).map_err(CopyError::Write)?;
            out.write_all(&head_bytes).map_err(CopyError::Write)?;
            copy_exactly(&mut rest, out)?;
        } else {
            copy_exactly(&mut rest, &mut io::sink())?;
        }
        Ok(kept)
    }

    /// The index of the record about to be read, or None when all were.
    fn start(&mut self) -> Option<usize> {
        if self.index >= self.count {
            return None;
        }
        self.index += 1;
        Some(self.index - 1)
    }

    fn fail(&mut self, index: usize) -> RecordError {
        self.count = self.index;
        RecordError::Malformed(index)
    }

    fn read_head<K>(
        &mut self,
        read_key: impl FnOnce(&mut dyn Read, usize) -> io::Result<K>,
    ) -> io::Result<RecordHead<K>> {
        let length = read_zigzag(&mut self.reader, 5)?;
        let length = u64::try_from(length).map_err(|_| malformed())?;
        let mut body = (&mut self.reader).take(length);
        let head = read_fields(&mut body, read_key)?;
        // Value and headers: skipped in the reader's buffer, but they must be there.
        while body.limit() > 0 {
            let n = body.fill_buf()?.len();
            if n == 0 {
                return Err(malformed());
            }
            body.consume(n);
        }
        Ok(head)
    }
}

/// Attributes, timestamp and offset deltas, key (to `read_key`) and the
/// value's length, from a reader of one record's body; stops before the value.
fn read_fields<K>(
    body: &mut dyn Read,
    read_key: impl FnOnce(&mut dyn Read, usize) -> io::Result<K>,
) -> io::Result<RecordHead<K>> {
    let mut attributes = [0u8; 1];
    body.read_exact(&mut attributes)?;
    let timestamp_delta = read_zigzag(body, 10)?;
    let offset_delta = i32::try_from(read_zigzag(body, 5)?).map_err(|_| malformed())?;
    let key_length = read_zigzag(body, 5)?;
    let key = match usize::try_from(key_length) {
        Err(_) => None,
        Ok(length) => {
            let mut key_bytes = (&mut *body).take(length as u64);
            let key = read_key(&mut key_bytes, length)?;
            // What the caller left of the key: skipped, but it must be there.
            io::copy(&mut key_bytes, &mut io::sink())?;
            if key_bytes.limit() != 0 {
                return Err(malformed());
            }
            Some(key)
        }
    };
    let value_length = read_zigzag(body, 5)?;
    Ok(RecordHead {
        offset_delta,
        timestamp_delta,
        key,
        has_value: value_length >= 0,
    })
}

/// Why a record could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("record {index} of the batch is malformed")]
    Malformed { index: usize },
    #[error("reading a record: {0}")]
    Read(io::Error),
    #[error("writing a record: {0}")]
    Write(io::Error),
}

impl CopyError {
    fn at(self, index: usize) -> CopyError {
        match self {
            CopyError::Read(_) => CopyError::Malformed { index },
            other => other,
        }
    }
}

/// Copies what is left of `from` (a `Take`) into `to`; the stream ending
/// before the take's limit is a malformed record.
fn copy_exactly<R: Read>(from: &mut io::Take<R>, to: &mut dyn Write) -> Result<(), CopyError> {
    let mut chunk = [0u8; 8 * 1024];
    while from.limit() > 0 {
        let n = match from.read(&mut chunk) {
            Ok(0) => return Err(CopyError::Read(malformed())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&chunk[..n]).map_err(CopyError::Write)?;
    }
    Ok(())
}

/// A reader that keeps a copy of what was read through it.
struct Copying<'a, R> {
    inner: R,
    copy: &'a mut Vec<u8>,
}

impl<'a, R> Copying<'a, R> {
    fn new(inner: R, copy: &'a mut Vec<u8>) -> Self {
        Copying { inner, copy }
    }
}

impl<R: Read> Read for Copying<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn malformed() -> io::Error {
    io::Error::from(io::ErrorKind::InvalidData)
}

/// Kafka's zigzag varint of at most `max_bytes` bytes, from a reader.
fn read_zigzag(reader: &mut dyn Read, max_bytes: usize) -> io::Result<i64> {
    let mut raw = 0u64;
    for i in 0..max_bytes {
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte)?;
        raw |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(malformed())
}

fn write_varint(out: &mut dyn Write, value: i64) -> io::Result<()> {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    let mut bytes = [0u8; 10];
    let mut n = 0;
    loop {
        if raw < 0x80 {
            bytes[n] = raw as u8;
            n += 1;
            break;
        }
        bytes[n] = (raw as u8 & 0x7f) | 0x80;
        raw >>= 7;
        n += 1;
    }
    out.write_all(&bytes[..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::{encode_records, record};
    use crate::storage::records::RecordIter;
    use kafka_protocol::records::{Compression, Record};

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample() -> Vec<Record> {
        let mut records = vec![
            record(0, Some("a"), Some("1")),
            record(1, None, Some("2")),
            record(2, Some("c"), None),
        ];
        records[0]
            .headers
            .insert("h".into(), Some(bytes::Bytes::from_static(b"x")));
        records
    }

    fn read_all(key: &mut dyn Read, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(len);
        key.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn walks_keys_values_and_tombstones_of_every_codec() {
        for compression in CODECS {
            let batch = encode_records(&sample(), compression);
            let header = BatchHeader::parse_and_verify(&batch).expect("valid");
            let mut records = stream_records(&batch, &header).expect("stream");
            let mut seen = Vec::new();
            while let Some(record) = records.next_record(read_all) {
                let r = record.expect("record");
                seen.push((r.offset_delta, r.timestamp_delta, r.key, r.has_value));
            }
            assert_eq!(
                seen,
                vec![
                    (0, 0, Some(b"a".to_vec()), true),
                    (1, 1, None, true),
                    (2, 2, Some(b"c".to_vec()), false)
                ],
                "{compression:?}"
            );
        }
    }

    #[test]
    fn copies_the_kept_records_byte_for_byte() {
        let plain = encode_records(&sample(), Compression::None);
        let section = &plain[BATCH_HEADER_LEN..];
        let originals: Vec<_> = RecordIter::new(section, 3).map(|r| r.expect("record").range).collect();
        for compression in CODECS {
            let batch = encode_records(&sample(), compression);
            let header = BatchHeader::parse_and_verify(&batch).expect("valid");
            let mut records = stream_records(&batch, &header).expect("stream");
            let mut out = Vec::new();
            let mut answers = Vec::new();
            while let Some(kept) = records.copy_record(&mut out, read_all, |r| r.key.is_some()) {
                answers.push(kept.expect("copied"));
            }
            assert_eq!(answers, [true, false, true]);
            let want = [&section[originals[0].clone()], &section[originals[2].clone()]].concat();
            assert_eq!(out, want, "{compression:?}");
        }
    }

    #[test]
    fn a_cut_or_lying_record_is_an_error_not_a_panic() {
        let batch = encode_records(&sample(), Compression::None);
        let section = &batch[BATCH_HEADER_LEN..];
        for cut in 0..section.len() {
            let mut records = RecordStream::new(&section[..cut], 3);
            let results: Vec<_> = std::iter::from_fn(|| records.next_record(read_all)).collect();
            assert!(results.last().is_some_and(|r| r.is_err()), "cut at {cut}");
            let mut records = RecordStream::new(&section[..cut], 3);
            let copied: Vec<_> =
                std::iter::from_fn(|| records.copy_record(&mut Vec::new(), read_all, |_| true)).collect();
            assert!(copied.last().is_some_and(|r| r.is_err()), "cut at {cut}");
        }
        let mut lying = section.to_vec();
        lying[0] = 0x7e; // a length past the end
        let mut records = RecordStream::new(&lying[..], 3);
        assert_eq!(records.next_record(read_all), Some(Err(RecordError::Malformed(0))));
        assert!(
            records.next_record(read_all).is_none(),
            "nothing after a malformed record"
        );
    }

    #[test]
    fn a_value_of_hundreds_of_megabytes_streams_by() {
        // One record, key "k", value 256 MiB of zeros, gzip: ~256 KiB.
        let value_len: i64 = 256 << 20;
        let mut body = Vec::new();
        body.push(0); // attributes
        write_varint(&mut body, 0).unwrap(); // timestamp delta
        write_varint(&mut body, 0).unwrap(); // offset delta
        write_varint(&mut body, 1).unwrap();
        body.push(b'k');
        write_varint(&mut body, value_len).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        write_varint(&mut gz, body.len() as i64 + value_len + 1).unwrap();
        gz.write_all(&body).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            gz.write_all(&zeros).unwrap();
        }
        write_varint(&mut gz, 0).unwrap(); // no headers
        let stream = gz.finish().unwrap();
        assert!(stream.len() < 1 << 20);
        let reader = super::super::codec_stream::plain_reader(1, &stream).expect("reader");
        let mut records = RecordStream::new(reader, 1);
        let head = records.next_record(read_all).expect("one").expect("well formed");
        assert_eq!((head.key, head.has_value), (Some(b"k".to_vec()), true));
        assert!(records.next_record(read_all).is_none());
    }
}
