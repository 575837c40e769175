//! Hostile and malformed input. After each, the offending connection is
//! closed (or answered with the right error), the broker process is still
//! running, a connection opened before the attack still works, a new client
//! works, and stored data is intact.

use crate::harness::msgs::*;
use crate::harness::*;
use kafka_protocol::protocol::StrBytes;
use rand::{Rng, SeedableRng};

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A broker, a bystander connection opened before any attack, and one topic
/// holding 5 records, to check that nothing stored is lost.
struct Scene {
    broker: Broker,
    bystander: Client,
}

impl Scene {
    fn new(overrides: &[&str]) -> Scene {
        let broker = Broker::start(overrides);
        let mut bystander = broker.client();
        let created: CreateTopicsResponse = bystander.request(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic("kept"))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        );
        assert_eq!(created.topics[0].error_code, 0);
        let produced: ProduceResponse = bystander.request(ApiKey::Produce, 9, &produce("kept", record_batch(5, 1000)));
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
        Scene { broker, bystander }
    }

    /// The broker survived: still running, old and new connections served,
    /// the stored records still there.
    fn assert_still_serving(&mut self) {
        assert!(self.broker.is_running(), "the broker process died");
        let r: MetadataResponse =
            self.bystander
                .request(ApiKey::Metadata, 1, &MetadataRequest::default().with_topics(None));
        assert_eq!(r.brokers.len(), 1);
        let mut fresh = self.broker.client();
        let r: ApiVersionsResponse = fresh.request(ApiKey::ApiVersions, 3, &api_versions_v3());
        assert_eq!(r.error_code, 0);
        let f: FetchResponse = fresh.request(ApiKey::Fetch, 12, &fetch("kept", 0, 0));
        let p = &f.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, 5));
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    }
}

pub fn api_versions_v3() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("protocol-tests"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

pub fn produce(name: &str, records: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

pub fn fetch(name: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic(name)).with_partitions(
            vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)],
        )])
}

fn header_only(key: i16, version: i16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&key.to_be_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    body
}

#[test]
fn negative_frame_size_closes_only_that_connection() {
    let mut scene = Scene::new(&[]);
    let mut attacker = scene.broker.client();
    attacker.send_raw(&(-1i32).to_be_bytes());
    assert!(attacker.is_closed());
    scene.assert_still_serving();
    assert!(scene.broker.log_contains("negative"));
}

#[test]
fn frame_over_socket_request_max_bytes_is_refused() {
    let mut scene = Scene::new(&["socket.request.max.bytes=4096"]);
    let mut attacker = scene.broker.client();
    attacker.send_raw(&4097i32.to_be_bytes());
    attacker.send_raw(&[0u8; 64]);
    assert!(attacker.is_closed());
    scene.assert_still_serving();
    assert!(scene.broker.log_contains("exceeds socket.request.max.bytes"));
}

#[test]
fn a_lying_length_then_silence_costs_nothing() {
    let mut scene = Scene::new(&[]);
    // Claims ~100 MB, sends a few bytes, hangs up: nothing to answer.
    for _ in 0..20 {
        let mut attacker = scene.broker.client();
        attacker.send_raw(&(100_000_000i32).to_be_bytes());
        attacker.send_raw(&[1, 2, 3]);
    }
    scene.assert_still_serving();
}

#[test]
fn truncated_body_closes_the_connection() {
    let mut scene = Scene::new(&[]);
    let mut attacker = scene.broker.client();
    let full = request_frame(ApiKey::Produce, 9, 1, &produce("kept", record_batch(3, 0)));
    // Keep the header, cut the body, and fix the size so the frame itself is whole.
    let cut = &full[4..full.len() - 40];
    attacker.send_raw(&frame_with_size(cut));
    assert!(attacker.is_closed());
    scene.assert_still_serving();
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut scene = Scene::new(&[]);
    let mut attacker = scene.broker.client();
    attacker.send_raw(&frame_with_size(&header_only(999, 0)));
    assert!(attacker.is_closed());
    scene.assert_still_serving();
    assert!(scene.broker.log_contains("unknown API key 999"));
}

#[test]
fn unsupported_versions_close_the_connection_but_api_versions_answers() {
    let mut scene = Scene::new(&[]);
    for (key, version) in [
        (ApiKey::Metadata as i16, 99),
        (ApiKey::Produce as i16, 2),
        (ApiKey::Fetch as i16, 3),
    ] {
        let mut attacker = scene.broker.client();
        let mut frame = header_only(key, version);
        frame.extend_from_slice(&[0u8; 16]);
        attacker.send_raw(&frame_with_size(&frame));
        assert!(attacker.is_closed(), "api {key} v{version}");
    }
    // ApiVersions from the future gets the v0 fallback instead.
    let mut client = scene.broker.client();
    let mut future = header_only(ApiKey::ApiVersions as i16, 77);
    future.push(0); // a flexible header's tagged fields
    client.send_raw(&frame_with_size(&future));
    let (cid, r): (i32, ApiVersionsResponse) = decode_response(ApiKey::ApiVersions, 0, client.read_frame().unwrap());
    assert_eq!((cid, r.error_code), (7, 35));
    scene.assert_still_serving();
}

#[test]
fn array_length_far_beyond_the_frame_does_not_allocate() {
    let mut scene = Scene::new(&[]);
    // Metadata v0 claiming 2^31-1 topics in a frame of a few bytes: a naive
    // decoder reserves tens of GiB before noticing the bytes are not there.
    let mut frame = header_only(ApiKey::Metadata as i16, 0);
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut attacker = scene.broker.client();
    attacker.send_raw(&frame_with_size(&frame));
    assert!(attacker.is_closed());
    // The same inside a flexible version (compact array length as a varint).
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
    frame.extend_from_slice(&12i16.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.push(0); // header tagged fields
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // ~2^31 topics
    let mut attacker = scene.broker.client();
    attacker.send_raw(&frame_with_size(&frame));
    assert!(attacker.is_closed());
    scene.assert_still_serving();
}

#[test]
fn random_bytes_and_random_bodies_never_hurt_the_broker() {
    let mut scene = Scene::new(&[]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5111CE);
    // Frames of pure noise.
    for _ in 0..100 {
        let len = rng.random_range(0..512);
        let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let mut attacker = scene
            .broker
            .client()
            .with_timeout(std::time::Duration::from_millis(200));
        attacker.send_raw(&frame_with_size(&noise));
        // Either an answer (noise that happens to parse) or a close: never a hang.
        let _ = attacker.read_frame();
    }
    // Valid headers for every advertised API and version, with noise for a body.
    let mut client = scene.broker.client();
    let versions: ApiVersionsResponse = client.request(ApiKey::ApiVersions, 3, &api_versions_v3());
    for api in &versions.api_keys {
        for version in api.min_version..=api.max_version {
            for _ in 0..8 {
                let len = rng.random_range(0..64);
                let mut frame = header_only(api.api_key, version);
                if ApiKey::try_from(api.api_key).unwrap().request_header_version(version) >= 2 {
                    frame.push(0);
                }
                frame.extend((0..len).map(|_| rng.random::<u8>()));
                let mut attacker = scene
                    .broker
                    .client()
                    .with_timeout(std::time::Duration::from_millis(200));
                attacker.send_raw(&frame_with_size(&frame));
                let _ = attacker.read_frame();
            }
        }
    }
    scene.assert_still_serving();
}

#[test]
fn bad_batches_get_partition_errors_and_lose_nothing() {
    let mut scene = Scene::new(&[]);
    let mut client = scene.broker.client();
    // Bytes that hold no whole batch where a record batch belongs: INVALID_RECORD (87).
    let noise: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("kept", noise.into()));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 87);
    // A whole batch with a damaged record: CORRUPT_MESSAGE (2).
    let mut damaged = record_batch(3, 0).to_vec();
    let at = damaged.len() - 5;
    damaged[at] ^= 0x40;
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("kept", damaged.into()));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 2);
    // A batch over max.message.bytes: MESSAGE_TOO_LARGE (10).
    let created: CreateTopicsResponse = client.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic("small"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("max.message.bytes"))
                .with_value(Some(StrBytes::from_static_str("200")))])]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("small", record_batch(20, 0)));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 10);
    // Two batches in one partition's records: INVALID_RECORD (87).
    let mut two = record_batch(1, 0).to_vec();
    two.extend_from_slice(&record_batch(1, 0));
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("kept", two.into()));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 87);
    // Unknown topic and partition: UNKNOWN_TOPIC_OR_PARTITION (3).
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("nowhere", record_batch(1, 0)));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);
    // Invalid acks: INVALID_REQUIRED_ACKS (21).
    let r: ProduceResponse = client.request(ApiKey::Produce, 9, &produce("kept", record_batch(1, 0)).with_acks(2));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 21);
    scene.assert_still_serving();
}

/// The check the tests above rely on: silence is a hang, not a close.
#[test]
#[should_panic(expected = "hung")]
fn a_peer_that_neither_answers_nor_closes_fails_is_closed() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = Client::connect(silent.local_addr().unwrap()).with_timeout(std::time::Duration::from_millis(200));
    let _held = silent.accept().unwrap();
    client.is_closed();
}
