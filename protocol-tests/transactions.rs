//! Transactions at the byte level: the coordinator's answers (FindCoordinator,
//! InitProducerId, AddPartitionsToTxn, EndTxn), markers in the log, the last
//! stable offset and aborted ranges in read_committed fetches, fencing, and
//! all of it after kill -9.

use crate::harness::msgs::*;
use crate::harness::*;
use crate::hostile::fetch;
use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::*;

const TXN: &str = "proto-txn";
const TOPIC: &str = "txn";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A transactional batch from `pid`/`epoch` with sequences `seq..seq+count`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Bytes {
    // Now: an old timestamp would roll the segment (segment.ms) at the next
    // marker, and a fetch reads one segment at a time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    encode_batch(
        (0..count)
            .map(|i| Record {
                transactional: true,
                producer_id: pid,
                producer_epoch: epoch,
                sequence: seq + i,
                ..new_record(i as i64, now, None, Some(Bytes::from(format!("txn-{}", seq + i))))
            })
            .collect(),
    )
}

fn produce(c: &mut Client, batch: Bytes, transactional_id: Option<&str>) -> (i16, i64) {
    let request = crate::hostile::produce(TOPIC, batch).with_transactional_id(transactional_id.map(|t| s(t).into()));
    let r: ProduceResponse = c.request(ApiKey::Produce, 9, &request);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn init(c: &mut Client) -> (i16, i64, i16) {
    let r: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(s(TXN).into()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    (r.error_code, *r.producer_id, r.producer_epoch)
}

fn add_partition(c: &mut Client, pid: i64, epoch: i16) -> i16 {
    let r: AddPartitionsToTxnResponse = c.request(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(s(TXN).into())
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![0])]),
    );
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn end(c: &mut Client, pid: i64, epoch: i16, commit: bool) -> i16 {
    let r: EndTxnResponse = c.request(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(s(TXN).into())
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    );
    r.error_code
}

/// (high watermark, last stable offset, aborted (pid, first offset)) of a
/// read_committed fetch from 0.
fn read_committed(c: &mut Client) -> (i64, i64, Vec<(i64, i64)>) {
    let r: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch(TOPIC, 0, 0).with_isolation_level(1));
    let p = &r.responses[0].partitions[0];
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (*a.producer_id, a.first_offset))
        .collect();
    (p.high_watermark, p.last_stable_offset, aborted)
}

#[test]
fn commit_abort_fencing_and_the_stable_offset_survive_kill_9() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    let created: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);

    // This node coordinates the transactional id.
    let found: FindCoordinatorResponse = c.request(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s(TXN)]),
    );
    assert_eq!(found.coordinators[0].error_code, 0);
    assert_eq!(found.coordinators[0].port as u16, broker.addr.port());

    let (code, pid, epoch) = init(&mut c);
    assert_eq!((code, epoch), (0, 0));
    // Producing before AddPartitionsToTxn: INVALID_TXN_STATE (48); without the id: 53.
    assert_eq!(produce(&mut c, txn_batch(pid, epoch, 0, 2), Some(TXN)).0, 48);
    assert_eq!(produce(&mut c, txn_batch(pid, epoch, 0, 2), None).0, 53);
    assert_eq!(add_partition(&mut c, pid, epoch), 0);
    assert_eq!(produce(&mut c, txn_batch(pid, epoch, 0, 2), Some(TXN)), (0, 0));
    // Open: read_committed stops at its first offset.
    assert_eq!(read_committed(&mut c), (2, 0, vec![]));
    assert_eq!(end(&mut c, pid, epoch, false), 0);
    // Aborted: records 0-1, marker 2; the range is reported for skipping.
    assert_eq!(read_committed(&mut c), (3, 3, vec![(pid, 0)]));

    assert_eq!(add_partition(&mut c, pid, epoch), 0);
    assert_eq!(produce(&mut c, txn_batch(pid, epoch, 2, 3), Some(TXN)), (0, 3));
    assert_eq!(end(&mut c, pid, epoch, true), 0);
    assert_eq!(end(&mut c, pid, epoch, true), 0, "a retried commit");
    assert_eq!(end(&mut c, pid, epoch, false), 48, "no abort after a commit");
    assert_eq!(read_committed(&mut c), (7, 7, vec![(pid, 0)]));

    // A transaction left open, then a new producer with the same id: the old
    // one is aborted and fenced.
    assert_eq!(add_partition(&mut c, pid, epoch), 0);
    assert_eq!(produce(&mut c, txn_batch(pid, epoch, 5, 1), Some(TXN)), (0, 7));
    assert_eq!(read_committed(&mut c).1, 7);

    // kill -9 with the transaction open: it is still open after the restart.
    drop(c);
    let broker = Broker::start_in(broker.kill_9(), &[]);
    let mut c = broker.client();
    assert_eq!(read_committed(&mut c), (8, 7, vec![(pid, 0)]));

    let (code, same_pid, new_epoch) = init(&mut c);
    assert_eq!((code, same_pid), (0, pid));
    assert_eq!(
        new_epoch,
        epoch + 2,
        "one bump to fence and abort, one for the new producer"
    );
    // The abort marker went in at 8: nothing is open, offset 7 is an aborted range.
    assert_eq!(read_committed(&mut c), (9, 9, vec![(pid, 0), (pid, 7)]));
    // The fenced producer: PRODUCER_FENCED (90) from the coordinator,
    // INVALID_PRODUCER_EPOCH (47) from the log.
    assert_eq!(add_partition(&mut c, pid, epoch), 90);
    assert_eq!(end(&mut c, pid, epoch, true), 90);
    assert_eq!(produce(&mut c, txn_batch(pid, epoch, 6, 1), Some(TXN)).0, 47);

    let described: DescribeTransactionsResponse = c.request(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![s(TXN).into(), s("nobody").into()]),
    );
    let t = &described.transaction_states[0];
    assert_eq!(
        (
            t.error_code,
            t.transaction_state.as_str(),
            *t.producer_id,
            t.producer_epoch
        ),
        (0, "Empty", pid, new_epoch)
    );
    assert_eq!(
        described.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );
}
