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
            1 => request_frame(ApiKey::Metadata, 12, cid, &MetadataRequest::default().with_topics(None)),
            _ => request_frame(ApiKey::Produce, 9, cid, &produce("pipe", record_batch(1, 0))),
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
    let produce_cid = client.send(ApiKey::Produce, 9, &produce("quiet", record_batch(4, 0)).with_acks(0));
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
        let r: MetadataResponse = producer.request(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
        assert_eq!(r.topics.len(), 1);
    }
    consumer.stream.set_nonblocking(true).unwrap();
    let mut probe = [0u8; 1];
    assert!(
        matches!(std::io::Read::read(&mut consumer.stream, &mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the long-poll answered before any data existed"
    );
    consumer.stream.set_nonblocking(false).unwrap();
    let r: ProduceResponse = producer.request(ApiKey::Produce, 9, &produce("poll", record_batch(2, 0)));
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
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("busy", record_batch(1, 0)));
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
    create_with_configs(&mut client, "configured", &[("retention.ms", "12345")]);
    for i in 0..5 {
        let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("durable", record_batch(3, i)));
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
    let r: MetadataResponse = client.request(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
    let durable = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| &***n == "durable"))
        .unwrap();
    assert_eq!(durable.partitions.len(), 2);
    // Topic configs survive too.
    let r: DescribeConfigsResponse = client.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("configured"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")]))]),
    );
    let c = &r.results[0].configs[0];
    assert_eq!((c.value.as_deref(), c.config_source), (Some("12345"), 1));
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("durable", record_batch(1, 0)));
    assert_eq!(base_offset(&r), 15);
}

#[test]
fn kill_9_then_a_torn_tail_is_cut_and_appends_continue() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create(&mut client, "torn", 1);
    for _ in 0..4 {
        client.request::<_, ProduceResponse>(ApiKey::Produce, 9, &produce("torn", record_batch(5, 0)));
    }
    drop(client);
    let mut broker = broker;
    let dir_path = broker.dir.path().join("data/torn-0/00000000000000000000.log");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(broker_pid(&mut broker), libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!broker.is_running());
    let good = std::fs::metadata(&dir_path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&dir_path).unwrap();
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
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("torn", record_batch(1, 0)));
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
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("auto"))))
        ]))
        .with_allow_auto_topic_creation(true);
    let r: MetadataResponse = client.request(ApiKey::Metadata, 12, &req);
    assert_eq!((r.topics[0].error_code, r.topics[0].partitions.len()), (0, 3));
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut client = broker.client();
    let r: MetadataResponse = client.request(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 3);
}

#[test]
fn bad_configuration_exits_2_naming_key_and_value() {
    for (args, expect) in [
        (vec!["--override", "num.partitions=abc"], vec!["num.partitions", "abc"]),
        (vec!["--override", "listeners=nonsense"], vec!["listeners", "nonsense"]),
        (vec!["--override", "justakey"], vec!["justakey"]),
        (
            vec!["--config", "/nonexistent/server.properties"],
            vec!["/nonexistent/server.properties"],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(&args).output().unwrap();
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

fn create_with_configs(client: &mut Client, name: &str, configs: &[(&str, &str)]) {
    let r: CreateTopicsResponse = client.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]),
    );
    assert_eq!(
        r.topics[0].error_code, 0,
        "create {name}: {:?}",
        r.topics[0].error_message
    );
}

fn earliest_offset(client: &mut Client, name: &str) -> i64 {
    let r: ListOffsetsResponse = client.request(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2)])]),
    );
    r.topics[0].partitions[0].offset
}

#[test]
fn log_append_time_topics_stamp_batches_on_arrival() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create_with_configs(&mut client, "stamped", &[("message.timestamp.type", "LogAppendTime")]);
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("stamped", record_batch(3, 1000)));
    let stamped = r.responses[0].partition_responses[0].log_append_time_ms;
    assert!(stamped > 1_600_000_000_000, "log append time {stamped}");
    let f: FetchResponse = client.request(ApiKey::Fetch, 12, &fetch("stamped", 0, 0));
    let records = f.responses[0].partitions[0].records.clone().unwrap();
    // Clients read a LogAppendTime batch's records as stamped with its max timestamp.
    let attributes = i16::from_be_bytes([records[21], records[22]]);
    let max_timestamp = i64::from_be_bytes(records[35..43].try_into().unwrap());
    assert_eq!(attributes & 0x08, 0x08, "timestamp type bit");
    assert_eq!(max_timestamp, stamped);
}

#[test]
fn timestamps_an_hour_ahead_are_refused() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    create(&mut client, "clock", 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r: ProduceResponse = client.request(
        ApiKey::Produce,
        9,
        &produce("clock", record_batch(1, now + 2 * 3_600_000)),
    );
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 32,
        "INVALID_TIMESTAMP"
    );
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("clock", record_batch(1, now)));
    assert_eq!(base_offset(&r), 0);
}

#[test]
fn retention_deletes_old_segments_in_the_background() {
    let broker = Broker::start(&["log.retention.check.interval.ms=100"]);
    let mut client = broker.client();
    create_with_configs(
        &mut client,
        "shrinking",
        &[("internal.segment.bytes", "1000"), ("retention.bytes", "2000")],
    );
    // Current timestamps: only the size limit applies, not the 7-day time limit.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for _ in 0..30 {
        client.request::<_, ProduceResponse>(ApiKey::Produce, 9, &produce("shrinking", record_batch(3, now)));
    }
    let dir = broker.dir.path().join("data/shrinking-0");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut earliest = earliest_offset(&mut client, "shrinking");
    while earliest == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        earliest = earliest_offset(&mut client, "shrinking");
    }
    assert!(earliest > 0, "retention never moved the log start offset");
    assert!(
        !dir.join("00000000000000000000.log").exists(),
        "the oldest segment is still on disk"
    );
    let logs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!(logs <= 3, "{logs} segments left for 2000 bytes of retention");
    // Fetching below the new start is out of range; from it, data comes back.
    let f: FetchResponse = client.request(ApiKey::Fetch, 12, &fetch("shrinking", 0, 0));
    assert_eq!(f.responses[0].partitions[0].error_code, 1);
    let f: FetchResponse = client.request(ApiKey::Fetch, 12, &fetch("shrinking", earliest, 0));
    let p = &f.responses[0].partitions[0];
    assert_eq!((p.error_code, p.log_start_offset, p.high_watermark), (0, earliest, 90));
    assert!(
        p.records.as_ref().is_some_and(|r| !r.is_empty()),
        "nothing from {earliest}: {p:?}"
    );
}

#[test]
fn fsync_per_message_policy_still_serves() {
    let broker = Broker::start(&["log.flush.interval.messages=1"]);
    let mut client = broker.client();
    create(&mut client, "synced", 1);
    for i in 0..10 {
        let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("synced", record_batch(2, 0)));
        assert_eq!(base_offset(&r), i * 2);
    }
}

#[test]
fn describe_configs_reports_broker_settings_and_their_source() {
    let broker = Broker::start(&["num.partitions=4", "log.retention.hours=2"]);
    let mut client = broker.client();
    let r: DescribeConfigsResponse = client.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))]),
    );
    let find = |name: &str| {
        r.results[0]
            .configs
            .iter()
            .find(|c| &*c.name == name)
            .map(|c| (c.value.as_deref().unwrap_or("").to_string(), c.config_source))
    };
    assert_eq!(find("num.partitions"), Some(("4".into(), 4)));
    // As Kafka lists them: the key that was set, and the finer one left null.
    assert_eq!(find("log.retention.hours"), Some(("2".into(), 4)));
    assert_eq!(find("log.retention.ms"), Some(("".into(), 5)));
    assert_eq!(find("message.max.bytes"), Some(("1048588".into(), 5)));
    // A topic created now inherits the broker's retention.
    create(&mut client, "inherits", 1);
    let r: DescribeConfigsResponse = client.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("inherits"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")]))]),
    );
    let c = &r.results[0].configs[0];
    assert_eq!((c.value.as_deref(), c.config_source), (Some("7200000"), 4));
}

/// Every example in config/ (but the TLS one, whose certificate paths are
/// placeholders) starts a broker without an unknown-key warning.
#[test]
fn the_example_configs_load_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".properties") || name.contains("ssl") {
            continue;
        }
        let data = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--config")
            .arg(&path)
            .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
            .args(["--override", "advertised.listeners=PLAINTEXT://127.0.0.1:0"])
            .args(["--override", "metrics.prometheus.address=127.0.0.1:0"])
            .arg("--override")
            .arg(format!("log.dirs={}", data.path().display()))
            .args(["--healthcheck", "127.0.0.1:1"])
            .output()
            .unwrap();
        // --healthcheck does not start a broker: run the real start briefly instead.
        assert_eq!(out.status.code(), Some(1), "{name}: healthcheck of a closed port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--config")
            .arg(&path)
            .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
            .args(["--override", "advertised.listeners=PLAINTEXT://127.0.0.1:0"])
            .args(["--override", "metrics.prometheus.address=127.0.0.1:0"])
            .args(["--override", "logging.format=text"])
            .arg("--override")
            .arg(format!("log.dirs={}", data.path().display()))
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let started = line.contains("listening on PLAINTEXT://");
            seen.push(line);
            if started {
                break;
            }
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(child.wait().unwrap().code(), Some(0), "{name}");
        assert!(
            seen.last().is_some_and(|l| l.contains("listening on")),
            "{name} did not start: {seen:#?}"
        );
        assert!(!seen.iter().any(|l| l.contains("WARN")), "{name} warned: {seen:#?}");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} example configs found");
}
