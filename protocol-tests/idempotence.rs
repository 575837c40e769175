//! The idempotent producer at the byte level: InitProducerId, a retried
//! batch stored once and acknowledged with its first offset, a sequence gap
//! refused, an old epoch fenced, and all of it still true after a restart.

use crate::harness::msgs::*;
use crate::harness::*;
use crate::hostile::{fetch, produce};
use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::*;

/// A batch from producer `pid`/`epoch` with sequences `seq..seq+count`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Bytes {
    encode_batch(
        (0..count)
            .map(|i| Record {
                producer_id: pid,
                producer_epoch: epoch,
                sequence: seq + i,
                ..new_record(
                    i as i64,
                    1_700_000_000_000,
                    None,
                    Some(Bytes::from(format!("seq-{}", seq + i))),
                )
            })
            .collect(),
    )
}

fn send(c: &mut Client, batch: Bytes) -> (i16, i64) {
    let r: ProduceResponse = c.request(ApiKey::Produce, 9, &produce("idem", batch));
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn init_producer_id(c: &mut Client) -> i64 {
    let r: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    *r.producer_id
}

#[test]
fn retries_are_stored_once_gaps_and_old_epochs_are_refused_across_restarts() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    let created: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("idem")))
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let pid = init_producer_id(&mut c);
    assert_ne!(init_producer_id(&mut c), pid, "every call hands out a new id");

    assert_eq!(send(&mut c, idempotent_batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(send(&mut c, idempotent_batch(pid, 0, 3, 2)), (0, 3));
    // A retry of the first batch: acknowledged with its original offset, not stored again.
    assert_eq!(send(&mut c, idempotent_batch(pid, 0, 0, 3)), (0, 0));
    // A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert_eq!(send(&mut c, idempotent_batch(pid, 0, 9, 1)).0, 45);
    // A new epoch starts at sequence 0; the old epoch is then fenced (47).
    assert_eq!(send(&mut c, idempotent_batch(pid, 1, 0, 1)), (0, 5));
    assert_eq!(send(&mut c, idempotent_batch(pid, 0, 5, 1)).0, 47);
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("idem", 0, 0));
    assert_eq!(
        f.responses[0].partitions[0].high_watermark, 6,
        "3 + 2 + 1 records, nothing twice"
    );

    // After a clean restart and after kill -9, the producer's state is back.
    drop(c);
    let (_, dir) = broker.terminate();
    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.client();
    assert_eq!(
        send(&mut c, idempotent_batch(pid, 1, 0, 1)),
        (0, 5),
        "retry across a restart"
    );
    assert_eq!(send(&mut c, idempotent_batch(pid, 1, 1, 2)), (0, 6));
    drop(c);
    let broker = Broker::start_in(broker.kill_9(), &[]);
    let mut c = broker.client();
    assert_eq!(
        send(&mut c, idempotent_batch(pid, 1, 1, 2)),
        (0, 6),
        "retry across kill -9"
    );
    assert_eq!(send(&mut c, idempotent_batch(pid, 1, 5, 1)).0, 45);
    assert_eq!(send(&mut c, idempotent_batch(pid, 1, 3, 1)), (0, 8));
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("idem", 0, 0));
    assert_eq!(f.responses[0].partitions[0].high_watermark, 9);
}
