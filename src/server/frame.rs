//! Length-prefixed request frames: a big-endian i32 size, then that many
//! bytes. The buffer grows with the bytes that actually arrive, so a client
//! announcing a huge frame and sending nothing costs nothing.

use super::request_memory::{RequestMemory, Reservation};
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_size: usize,
    /// `queued.max.request.bytes`: a frame's body is read only with its
    /// bytes taken from here; they are given back at the next call, when
    /// the connection has answered the request.
    memory: Option<Arc<RequestMemory>>,
    held: Option<Reservation>,
}

/// Idle connections keep a small buffer; large frames get what they need.
const INITIAL_CAPACITY: usize = 4 * 1024;
const GROWTH_STEP: usize = 1024 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_size: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            max_size,
            memory: None,
            held: None,
        }
    }

    /// Frames read only with memory from `pool`.
    pub fn with_memory(mut self, pool: Option<Arc<RequestMemory>>) -> Self {
        self.memory = pool;
        self
    }

    /// The next whole frame (without its size prefix), or None at a clean end
    /// of stream between frames.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.held = None; // the previous request is answered
        loop {
            if self.buf.len() >= 4 {
                let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if size < 0 {
                    return Err(FrameError::NegativeSize(size));
                }
                let size = size as usize;
                if size > self.max_size {
                    return Err(FrameError::TooLarge {
                        size,
                        max: self.max_size,
                    });
                }
                if let (Some(pool), None) = (&self.memory, &self.held) {
                    self.held = Some(pool.reserve(4 + size).await);
                }
                if self.buf.len() >= 4 + size {
                    self.buf.advance(4);
                    let frame = self.buf.split_to(size).freeze();
                    if self.buf.is_empty() && self.buf.capacity() > GROWTH_STEP {
                        // Give back what a large frame needed.
                        self.buf = BytesMut::new();
                    }
                    return Ok(Some(frame));
                }
                let missing = 4 + size - self.buf.len();
                self.buf.reserve(missing.min(GROWTH_STEP));
            } else if self.buf.capacity() - self.buf.len() < 4 {
                self.buf.reserve(INITIAL_CAPACITY);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_frames_and_refuses_bad_sizes() {
        let mut data = Vec::new();
        for body in [&b"abc"[..], b"", b"hello"] {
            data.extend_from_slice(&(body.len() as i32).to_be_bytes());
            data.extend_from_slice(body);
        }
        let mut r = FrameReader::new(&data[..], 100);
        assert_eq!(&r.next_frame().await.unwrap().unwrap()[..], b"abc");
        assert_eq!(&r.next_frame().await.unwrap().unwrap()[..], b"");
        assert_eq!(&r.next_frame().await.unwrap().unwrap()[..], b"hello");
        assert!(r.next_frame().await.unwrap().is_none());

        let neg = (-5i32).to_be_bytes();
        assert!(matches!(
            FrameReader::new(&neg[..], 100).next_frame().await,
            Err(FrameError::NegativeSize(-5))
        ));
        let big = 101i32.to_be_bytes();
        assert!(matches!(
            FrameReader::new(&big[..], 100).next_frame().await,
            Err(FrameError::TooLarge { .. })
        ));
        let cut = [0u8, 0, 0, 9, 1, 2];
        assert!(matches!(
            FrameReader::new(&cut[..], 100).next_frame().await,
            Err(FrameError::Truncated)
        ));
    }
}
