//! How the broker serves: request order on a connection, acks=0, long-polls
//! that hold up nobody else, idle connections, clean and unclean stops, and
//! the command line's answer to bad configuration.

use crate::harness::msgs::*;
use crate::harness::*;
use crate::hostile::{api_versions_v3, fetch, produce};
use kafka_protocol::protocol::StrBytes;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

fn create(client: &mut Client, name: &str, partitions: i32) {
    let r: CreateTopicsResponse = client.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]),
    );
    assert_eq!(r.topics[0].error_code, 0, "create {name}");
}

fn base_offset(r: &ProduceResponse) -> i64 {
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create(&mut client, "pipe", 1);
    // Twenty requests of three kinds in a single write.
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let cid = 1000 + i;
        expected.push(cid);
        bytes.extend(match i % 3 {
            0 => request_frame(ApiKey::ApiVersions, 3, cid, &api_versions_v3()),
            1 => request_frame(
                ApiKey::Metadata,
                12,
                cid,
                &MetadataRequest::default().with_topics(None),
            ),
            _ => request_frame(
                ApiKey::Produce,
                9,
                cid,
                &produce("pipe", record_batch(1, 0)),
            ),
        });
    }
    client.send_raw(&bytes);
    let mut got = Vec::new();
    let mut offsets = Vec::new();
    for i in 0..20 {
        let frame = client.read_frame().expect("response");
        let cid = i32::from_be_bytes(frame[..4].try_into().unwrap());
        got.push(cid);
        if i % 3 == 2 {
            let (_, r): (i32, ProduceResponse) = decode_response(ApiKey::Produce, 9, frame);
            offsets.push(base_offset(&r));
        }
    }
    assert_eq!(got, expected);
    // Produces were applied in request order too.
    assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
}

#[test]
fn acks_zero_stores_and_sends_no_response() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create(&mut client, "quiet", 1);
    let produce_cid = client.send(
        ApiKey::Produce,
        9,
        &produce("quiet", record_batch(4, 0)).with_acks(0),
    );
    let next_cid = client.send(ApiKey::ApiVersions, 3, &api_versions_v3());
    let (cid, _): (i32, ApiVersionsResponse) = client.receive(ApiKey::ApiVersions, 3);
    assert_eq!(cid, next_cid);
    assert_ne!(cid, produce_cid);
    let f: FetchResponse = client.request(ApiKey::Fetch, 12, &fetch("quiet", 0, 0));
    assert_eq!(f.responses[0].partitions[0].high_watermark, 4);
}

#[test]
fn a_long_poll_holds_up_no_other_connection_and_wakes_on_append() {
    let broker = Broker::start(&[]);
    let mut producer = broker.client();
    create(&mut producer, "poll", 1);
    let mut consumer = broker.client().with_timeout(Duration::from_secs(30));
    // Waits up to 20 s for data that is not there yet.
    let fetch_cid = consumer.send(ApiKey::Fetch, 12, &fetch("poll", 0, 20_000));
    // Meanwhile other connections are served.
    for _ in 0..5 {
        let r: MetadataResponse = producer.request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        );
        assert_eq!(r.topics.len(), 1);
    }
    consumer.stream.set_nonblocking(true).unwrap();
    let mut probe = [0u8; 1];
    assert!(
        matches!(std::io::Read::read(&mut consumer.stream, &mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the long-poll answered before any data existed"
    );
    consumer.stream.set_nonblocking(false).unwrap();
    let r: ProduceResponse =
        producer.request(ApiKey::Produce, 9, &produce("poll", record_batch(2, 0)));
    assert_eq!(base_offset(&r), 0);
    let (cid, f): (i32, FetchResponse) = consumer.receive(ApiKey::Fetch, 12);
    assert_eq!(cid, fetch_cid);
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 2);
    assert!(
        p.records.as_ref().is_some_and(|r| !r.is_empty()),
        "woken without the new data"
    );
}

#[test]
fn thousands_of_idle_connections_are_fine() {
    let broker = Broker::start(&[]);
    let idle: Vec<Client> = (0..2000).map(|_| broker.client()).collect();
    let mut client = broker.client();
    create(&mut client, "busy", 1);
    let r: ProduceResponse =
        client.request(ApiKey::Produce, 9, &produce("busy", record_batch(1, 0)));
    assert_eq!(base_offset(&r), 0);
    // The idle ones are still live and answer.
    for mut c in idle.into_iter().step_by(199) {
        let r: ApiVersionsResponse = c.request(ApiKey::ApiVersions, 3, &api_versions_v3());
        assert_eq!(r.error_code, 0);
    }
}

#[test]
fn sigterm_exits_zero_and_a_restart_serves_the_same_data() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create(&mut client, "durable", 2);
    for i in 0..5 {
        let r: ProduceResponse =
            client.request(ApiKey::Produce, 9, &produce("durable", record_batch(3, i)));
        assert_eq!(base_offset(&r), i * 3);
    }
    drop(client);
    let (code, dir) = broker.terminate();
    assert_eq!(code, Some(0));
    let broker = Broker::start_in(dir, &[]);
    assert!(broker.log_contains("clean_shutdown=true"));
    let mut client = broker.client();
    let f: FetchResponse = client.request(ApiKey::Fetch, 12, &fetch("durable", 0, 0));
    assert_eq!(f.responses[0].partitions[0].high_watermark, 15);
    let r: MetadataResponse = client.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(r.topics[0].partitions.len(), 2);
    let r: ProduceResponse =
        client.request(ApiKey::Produce, 9, &produce("durable", record_batch(1, 0)));
    assert_eq!(base_offset(&r), 15);
}

#[test]
fn kill_9_then_a_torn_tail_is_cut_and_appends_continue() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create(&mut client, "torn", 1);
    for _ in 0..4 {
        client.request::<_, ProduceResponse>(
            ApiKey::Produce,
            9,
            &produce("torn", record_batch(5, 0)),
        );
    }
    drop(client);
    let mut broker = broker;
    let dir_path = broker
        .dir
        .path()
        .join("data/torn-0/00000000000000000000.log");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(broker_pid(&mut broker), libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!broker.is_running());
    let good = std::fs::metadata(&dir_path).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&dir_path)
        .unwrap();
    let half = record_batch(3, 0);
    f.write_all(&half[..half.len() / 2]).unwrap();
    drop(f);
    let dir = std::mem::replace(&mut broker.dir, tempfile::tempdir().unwrap());
    drop(broker);
    let broker = Broker::start_in(dir, &[]);
    assert!(broker.log_contains("truncated an invalid tail"));
    assert_eq!(std::fs::metadata(&dir_path).unwrap().len(), good);
    let mut client = broker.client();
    let f: FetchResponse = client.request(ApiKey::Fetch, 12, &fetch("torn", 15, 0));
    assert_eq!(f.responses[0].partitions[0].high_watermark, 20);
    let r: ProduceResponse =
        client.request(ApiKey::Produce, 9, &produce("torn", record_batch(1, 0)));
    assert_eq!(base_offset(&r), 20);
}

fn broker_pid(broker: &mut Broker) -> i32 {
    broker.pid() as i32
}

#[test]
fn metadata_auto_creates_with_num_partitions_when_allowed() {
    let broker = Broker::start(&["num.partitions=3"]);
    let mut client = broker.client();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("auto"))))]))
        .with_allow_auto_topic_creation(true);
    let r: MetadataResponse = client.request(ApiKey::Metadata, 12, &req);
    assert_eq!(
        (r.topics[0].error_code, r.topics[0].partitions.len()),
        (0, 3)
    );
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut client = broker.client();
    let r: MetadataResponse = client.request(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 3);
}

#[test]
fn bad_configuration_exits_2_naming_key_and_value() {
    for (args, expect) in [
        (
            vec!["--override", "num.partitions=abc"],
            vec!["num.partitions", "abc"],
        ),
        (
            vec!["--override", "listeners=nonsense"],
            vec!["listeners", "nonsense"],
        ),
        (vec!["--override", "justakey"], vec!["justakey"]),
        (
            vec!["--config", "/nonexistent/server.properties"],
            vec!["/nonexistent/server.properties"],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for e in expect {
            assert!(stderr.contains(e), "{args:?}: {stderr}");
        }
    }
    // Unknown keys are a warning naming them, not an error.
    let broker = Broker::start(&["no.such.kafka.key=1"]);
    assert!(broker.log_contains("no.such.kafka.key"));
}
