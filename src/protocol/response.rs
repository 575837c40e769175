//! Response framing: length prefix, response header, body. A frame is a list
//! of chunks so that large record sets go to the socket without being copied
//! into the encoded response: as they were read, or (fetched batches) from
//! their files, read as the socket takes them.

use super::RequestError;
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// An encoded response, ready for the socket in chunk order.
#[derive(Debug, Clone)]
pub struct ResponseFrame(pub Vec<Chunk>);

/// Part of a frame: bytes in memory, or bytes of a file read as the socket
/// takes them (fetched record sets).
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileChunk),
}

/// `len` bytes of `file` from `position`.
#[derive(Debug, Clone)]
pub struct FileChunk {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

impl FileChunk {
    /// `len` bytes from `from` (within the chunk), read now.
    pub fn read(&self, from: usize, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, self.position + from as u64)?;
        Ok(buf)
    }
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ResponseFrame {
    pub fn len(&self) -> usize {
        self.0.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one buffer, file chunks read (tests, forwarded answers).
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        if let [Chunk::Bytes(one)] = self.0.as_slice() {
            return Ok(one.clone());
        }
        let mut out = BytesMut::with_capacity(self.len());
        for chunk in &self.0 {
            match chunk {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(f) => out.extend_from_slice(&f.read(0, f.len)?),
            }
        }
        Ok(out.freeze())
    }
}

/// A record set the encoder keeps out of the frame's buffer: its bytes, as a
/// chunk of their own, or a stand-in (see `stand_in`) for bytes of a file,
/// which become a file chunk.
#[derive(Debug, Clone)]
pub enum Splice {
    Bytes(Bytes),
    File { stand_in: Bytes, chunk: FileChunk },
}

impl Splice {
    /// Whether `src` (what the encoder writes) is this record set itself.
    fn is(&self, src: &[u8]) -> bool {
        let b = match self {
            Splice::Bytes(b) => b,
            Splice::File { stand_in, .. } => stand_in,
        };
        b.as_ptr() == src.as_ptr() && b.len() == src.len()
    }

    fn len(&self) -> usize {
        match self {
            Splice::Bytes(b) => b.len(),
            Splice::File { chunk, .. } => chunk.len,
        }
    }

    fn chunk(&self) -> Chunk {
        match self {
            Splice::Bytes(b) => Chunk::Bytes(b.clone()),
            Splice::File { chunk, .. } => Chunk::File(chunk.clone()),
        }
    }
}

/// Below this size copying is cheaper than a separate chunk.
pub const SPLICE_MIN: usize = 16 * 1024;

/// A `BufMut` that encodes into a growing tail buffer, except that slices
/// which are exactly one of the `splices` are kept as their own chunk.
struct FrameBuilder {
    chunks: Vec<Chunk>,
    tail: BytesMut,
    flushed: usize,
    splices: Vec<Splice>,
}

impl FrameBuilder {
    fn finish(mut self) -> ResponseFrame {
        if !self.tail.is_empty() {
            self.chunks.push(Chunk::Bytes(self.tail.freeze()));
        }
        ResponseFrame(self.chunks)
    }
}

// SAFETY: every method delegates to the tail BytesMut, which upholds
// BufMut's contract; put_slice only adds whole, initialised chunks.
unsafe impl BufMut for FrameBuilder {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk we handed out.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SPLICE_MIN {
            if let Some(splice) = self.splices.iter().find(|s| s.is(src)) {
                let done = std::mem::take(&mut self.tail);
                self.flushed += done.len();
                if !done.is_empty() {
                    self.chunks.push(Chunk::Bytes(done.freeze()));
                }
                self.flushed += src.len();
                self.chunks.push(splice.chunk());
                return;
            }
        }
        self.tail.extend_from_slice(src);
    }
}

/// Message encoders never seek or patch (only record encoders do), so these
/// act on the tail, which is all that could be addressed.
impl ByteBufMut for FrameBuilder {
    fn offset(&self) -> usize {
        self.flushed + self.tail.len()
    }
    fn seek(&mut self, offset: usize) {
        self.tail.resize(offset.saturating_sub(self.flushed), 0);
    }
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.flushed);
        let end = r.end.saturating_sub(self.flushed).min(self.tail.len());
        &mut self.tail[start.min(end)..end]
    }
}

/// Encodes a whole response frame, keeping the `splices` (record sets the
/// body refers to) as chunks of their own.
pub fn encode_response_spliced<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    splices: Vec<Splice>,
) -> Result<ResponseFrame, RequestError> {
    let fail = |reason: String| RequestError::Encode {
        api: api_key,
        version,
        reason,
    };
    let (header, header_version, size) = frame_header(api_key, version, correlation_id, body)?;
    let spliced: usize = splices.iter().map(Splice::len).sum();
    let inline = size - spliced.min(size);
    let mut buf = FrameBuilder {
        chunks: Vec::with_capacity(1 + 2 * splices.len()),
        tail: BytesMut::with_capacity(4 + inline),
        flushed: 0,
        splices,
    };
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| fail(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| fail(e.to_string()))?;
    Ok(buf.finish())
}

/// A response's header, its version, and the size of header and body.
fn frame_header<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<(ResponseHeader, i16, usize), RequestError> {
    let fail = |reason: String| RequestError::Encode {
        api: api_key,
        version,
        reason,
    };
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header.compute_size(header_version).map_err(|e| fail(e.to_string()))?;
    let body_size = body.compute_size(version).map_err(|e| fail(e.to_string()))?;
    Ok((header, header_version, header_size + body_size))
}

/// Encodes a whole response frame, ready for the socket.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<ResponseFrame, RequestError> {
    encode_response_spliced(api_key, version, correlation_id, body, Vec::new())
}

#[cfg(test)]
fn encode_response_copied<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, RequestError> {
    let fail = |reason: String| RequestError::Encode {
        api: api_key,
        version,
        reason,
    };
    let (header, header_version, size) = frame_header(api_key, version, correlation_id, body)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| fail(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| fail(e.to_string()))?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchResponse, FetchableTopicResponse, PartitionData};

    #[test]
    fn spliced_frames_equal_copied_frames() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let small = Bytes::from(vec![9u8; 10]);
        let body =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default().with_partitions(vec![
                PartitionData::default().with_records(Some(big.clone())),
                PartitionData::default()
                    .with_partition_index(1)
                    .with_records(Some(small.clone())),
            ])]);
        for version in [4, 12, 16] {
            let splices = vec![Splice::Bytes(big.clone()), Splice::Bytes(small.clone())];
            let spliced = encode_response_spliced(ApiKey::Fetch, version, 5, &body, splices).unwrap();
            assert!(spliced.0.len() >= 3, "the large record set is its own chunk");
            assert!(spliced
                .0
                .iter()
                .any(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == big.as_ptr())));
            let copied = encode_response_copied(ApiKey::Fetch, version, 5, &body).unwrap();
            assert_eq!(spliced.to_bytes().unwrap(), copied);
        }
    }

    #[test]
    fn a_stand_in_is_sent_as_the_file_bytes_it_stands_for() {
        use std::io::Write;
        let records: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[1, 2, 3]).unwrap();
        file.write_all(&records).unwrap();
        let chunk = FileChunk {
            file: Arc::new(file),
            position: 3,
            len: records.len(),
        };
        let stand_in = crate::protocol::stand_in::stand_in(0, records.len()).unwrap();
        let with = |records: Bytes| {
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_partitions(vec![PartitionData::default().with_records(Some(records))])])
        };
        for version in [4, 12, 16] {
            let splices = vec![Splice::File {
                stand_in: stand_in.clone(),
                chunk: chunk.clone(),
            }];
            let frame = encode_response_spliced(ApiKey::Fetch, version, 5, &with(stand_in.clone()), splices).unwrap();
            assert!(frame
                .0
                .iter()
                .any(|c| matches!(c, Chunk::File(f) if f.len == records.len())));
            let copied =
                encode_response_copied(ApiKey::Fetch, version, 5, &with(Bytes::from(records.clone()))).unwrap();
            assert_eq!(frame.len(), copied.len());
            assert_eq!(frame.to_bytes().unwrap(), copied);
        }
    }
}
