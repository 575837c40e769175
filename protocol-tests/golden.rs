//! Golden request → response pairs: one conversation with a fresh broker
//! (fixed cluster id and advertised address), each response compared byte for
//! byte with `golden/<case>.txt` and its meaning checked by decoding it.
//! Random topic ids are masked to zeros before comparing.
//! `UPDATE_GOLDEN=1 cargo test --test protocol golden` rewrites the files.

use crate::harness::msgs::*;
use crate::harness::*;
use kafka_protocol::protocol::StrBytes;
use std::path::PathBuf;

struct Conversation {
    client: Client,
    topic_ids: Vec<uuid::Uuid>,
    mismatches: Vec<String>,
    update: bool,
    next_cid: i32,
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("protocol-tests/golden")
        .join(format!("{name}.txt"))
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

impl Conversation {
    fn mask(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for id in &self.topic_ids {
            let id = id.as_bytes();
            let mut i = 0;
            while i + 16 <= out.len() {
                if &out[i..i + 16] == id {
                    out[i..i + 16].fill(0);
                    i += 16;
                } else {
                    i += 1;
                }
            }
        }
        out
    }

    /// Sends the golden request (or, when recording, the one built here) and
    /// checks the response against the golden file.
    fn exchange<R: kafka_protocol::protocol::Encodable>(
        &mut self,
        name: &str,
        about: &str,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Vec<u8> {
        let (request, response) = self.send(name, key, version, body);
        self.settle(name, about, &request, &response);
        response
    }

    /// Like `exchange`, for a request the codec cannot build.
    fn exchange_raw(&mut self, name: &str, about: &str, request: &[u8]) -> Vec<u8> {
        self.next_cid += 1;
        self.client.send_raw(request);
        let response = self
            .client
            .read_frame()
            .unwrap_or_else(|| panic!("{name}: connection closed"));
        self.settle(name, about, request, &response);
        response
    }

    /// Sends without checking yet (when the response names ids still to learn).
    fn send<R: kafka_protocol::protocol::Encodable>(
        &mut self,
        name: &str,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> (Vec<u8>, Vec<u8>) {
        let cid = self.next_cid;
        self.next_cid += 1;
        let request = match (std::fs::read_to_string(golden_path(name)), self.update) {
            (Ok(text), false) => unhex(field(&text, "request:")),
            _ => request_frame(key, version, cid, body),
        };
        self.client.send_raw(&request);
        let response = self
            .client
            .read_frame()
            .unwrap_or_else(|| panic!("{name}: connection closed"));
        (request, response)
    }

    /// Compares (or records) a response, with topic ids masked.
    fn settle(&mut self, name: &str, about: &str, request: &[u8], response: &[u8]) {
        let path = golden_path(name);
        let masked = self.mask(response);
        if self.update {
            let text = format!("# {about}\nrequest: {}\nresponse: {}\n", hex(request), hex(&masked));
            std::fs::write(&path, text).expect("write golden file");
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let expected = unhex(field(&text, "response:"));
                if expected != masked {
                    self.mismatches.push(format!(
                        "{name}: response differs from golden\n  expected {}\n  actual   {}",
                        hex(&expected),
                        hex(&masked)
                    ));
                }
            }
            Err(_) => self.mismatches.push(format!(
                "{name}: no golden file; run with UPDATE_GOLDEN=1 and review it"
            )),
        }
    }
}

fn field<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("golden file lacks '{prefix}'"))
}

fn decode<T: kafka_protocol::protocol::Decodable>(key: ApiKey, version: i16, frame: Vec<u8>) -> T {
    decode_response::<T>(key, version, frame).1
}

#[test]
fn golden_conversation() {
    let broker = Broker::start(&[
        "cluster.id=golden-cluster",
        "advertised.listeners=PLAINTEXT://localhost:9092",
    ]);
    let mut c = Conversation {
        client: broker.client(),
        topic_ids: Vec::new(),
        mismatches: Vec::new(),
        update: std::env::var("UPDATE_GOLDEN").is_ok(),
        next_cid: 100,
    };

    // ApiVersions
    let r: ApiVersionsResponse = decode(
        ApiKey::ApiVersions,
        0,
        c.exchange(
            "01-api-versions-v0",
            "ApiVersions v0",
            ApiKey::ApiVersions,
            0,
            &ApiVersionsRequest::default(),
        ),
    );
    assert_eq!(r.error_code, 0);
    let produce = r.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 13));
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("protocol-tests"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let r: ApiVersionsResponse = decode(
        ApiKey::ApiVersions,
        3,
        c.exchange(
            "02-api-versions-v3",
            "ApiVersions v3 with client software",
            ApiKey::ApiVersions,
            3,
            &req,
        ),
    );
    assert_eq!(r.error_code, 0);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Fetch as i16 && k.min_version == 4));
    // A version from the future: the v0 fallback with UNSUPPORTED_VERSION (35).
    // The codec cannot encode v99: the frame is written by hand (header v2, empty body).
    let mut future = Vec::new();
    future.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    future.extend_from_slice(&99i16.to_be_bytes());
    future.extend_from_slice(&102i32.to_be_bytes());
    future.extend_from_slice(&(-1i16).to_be_bytes());
    future.extend_from_slice(&[0, 0, 0]);
    let frame = c.exchange_raw(
        "03-api-versions-unsupported",
        "ApiVersions v99: answered in v0 with error 35 and the supported list",
        &frame_with_size(&future),
    );
    let r: ApiVersionsResponse = decode(ApiKey::ApiVersions, 0, frame);
    assert_eq!(r.error_code, 35);
    assert!(!r.api_keys.is_empty());

    // Metadata and CreateTopics
    let r: MetadataResponse = decode(
        ApiKey::Metadata,
        1,
        c.exchange(
            "04-metadata-v1-all",
            "Metadata v1, all topics, none exist",
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(None),
        ),
    );
    assert!(r.topics.is_empty());
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(
        (&*r.brokers[0].host, r.brokers[0].port, *r.controller_id),
        ("localhost", 9092, 1)
    );
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("absent")))
        ]))
        .with_allow_auto_topic_creation(false);
    let r: MetadataResponse = decode(
        ApiKey::Metadata,
        4,
        c.exchange(
            "05-metadata-v4-unknown",
            "Metadata v4, unknown topic, no auto-creation",
            ApiKey::Metadata,
            4,
            &req,
        ),
    );
    assert_eq!(r.topics[0].error_code, 3);

    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic("orders"))
        .with_num_partitions(3)
        .with_replication_factor(1)]);
    let (request, frame) = c.send("06-create-topics-v7", ApiKey::CreateTopics, 7, &req);
    let r: CreateTopicsResponse = decode(ApiKey::CreateTopics, 7, frame.clone());
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].num_partitions, 3);
    assert!(!r.topics[0].topic_id.is_nil());
    c.topic_ids.push(r.topics[0].topic_id);
    c.settle(
        "06-create-topics-v7",
        "CreateTopics v7: orders with 3 partitions (topic id masked)",
        &request,
        &frame,
    );

    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(topic("orders"))
            .with_num_partitions(1)
            .with_replication_factor(1),
        CreatableTopic::default()
            .with_name(topic("bad/name"))
            .with_num_partitions(1)
            .with_replication_factor(1),
        CreatableTopic::default()
            .with_name(topic("replicated"))
            .with_num_partitions(1)
            .with_replication_factor(3),
    ]);
    let r: CreateTopicsResponse = decode(
        ApiKey::CreateTopics,
        4,
        c.exchange(
            "07-create-topics-errors",
            "CreateTopics v4: exists (36), bad name (17), RF 3 on one node (38)",
            ApiKey::CreateTopics,
            4,
            &req,
        ),
    );
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![36, 17, 38]);

    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders")))
        ]))
        .with_allow_auto_topic_creation(false);
    let r: MetadataResponse = decode(
        ApiKey::Metadata,
        12,
        c.exchange(
            "08-metadata-v12-orders",
            "Metadata v12 for orders (topic id masked)",
            ApiKey::Metadata,
            12,
            &req,
        ),
    );
    assert_eq!(r.topics[0].partitions.len(), 3);
    assert_eq!(r.topics[0].topic_id, c.topic_ids[0]);
    assert_eq!(r.cluster_id.as_deref(), Some("golden-cluster"));

    // Produce
    let produce = |partition: i32, records: bytes::Bytes, acks: i16| {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])])
    };
    let ts = 1_700_000_000_000;
    let r: ProduceResponse = decode(
        ApiKey::Produce,
        9,
        c.exchange(
            "09-produce-v9",
            "Produce v9: 3 records to orders-0, acks=all",
            ApiKey::Produce,
            9,
            &produce(0, record_batch(3, ts), -1),
        ),
    );
    assert_eq!(
        (
            r.responses[0].partition_responses[0].error_code,
            r.responses[0].partition_responses[0].base_offset
        ),
        (0, 0)
    );
    let r: ProduceResponse = decode(
        ApiKey::Produce,
        9,
        c.exchange(
            "10-produce-v9-next",
            "Produce v9: 2 more records to orders-0",
            ApiKey::Produce,
            9,
            &produce(0, record_batch(2, ts), 1),
        ),
    );
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);
    let r: ProduceResponse = decode(
        ApiKey::Produce,
        3,
        c.exchange(
            "11-produce-v3",
            "Produce v3: 3 records to orders-1",
            ApiKey::Produce,
            3,
            &produce(1, record_batch(3, ts), 1),
        ),
    );
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
    let mut corrupt = record_batch(1, ts).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let r: ProduceResponse = decode(
        ApiKey::Produce,
        9,
        c.exchange(
            "12-produce-corrupt",
            "Produce v9 with a bad CRC: CORRUPT_MESSAGE (2)",
            ApiKey::Produce,
            9,
            &produce(2, corrupt.into(), 1),
        ),
    );
    assert_eq!(r.responses[0].partition_responses[0].error_code, 2);

    // Fetch
    let fetch = |offset: i64| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(topic("orders")).with_partitions(
                vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)],
            )])
    };
    let r: FetchResponse = decode(
        ApiKey::Fetch,
        12,
        c.exchange(
            "13-fetch-v12-inside-batch",
            "Fetch v12 from offset 4: the whole batch 3-4 comes back",
            ApiKey::Fetch,
            12,
            &fetch(4),
        ),
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark, p.log_start_offset), (0, 5, 0));
    let records = p.records.clone().unwrap();
    assert_eq!(i64::from_be_bytes(records[..8].try_into().unwrap()), 3);
    let r: FetchResponse = decode(
        ApiKey::Fetch,
        4,
        c.exchange(
            "14-fetch-v4-out-of-range",
            "Fetch v4 from offset 99: OFFSET_OUT_OF_RANGE (1)",
            ApiKey::Fetch,
            4,
            &fetch(99),
        ),
    );
    assert_eq!(r.responses[0].partitions[0].error_code, 1);

    // ListOffsets
    let list = |timestamps: &[i64]| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(
                    timestamps
                        .iter()
                        .map(|t| {
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(*t)
                        })
                        .collect(),
                )])
    };
    let r: ListOffsetsResponse = decode(
        ApiKey::ListOffsets,
        7,
        c.exchange(
            "15-list-offsets-v7",
            "ListOffsets v7: earliest, latest, by timestamp, max timestamp",
            ApiKey::ListOffsets,
            7,
            &list(&[-2, -1, ts + 1, -3]),
        ),
    );
    let got: Vec<(i64, i64)> = r.topics[0].partitions.iter().map(|p| (p.offset, p.timestamp)).collect();
    assert_eq!(got, vec![(0, -1), (5, -1), (1, ts + 1), (2, ts + 2)]);

    // DeleteRecords
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(1)
                .with_offset(2)])]);
    let r: DeleteRecordsResponse = decode(
        ApiKey::DeleteRecords,
        2,
        c.exchange(
            "16-delete-records-v2",
            "DeleteRecords v2: orders-1 below offset 2",
            ApiKey::DeleteRecords,
            2,
            &req,
        ),
    );
    assert_eq!(r.topics[0].partitions[0].low_watermark, 2);

    // InitProducerId, FindCoordinator, DescribeCluster
    let r: InitProducerIdResponse = decode(
        ApiKey::InitProducerId,
        4,
        c.exchange(
            "17-init-producer-id-v4",
            "InitProducerId v4 for an idempotent producer",
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    );
    assert_eq!((r.error_code, *r.producer_id, r.producer_epoch), (0, 0, 0));
    let r: FindCoordinatorResponse = decode(
        ApiKey::FindCoordinator,
        3,
        c.exchange(
            "18-find-coordinator-v3",
            "FindCoordinator v3 for a group",
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("group-a")),
        ),
    );
    assert_eq!((r.error_code, *r.node_id, &*r.host, r.port), (0, 1, "localhost", 9092));
    let r: FindCoordinatorResponse = decode(
        ApiKey::FindCoordinator,
        4,
        c.exchange(
            "19-find-coordinator-v4",
            "FindCoordinator v4 with two group keys",
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("a"), StrBytes::from_static_str("b")]),
        ),
    );
    assert_eq!(r.coordinators.len(), 2);
    let r: DescribeClusterResponse = decode(
        ApiKey::DescribeCluster,
        1,
        c.exchange(
            "20-describe-cluster-v1",
            "DescribeCluster v1",
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default(),
        ),
    );
    assert_eq!(
        (&*r.cluster_id, *r.controller_id, r.brokers.len()),
        ("golden-cluster", 1, 1)
    );

    // DescribeConfigs, CreatePartitions, DeleteTopics
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("orders"))
            .with_configuration_keys(Some(vec![
                StrBytes::from_static_str("retention.ms"),
                StrBytes::from_static_str("cleanup.policy"),
            ]))]);
    let r: DescribeConfigsResponse = decode(
        ApiKey::DescribeConfigs,
        4,
        c.exchange(
            "21-describe-configs-v4",
            "DescribeConfigs v4: two topic configs with synonyms",
            ApiKey::DescribeConfigs,
            4,
            &req,
        ),
    );
    let configs: Vec<(String, String, i8)> = r.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_string(),
                c.config_source,
            )
        })
        .collect();
    assert_eq!(
        configs,
        vec![
            ("cleanup.policy".into(), "delete".into(), 5),
            ("retention.ms".into(), "604800000".into(), 5)
        ]
    );
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic("orders"))
            .with_count(4)
            .with_assignments(None)]);
    let r: CreatePartitionsResponse = decode(
        ApiKey::CreatePartitions,
        3,
        c.exchange(
            "22-create-partitions-v3",
            "CreatePartitions v3: orders to 4",
            ApiKey::CreatePartitions,
            3,
            &req,
        ),
    );
    assert_eq!(r.results[0].error_code, 0);
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic("orders"))
            .with_count(2)]);
    let r: CreatePartitionsResponse = decode(
        ApiKey::CreatePartitions,
        3,
        c.exchange(
            "23-create-partitions-shrink",
            "CreatePartitions v3: shrinking is INVALID_PARTITIONS (37)",
            ApiKey::CreatePartitions,
            3,
            &req,
        ),
    );
    assert_eq!(r.results[0].error_code, 37);
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topic_names(vec![topic("orders"), topic("absent")]);
    let r: DeleteTopicsResponse = decode(
        ApiKey::DeleteTopics,
        4,
        c.exchange(
            "24-delete-topics-v4",
            "DeleteTopics v4: orders, and an unknown topic (3)",
            ApiKey::DeleteTopics,
            4,
            &req,
        ),
    );
    let codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 3]);

    assert!(
        c.mismatches.is_empty(),
        "golden mismatches:\n{}",
        c.mismatches.join("\n")
    );
}
