//! Record sections decompressed and compressed as streams, so that what a
//! batch expands to never has to be held at once: a 1 MiB gzip or zstd batch
//! of zeros can stand for gigabytes (a decompression bomb). Snappy is read
//! whole: its stream cannot expand more than ~21 times (the vendored crate
//! refuses headers claiming more than 32).

use super::codec::{compress, decompress, CodecError};
use bytes::Bytes;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};

/// The plain bytes of a records section compressed with `codec`, as a reader.
pub fn plain_reader<'a>(codec: i16, body: &'a [u8]) -> Result<Box<dyn BufRead + 'a>, CodecError> {
    let failed = |_| CodecError::Failed("decompress");
    Ok(match codec {
        0 => Box::new(body),
        1 => Box::new(BufReader::new(flate2::read::GzDecoder::new(body))),
        2 => Box::new(Cursor::new(decompress(2, Bytes::copy_from_slice(body))?)),
        3 => Box::new(BufReader::new(lz4::Decoder::new(body).map_err(failed)?)),
        4 => Box::new(BufReader::new(
            zstd::stream::read::Decoder::with_buffer(body).map_err(failed)?,
        )),
        other => return Err(CodecError::UnknownCodec(other)),
    })
}

/// Why a streamed compression stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The compressed records would pass the size they must fit.
    #[error("compressed records pass {0} bytes")]
    TooLarge(usize),
}

/// Compresses plain bytes written to it with `codec` into a buffer that may
/// not grow past `max` bytes: writing on past it fails, so a stream of
/// gigabytes costs no more than `max` (plus snappy's plain input, bounded by
/// what could compress to `max`).
pub struct CappedEncoder {
    inner: Inner,
    max: usize,
}

enum Inner {
    Plain(Capped),
    Gzip(flate2::write::GzEncoder<Capped>),
    /// Snappy's output is the vendored crate's (Kafka's xerial framing): the
    /// plain bytes are gathered, at most what could compress to `max`.
    Snappy(Capped),
    Lz4(lz4::Encoder<Capped>),
    Zstd(zstd::stream::write::Encoder<'static, Capped>),
}

/// Snappy turns at most ~21 plain bytes into one: more than this many times
/// `max` cannot fit.
const SNAPPY_MAX_RATIO: usize = 32;
/// The levels kafka-protocol compresses with (what recompression made before).
const LZ4_LEVEL: u32 = 4;
const ZSTD_LEVEL: i32 = 3;

impl CappedEncoder {
    pub fn new(codec: i16, max: usize) -> Result<CappedEncoder, CodecError> {
        let failed = |_| CodecError::Failed("compress");
        let inner = match codec {
            0 => Inner::Plain(Capped::new(max)),
            1 => Inner::Gzip(flate2::write::GzEncoder::new(
                Capped::new(max),
                flate2::Compression::default(),
            )),
            2 => Inner::Snappy(Capped::new(max.saturating_mul(SNAPPY_MAX_RATIO))),
            3 => Inner::Lz4(
                lz4::EncoderBuilder::new()
                    .level(LZ4_LEVEL)
                    .block_mode(lz4::BlockMode::Independent)
                    .build(Capped::new(max))
                    .map_err(failed)?,
            ),
            4 => Inner::Zstd(zstd::stream::write::Encoder::new(Capped::new(max), ZSTD_LEVEL).map_err(failed)?),
            other => return Err(CodecError::UnknownCodec(other)),
        };
        Ok(CappedEncoder { inner, max })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.inner {
            Inner::Plain(w) | Inner::Snappy(w) => w,
            Inner::Gzip(w) => w,
            Inner::Lz4(w) => w,
            Inner::Zstd(w) => w,
        }
    }

    /// The compressed bytes.
    pub fn finish(self) -> Result<Vec<u8>, EncodeError> {
        let max = self.max;
        let done = match self.inner {
            Inner::Plain(w) => Ok(w),
            Inner::Gzip(w) => w.finish(),
            Inner::Snappy(w) => return snappy(w.bytes, max),
            Inner::Lz4(w) => {
                let (w, result) = w.finish();
                result.map(|_| w)
            }
            Inner::Zstd(w) => w.finish(),
        };
        match done {
            Ok(w) => Ok(w.bytes),
            Err(e) => Err(encode_error(e, max)),
        }
    }
}

fn snappy(plain: Vec<u8>, max: usize) -> Result<Vec<u8>, EncodeError> {
    let compressed = compress(2, plain)?;
    if compressed.len() > max {
        return Err(EncodeError::TooLarge(max));
    }
    Ok(compressed)
}

/// `e` from a write into the encoder: the cap, or the codec failing.
pub fn encode_error(e: io::Error, max: usize) -> EncodeError {
    if e.get_ref().is_some_and(|inner| inner.is::<CapReached>()) {
        EncodeError::TooLarge(max)
    } else {
        EncodeError::Codec(CodecError::Failed("compress"))
    }
}

impl Write for CappedEncoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the compressed records reached their size limit")]
struct CapReached;

/// A buffer that refuses to grow past `max` bytes.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl Capped {
    fn new(max: usize) -> Capped {
        Capped { bytes: Vec::new(), max }
    }
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.max {
            return Err(io::Error::other(CapReached));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `reader` to its end into `out`, as `io::copy`, telling the cap
/// from a damaged stream.
pub fn copy_into(reader: &mut dyn Read, out: &mut CappedEncoder) -> Result<(), EncodeError> {
    let max = out.max;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(EncodeError::Codec(CodecError::Failed("decompress"))),
        };
        out.write_all(&chunk[..n]).map_err(|e| encode_error(e, max))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(codec: i16, plain: &[u8], max: usize) -> Result<Vec<u8>, EncodeError> {
        let mut encoder = CappedEncoder::new(codec, max)?;
        copy_into(&mut &plain[..], &mut encoder)?;
        let compressed = encoder.finish()?;
        let mut back = Vec::new();
        plain_reader(codec, &compressed)?.read_to_end(&mut back).expect("reads");
        Ok(back)
    }

    #[test]
    fn every_codec_streams_both_ways() {
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for codec in 0..=4 {
            assert_eq!(
                round_trip(codec, &plain, 1 << 20).expect("fits"),
                plain,
                "codec {codec}"
            );
        }
    }

    #[test]
    fn output_past_the_cap_is_refused_while_it_is_written() {
        // Random bytes do not compress: 64 KiB cannot fit in 16.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..65_536)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for codec in 0..=4 {
            let result = round_trip(codec, &noise, 16 * 1024);
            assert!(matches!(result, Err(EncodeError::TooLarge(16384))), "codec {codec}");
        }
    }

    #[test]
    fn zeros_a_thousand_times_their_stream_are_read_a_chunk_at_a_time() {
        // 128 MiB of zeros in ~128 KiB of gzip.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..128 {
            encoder.write_all(&zeros).expect("compress");
        }
        let bomb = encoder.finish().expect("compress");
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let mut reader = plain_reader(1, &bomb).expect("reader");
        let read = io::copy(&mut reader, &mut io::sink()).expect("reads");
        assert_eq!(read, 128 << 20);
    }
}
