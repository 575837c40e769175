//! `LogValidator`: the one check of a batch that a producer sent, before it
//! is given offsets (Kafka's LogValidator, with the request-level checks of
//! its ProduceRequest): one whole v2 batch with a valid CRC, records a
//! compacted topic can keep, a codec the request's version allows, the
//! topic's compression.type, max.message.bytes and the timestamp bounds.
//!
//! Records are looked at only where a check needs them (the keys of a
//! compacted topic's records) or the topic asks for another codec.

use super::batch::{BatchError, BatchHeader, PendingBatch, BATCH_HEADER_LEN};
use super::codec::recompress;
use super::codec_stream::EncodeError;
use super::record_stream::stream_records;
use super::records::RecordIter;
use crate::config::topic::LogConfig;
use bytes::Bytes;
use thiserror::Error;

/// Batches compressed with zstd need Produce v7 or later (KIP-110).
const ZSTD: i16 = 4;
const ZSTD_MIN_VERSION: i16 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("{0}")]
    Batch(#[from] BatchError),
    /// Records without a key (their indexes in the batch), which a compacted
    /// topic cannot keep. Every one is named, as Kafka names them.
    #[error("compacted topic cannot accept records without a key (records {record_indexes:?})")]
    KeylessRecords { record_indexes: Vec<i32> },
    #[error("zstd batches need Produce v7 or later")]
    ZstdNeedsV7,
    #[error("{0}")]
    Recompression(EncodeError),
    /// `size` is None when recompression stopped as the batch passed `max`.
    #[error("batch of {} bytes exceeds max.message.bytes {max}", size.map_or("more".to_string(), |s| s.to_string()))]
    MessageTooLarge { size: Option<usize>, max: usize },
    #[error("timestamp {timestamp} is out of the range the topic accepts around {now}")]
    InvalidTimestamp { timestamp: i64, now: i64 },
}

/// A batch ready to append, as it will be stored.
#[derive(Debug)]
pub struct ValidBatch {
    /// The header as the producer sent it (the records count and producer
    /// fields are the stored batch's too).
    pub header: BatchHeader,
    /// The records as the request carried them (not copied), or recompressed.
    pub batch: PendingBatch,
}

pub struct LogValidator<'a> {
    pub config: &'a LogConfig,
    /// The version of the Produce request that carried the batch.
    pub api_version: i16,
    pub now_ms: i64,
}

impl LogValidator<'_> {
    /// Checks `records` (one partition's data of a Produce request) and
    /// returns the batch to store.
    pub fn validate(&self, records: &Bytes) -> Result<ValidBatch, ValidationError> {
        let header = check_batch(records)?;
        if self.config.compact {
            let record_indexes = keyless_records(records, &header);
            if !record_indexes.is_empty() {
                return Err(ValidationError::KeylessRecords { record_indexes });
            }
        }
        if header.compression() == ZSTD && self.api_version < ZSTD_MIN_VERSION {
            return Err(ValidationError::ZstdNeedsV7);
        }
        // A topic with its own compression.type stores every batch in that codec.
        let stored = match self.config.compression {
            Some(codec) if codec != header.compression() => {
                match recompress(records, &header, codec, self.config.max_message_bytes) {
                    Ok(batch) => Bytes::from(batch),
                    Err(EncodeError::TooLarge(_)) => return Err(self.too_large(None)),
                    Err(e) => return Err(ValidationError::Recompression(e)),
                }
            }
            _ => records.clone(),
        };
        if stored.len() > self.config.max_message_bytes {
            return Err(self.too_large(Some(stored.len())));
        }
        self.check_timestamps(&header)?;
        let batch = PendingBatch::new(stored)?;
        Ok(ValidBatch { header, batch })
    }

    fn too_large(&self, size: Option<usize>) -> ValidationError {
        ValidationError::MessageTooLarge {
            size,
            max: self.config.max_message_bytes,
        }
    }

    /// As Kafka's message.timestamp.after/before.max.ms, judged from the
    /// batch's greatest and first timestamps.
    fn check_timestamps(&self, header: &BatchHeader) -> Result<(), ValidationError> {
        if self.config.log_append_time {
            return Ok(());
        }
        let now = self.now_ms;
        let newest_allowed = now.saturating_add(self.config.timestamp_after_max_ms);
        let oldest_allowed = now.saturating_sub(self.config.timestamp_before_max_ms);
        for timestamp in [header.max_timestamp, header.base_timestamp] {
            if timestamp >= 0 && (timestamp > newest_allowed || timestamp < oldest_allowed) {
                return Err(ValidationError::InvalidTimestamp { timestamp, now });
            }
        }
        Ok(())
    }
}

/// The batch's framing: exactly one whole v2 batch, CRC intact, with
/// records, not a marker, a known codec.
fn check_batch(records: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse_and_verify(records)?;
    if header.total_size() != records.len() {
        return Err(BatchError::Invalid(
            "produce requests must contain exactly one record batch per partition",
        ));
    }
    if header.records_count <= 0 {
        return Err(BatchError::Invalid("record batch has no records"));
    }
    // Markers are the transaction coordinator's to write.
    if header.is_control() {
        return Err(BatchError::Invalid("clients may not write control batches"));
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::Invalid(
            "record batch last offset delta does not match its record count",
        ));
    }
    if header.compression() > ZSTD {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    Ok(header)
}

/// The most keyless records one answer names (Kafka names every one; a
/// batch can claim billions).
const MAX_NAMED_RECORDS: usize = 10_000;

/// Indexes of the records without a key, streamed (values skipped). Records
/// that cannot be read stop the search (the batch is stored as sent, as
/// before this check).
fn keyless_records(batch: &[u8], header: &BatchHeader) -> Vec<i32> {
    // A plain batch is walked in place (the produce path of compacted topics).
    if header.compression() == 0 {
        let section = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
        return RecordIter::new(section, header.records_count)
            .map_while(Result::ok)
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(i, _)| i as i32)
            .take(MAX_NAMED_RECORDS)
            .collect();
    }
    let Ok(mut records) = stream_records(batch, header) else {
        return Vec::new();
    };
    let mut keyless = Vec::new();
    let mut index = 0;
    while let Some(Ok(record)) = records.next_record(|_, _| Ok(())) {
        if record.key.is_none() {
            keyless.push(index);
            if keyless.len() == MAX_NAMED_RECORDS {
                break;
            }
        }
        index += 1;
    }
    keyless
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::control_batch;
    use crate::storage::batch::tests::{encode_batch, encode_records, record};
    use crate::storage::batch::ControlType;
    use kafka_protocol::records::Compression;

    const NOW: i64 = 1_700_000_000_000;

    /// `validate` of a copy of `batch` (requests hand it over as `Bytes`).
    trait Check {
        fn check(&self, batch: &[u8]) -> Result<ValidBatch, ValidationError>;
    }

    impl Check for LogValidator<'_> {
        fn check(&self, batch: &[u8]) -> Result<ValidBatch, ValidationError> {
            self.validate(&Bytes::copy_from_slice(batch))
        }
    }

    fn validator(config: &LogConfig) -> LogValidator<'_> {
        LogValidator {
            config,
            api_version: 9,
            now_ms: NOW,
        }
    }

    fn keyed(keys: &[Option<&str>], compression: Compression) -> Vec<u8> {
        let records: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| record(i as i64, *key, Some("v")))
            .collect();
        encode_records(&records, compression).to_vec()
    }

    #[test]
    fn accepts_one_whole_batch_as_sent() {
        let config = LogConfig::default();
        let batch = encode_batch(3, NOW, Compression::None);
        let valid = validator(&config).check(&batch).unwrap();
        assert_eq!((valid.header.records_count, valid.header.last_offset_delta), (3, 2));
        assert_eq!(
            (valid.header.base_timestamp, valid.header.max_timestamp),
            (NOW, NOW + 2)
        );
        assert_eq!(valid.batch.to_vec(), batch.to_vec());
    }

    #[test]
    fn refuses_damage_truncation_two_batches_and_markers() {
        let config = LogConfig::default();
        let v = validator(&config);
        let mut flipped = encode_batch(2, NOW, Compression::None);
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        assert!(matches!(
            v.check(&flipped),
            Err(ValidationError::Batch(BatchError::CrcMismatch { .. }))
        ));
        let mut two = encode_batch(1, NOW, Compression::None);
        two.extend_from_slice(&encode_batch(1, NOW, Compression::None));
        assert!(matches!(
            v.check(&two),
            Err(ValidationError::Batch(BatchError::Invalid(_)))
        ));
        let one = encode_batch(2, NOW, Compression::None);
        assert_eq!(
            v.check(&one[..one.len() - 3]).err(),
            Some(ValidationError::Batch(BatchError::Truncated))
        );
        assert_eq!(
            v.check(&one[..10]).err(),
            Some(ValidationError::Batch(BatchError::Truncated))
        );
        let marker = control_batch(42, 3, 0, ControlType::Commit, NOW);
        assert_eq!(
            v.check(&marker).err(),
            Some(ValidationError::Batch(BatchError::Invalid(
                "clients may not write control batches"
            )))
        );
    }

    #[test]
    fn compacted_topics_refuse_keyless_records_in_any_codec() {
        let compacted = LogConfig {
            compact: true,
            ..LogConfig::default()
        };
        for compression in [Compression::None, Compression::Lz4] {
            let batch = keyed(&[Some("a"), None, Some("c")], compression);
            assert_eq!(
                validator(&compacted).check(&batch).err(),
                Some(ValidationError::KeylessRecords {
                    record_indexes: vec![1]
                })
            );
            assert!(validator(&LogConfig::default()).check(&batch).is_ok());
            let keys = keyed(&[Some("a"), Some("b")], compression);
            assert!(validator(&compacted).check(&keys).is_ok());
        }
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let config = LogConfig::default();
        let batch = encode_batch(1, NOW, Compression::Zstd);
        let old = LogValidator {
            api_version: 6,
            ..validator(&config)
        };
        assert_eq!(old.check(&batch).err(), Some(ValidationError::ZstdNeedsV7));
        assert!(validator(&config).check(&batch).is_ok());
    }

    #[test]
    fn stores_in_the_topic_codec_and_checks_the_stored_size() {
        let gzip = LogConfig {
            compression: Some(1),
            ..LogConfig::default()
        };
        let batch = encode_batch(20, NOW, Compression::None);
        let valid = validator(&gzip).check(&batch).unwrap();
        let stored = BatchHeader::parse_and_verify(&valid.batch.to_vec()).unwrap();
        assert_eq!((stored.compression(), stored.records_count), (1, 20));
        assert!(valid.batch.len() < batch.len());
        // Too big as stored, though it fits compressed... and the reverse.
        let small = LogConfig {
            max_message_bytes: valid.batch.len(),
            ..LogConfig::default()
        };
        assert_eq!(
            validator(&small).check(&batch).err(),
            Some(ValidationError::MessageTooLarge {
                size: Some(batch.len()),
                max: valid.batch.len()
            })
        );
        let small_gzip = LogConfig {
            compression: Some(1),
            ..small
        };
        assert!(validator(&small_gzip).check(&batch).is_ok());
    }

    #[test]
    fn timestamps_within_the_topic_bounds_unless_log_append_time() {
        let config = LogConfig::default(); // after.max.ms is one hour
        let v = validator(&config);
        let future = encode_batch(1, NOW + 3_600_001, Compression::None);
        assert_eq!(
            v.check(&future).err(),
            Some(ValidationError::InvalidTimestamp {
                timestamp: NOW + 3_600_001,
                now: NOW
            })
        );
        assert!(v.check(&encode_batch(1, NOW + 3_600_000, Compression::None)).is_ok());
        let append_time = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        assert!(validator(&append_time).check(&future).is_ok());
    }

    /// A zstd batch of one record, key "k", whose value is `value_len` zeros:
    /// a few KiB that expand a thousandfold.
    fn zstd_bomb(value_len: usize) -> Vec<u8> {
        use crate::storage::batch::{rebuilt_batch, with_codec};
        use std::io::Write;
        let template = encode_records(&[record(0, Some("k"), Some(""))], Compression::None);
        let varint = |v: i64| {
            let mut raw = ((v << 1) ^ (v >> 63)) as u64;
            let mut out = Vec::new();
            while raw >= 0x80 {
                out.push(raw as u8 | 0x80);
                raw >>= 7;
            }
            out.push(raw as u8);
            out
        };
        let head = [&[0u8, 0, 0][..], &varint(1), b"k", &varint(value_len as i64)].concat();
        let mut zstd = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        zstd.write_all(&varint((head.len() + value_len + 1) as i64))
            .expect("zstd");
        zstd.write_all(&head).expect("zstd");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..value_len >> 20 {
            zstd.write_all(&zeros).expect("zstd");
        }
        zstd.write_all(&[0]).expect("zstd"); // no headers
        let records = zstd.finish().expect("zstd");
        rebuilt_batch(&with_codec(&template, ZSTD), 1, &records)
    }

    #[test]
    fn a_bomb_is_checked_and_recompressed_a_piece_at_a_time() {
        let bomb = zstd_bomb(64 << 20);
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let compacted = LogConfig {
            compact: true,
            ..LogConfig::default()
        };
        // The key check streams past the 64 MiB value.
        assert!(validator(&compacted).check(&bomb).is_ok());
        // Stored plain it would be 64 MiB: refused once past max.message.bytes.
        let plain = LogConfig {
            compression: Some(0),
            ..LogConfig::default()
        };
        assert_eq!(
            validator(&plain).check(&bomb).err(),
            Some(ValidationError::MessageTooLarge {
                size: None,
                max: plain.max_message_bytes
            })
        );
        // Recompressed with gzip it fits, and holds the same record.
        let gzip = LogConfig {
            compression: Some(1),
            ..LogConfig::default()
        };
        let valid = validator(&gzip).check(&bomb).expect("fits");
        let stored = valid.batch.to_vec();
        let header = BatchHeader::parse_and_verify(&stored).expect("valid CRC");
        assert_eq!((header.compression(), header.records_count), (1, 1));
        let mut records = stream_records(&stored, &header).expect("stream");
        let first = records.next_record(|_, len| Ok(len)).expect("one").expect("whole");
        assert_eq!((first.key, first.has_value), (Some(1), true));
    }
}
