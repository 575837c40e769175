//! Record-set compression, by the codec ids of the batch attributes (0 none,
//! 1 gzip, 2 snappy, 3 lz4, 4 zstd), and a batch moved from one codec to
//! another with its records' bytes unchanged (topic `compression.type`).

use super::batch::{rebuilt_batch, with_codec, BatchHeader, BATCH_HEADER_LEN};
use super::codec_stream::{copy_into, plain_reader, CappedEncoder, EncodeError};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("compression codec {0} is unknown")]
    UnknownCodec(i16),
    #[error("could not {0} the batch's records")]
    Failed(&'static str),
}

/// The codec id of a topic's `compression.type`; None for "producer" (kept as sent).
pub fn codec_of(compression_type: &str) -> Option<i16> {
    match compression_type {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

/// `batch` with its records compressed by `codec` instead of its own, if it
/// fits in `max_size` bytes. The records stream from one codec to the other,
/// so a batch that expands to gigabytes never needs them in memory.
pub fn recompress(batch: &[u8], header: &BatchHeader, codec: i16, max_size: usize) -> Result<Vec<u8>, EncodeError> {
    let body = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    let mut encoder = CappedEncoder::new(codec, max_size.saturating_sub(BATCH_HEADER_LEN))?;
    copy_into(&mut plain_reader(header.compression(), body)?, &mut encoder)?;
    let records = encoder.finish()?;
    let head = with_codec(&batch[..BATCH_HEADER_LEN], codec);
    Ok(rebuilt_batch(&head, header.records_count, &records))
}

pub fn decompress(codec: i16, body: Bytes) -> Result<Bytes, CodecError> {
    fn run<D: Decompressor<Bytes, Buf = Bytes>>(mut body: Bytes) -> Result<Bytes, CodecError> {
        D::decompress(&mut body, |plain| Ok(plain.copy_to_bytes(plain.remaining())))
            .map_err(|_| CodecError::Failed("decompress"))
    }
    match codec {
        0 => Ok(body),
        1 => run::<Gzip>(body),
        2 => run::<Snappy>(body),
        3 => run::<Lz4>(body),
        4 => run::<Zstd>(body),
        other => Err(CodecError::UnknownCodec(other)),
    }
}

pub fn compress(codec: i16, plain: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    fn run<C: Compressor<BytesMut, BufMut = BytesMut>>(plain: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        let mut out = BytesMut::new();
        C::compress(&mut out, |buf| {
            buf.put_slice(&plain);
            Ok(())
        })
        .map_err(|_| CodecError::Failed("compress"))?;
        Ok(out.to_vec())
    }
    match codec {
        0 => Ok(plain),
        1 => run::<Gzip>(plain),
        2 => run::<Snappy>(plain),
        3 => run::<Lz4>(plain),
        4 => run::<Zstd>(plain),
        other => Err(CodecError::UnknownCodec(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::encode_batch;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    #[test]
    fn a_snappy_header_claiming_gigabytes_is_refused_before_allocating() {
        // Found by fuzz/'s record_batch target: six bytes asked for 3.2 GiB.
        let claim = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0c, 0x00]);
        assert!(matches!(decompress(2, claim), Err(CodecError::Failed(_))));
    }

    #[test]
    fn recompressed_batches_hold_the_same_records() {
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for from in codecs {
            let batch = encode_batch(5, 1_700_000_000_000, from).to_vec();
            let header = BatchHeader::parse_and_verify(&batch).expect("valid");
            let original = RecordBatchDecoder::decode(&mut Bytes::from(batch.clone()))
                .expect("decode")
                .records;
            for to in 0..=4 {
                let moved = recompress(&batch, &header, to, 1 << 20).expect("recompressed");
                let new_header = BatchHeader::parse_and_verify(&moved).expect("valid CRC");
                assert_eq!(new_header.compression(), to);
                assert_eq!(
                    (
                        new_header.base_offset,
                        new_header.last_offset_delta,
                        new_header.records_count
                    ),
                    (header.base_offset, header.last_offset_delta, header.records_count)
                );
                let records = RecordBatchDecoder::decode(&mut Bytes::from(moved))
                    .expect("decode")
                    .records;
                assert_eq!(records, original, "{from:?} -> {to}");
            }
        }
    }

    #[test]
    fn names_map_to_codecs() {
        assert_eq!(
            ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"].map(codec_of),
            [None, Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
    }
}
