//! The sending side of a connection and how a response frame goes out on it.
//! On a plain socket (PLAINTEXT, SASL_PLAINTEXT) a file chunk — fetched
//! records — goes from the page cache to the socket with sendfile, never
//! through user space, as Kafka sends it; over TLS it is read and encrypted a
//! piece at a time.

use crate::protocol::response::{Chunk, FileChunk};
use crate::protocol::ResponseFrame;
use bytes::Bytes;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Where responses are written.
pub enum Outgoing {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

impl AsyncWrite for Outgoing {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Outgoing::Plain(w) => Pin::new(w).poll_write(cx, buf),
            Outgoing::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Outgoing::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            Outgoing::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Outgoing::Plain(w) => w.is_write_vectored(),
            Outgoing::Tls(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Outgoing::Plain(w) => Pin::new(w).poll_flush(cx),
            Outgoing::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Outgoing::Plain(w) => Pin::new(w).poll_shutdown(cx),
            Outgoing::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Bytes of a file chunk read and encrypted at a time over TLS: what a client
/// slow to read holds of a fetched record set.
const FILE_PIECE: usize = 256 * 1024;

/// Writes a frame: chunks in memory with vectored writes, file chunks as the
/// socket takes them. Flushed: a TLS stream takes the last bytes into its own
/// buffer when the socket is full, and they would wait there while the
/// connection waits for a request the client sends only once it has them (a
/// consumer stalled until its request timed out).
pub async fn write_frame(writer: &mut Outgoing, frame: &ResponseFrame) -> io::Result<()> {
    let mut in_memory: Vec<&Bytes> = Vec::new();
    for chunk in &frame.0 {
        match chunk {
            Chunk::Bytes(bytes) => in_memory.push(bytes),
            Chunk::File(file) => {
                write_chunks(writer, &in_memory).await?;
                in_memory.clear();
                match writer {
                    Outgoing::Plain(w) => send_file(w.as_ref(), file).await?,
                    Outgoing::Tls(_) => write_file_chunk(writer, file).await?,
                }
            }
        }
    }
    write_chunks(writer, &in_memory).await?;
    writer.flush().await
}

/// A file chunk straight from the page cache with sendfile(2). A file cut
/// shorter meanwhile (a truncated log) is an error, and the connection
/// closes, as Kafka closes it.
async fn send_file(socket: &TcpStream, chunk: &FileChunk) -> io::Result<()> {
    let mut position = libc::off_t::try_from(chunk.position).map_err(|_| io::ErrorKind::InvalidInput)?;
    let end = position + chunk.len as libc::off_t;
    let (out_fd, in_fd) = (socket.as_raw_fd(), chunk.file.as_raw_fd());
    while position < end {
        socket.writable().await?;
        let wanted = (end - position) as usize;
        // try_io clears the readiness when the socket's buffer is full (EAGAIN).
        let sent = socket.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call (the socket is
            // borrowed, the file held by the chunk) and `position` is ours.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut position, wanted) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "log file cut shorter while sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A file chunk read a piece at a time off the runtime and written through
/// the stream (TLS encrypts in user space).
async fn write_file_chunk<W: AsyncWrite + Unpin>(writer: &mut W, chunk: &FileChunk) -> io::Result<()> {
    let mut done = 0;
    while done < chunk.len {
        let len = (chunk.len - done).min(FILE_PIECE);
        let source = chunk.clone();
        let piece = crate::storage::blocking(move || source.read(done, len)).await??;
        writer.write_all(&piece).await?;
        done += len;
    }
    Ok(())
}

/// Writes chunks with vectored writes, resuming after partial ones.
async fn write_chunks<W: AsyncWrite + Unpin>(writer: &mut W, chunks: &[&Bytes]) -> io::Result<()> {
    let (mut index, mut offset) = (0usize, 0usize);
    while index < chunks.len() {
        let mut slices = Vec::with_capacity((chunks.len() - index).min(64));
        slices.push(IoSlice::new(&chunks[index][offset..]));
        slices.extend(chunks[index + 1..].iter().take(63).map(|c| IoSlice::new(c)));
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while index < chunks.len() && written >= chunks[index].len() - offset {
            written -= chunks[index].len() - offset;
            index += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}
