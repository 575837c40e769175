//! Starts the real `sluice` binary on a free loopback port and talks to it
//! over plain TCP with frames encoded by the kafka-protocol crate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Broker {
    pub fn start(overrides: &[&str]) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        Broker::start_in(dir, overrides)
    }

    pub fn start_in(dir: tempfile::TempDir, overrides: &[&str]) -> Broker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.current_dir(dir.path())
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0")
            .arg("--override")
            .arg(format!("log.dirs={}", dir.path().join("data").display()));
        for o in overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start sluice");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        // Keep draining stderr so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line
                    .split("listening on PLAINTEXT://")
                    .nth(1)
                    .map(|rest| rest.chars().take_while(|c| *c != ',' && *c != ' ').collect::<String>());
                // Logged before the address is announced, so a test sees the start line.
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("sluice printed its listening address");
        Broker {
            child,
            addr: addr.parse().expect("socket address"),
            dir,
            log,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs (it must survive whatever clients send).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Stops the broker with SIGTERM and returns its exit code.
    pub fn terminate(self) -> (Option<i32>, tempfile::TempDir) {
        self.stop_with(libc::SIGTERM)
    }

    /// Kills the broker with SIGKILL (no chance to flush or close anything)
    /// and returns its data directory.
    pub fn kill_9(self) -> tempfile::TempDir {
        self.stop_with(libc::SIGKILL).1
    }

    fn stop_with(mut self, signal: i32) -> (Option<i32>, tempfile::TempDir) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().expect("wait");
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (status.code(), dir)
    }

    /// Whether the broker logged `text`, waiting up to 5 s for the line (it
    /// is read from the child's output by another thread).
    pub fn log_contains(&self, text: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let found = self
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|l| l.contains(text));
            if found || std::time::Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

/// Encodes a full request frame (size prefix included).
pub fn request_frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("protocol-tests")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    let mut frame = Vec::with_capacity(buf.len() + 4);
    frame.extend_from_slice(&(buf.len() as i32).to_be_bytes());
    frame.extend_from_slice(&buf);
    frame
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            stream,
            next_correlation: 1,
        }
    }

    /// Shortens the read timeout (for noise that may legitimately get no answer).
    pub fn with_timeout(self, timeout: Duration) -> Client {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        self
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, body: &R) -> i32 {
        let cid = self.next_correlation;
        self.next_correlation += 1;
        let frame = request_frame(key, version, cid, body);
        self.send_raw(&frame);
        cid
    }

    /// Reads one response frame (without its size prefix), or None when the
    /// broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).is_err() {
            return None;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).ok()?;
        Some(frame)
    }

    /// Reads and decodes one response; returns (correlation id, body).
    pub fn receive<T: Decodable>(&mut self, key: ApiKey, version: i16) -> (i32, T) {
        let frame = self.read_frame().expect("a response, not a closed connection");
        decode_response(key, version, frame)
    }

    pub fn request<R: Encodable, T: Decodable>(&mut self, key: ApiKey, version: i16, body: &R) -> T {
        let cid = self.send(key, version, body);
        let (got, response) = self.receive(key, version);
        assert_eq!(got, cid, "correlation id");
        response
    }

    /// True when the broker has closed this connection: a read hits end of
    /// stream or a reset. A broker that neither answers nor closes within the
    /// read timeout has hung, and that fails the test rather than passing it.
    pub fn is_closed(&mut self) -> bool {
        use std::io::ErrorKind;
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the broker neither answered nor closed the connection: it hung ({e})")
            }
            Err(e) => matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ),
        }
    }
}

pub fn decode_response<T: Decodable>(key: ApiKey, version: i16, frame: Vec<u8>) -> (i32, T) {
    let mut bytes = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut bytes, key.response_header_version(version)).expect("response header");
    let body = T::decode(&mut bytes, version).expect("response body");
    assert_eq!(bytes.remaining(), 0, "trailing bytes in {key:?} v{version} response");
    (header.correlation_id, body)
}

/// A producer's record batch: `count` records with fixed timestamps, so that
/// responses that return it are byte-for-byte repeatable.
pub fn record_batch(count: usize, first_timestamp: i64) -> Bytes {
    encode_batch(
        (0..count)
            .map(|i| kafka_protocol::records::Record {
                sequence: i as i32,
                ..new_record(
                    i as i64,
                    first_timestamp + i as i64,
                    Some(Bytes::from(format!("key-{i}"))),
                    Some(Bytes::from(format!("value-{i}"))),
                )
            })
            .collect(),
    )
}

/// A plain record at `offset` within its batch, from no producer; callers set
/// the producer fields with struct update syntax.
pub fn new_record(
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> kafka_protocol::records::Record {
    kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// `records` as one uncompressed v2 record batch.
pub fn encode_batch(records: Vec<kafka_protocol::records::Record>) -> Bytes {
    use kafka_protocol::records::*;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode records");
    buf.freeze()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    let clean: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    clean
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

pub fn frame_with_size(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(body);
    out
}

/// The nested message types the tests build, in one place.
pub mod msgs {
    pub use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    pub use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    pub use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    pub use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    pub use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    pub use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    pub use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    pub use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    pub use kafka_protocol::messages::*;
}
