//! Leaders and followers in one process, no network: a follower's fetch is
//! answered as the Fetch handler answers it (divergence, the follower's
//! progress, reads to the log end) and handled by the fetcher's own code.
//! Deterministic: each step is one fetch, in the order the test gives.

use super::divergence::diverging;
use super::fetcher::{handle_answer, Asked, Followed};
use super::leader_partition::LeaderPartition;
use super::leader_state::AcksAll;
use crate::config::topic::LogConfig;
use crate::metadata::image::PartitionRegistration;
use crate::storage::batch::tests::encode_batch;
use crate::storage::batch::BatchHeader;
use crate::storage::{Log, LogError, Partition};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

struct Replica {
    _dir: tempfile::TempDir,
    partition: Arc<Partition>,
}

fn replica(replicated: bool) -> Replica {
    let dir = tempfile::tempdir().expect("dir");
    let config = LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    };
    let mut log = Log::create(dir.path(), config, 0).expect("log");
    log.set_replicated(replicated);
    Replica {
        _dir: dir,
        partition: Arc::new(Partition::new("t", 0, log, Arc::new(Notify::new()))),
    }
}

/// Broker 1 leads `partition` in epoch 0 with these replicas and ISR; its
/// leader state observes the partition's appends.
fn leading(partition: &Arc<Partition>, replicas: &[i32], isr: &[i32], partition_epoch: i32) -> Arc<LeaderPartition> {
    let registration = PartitionRegistration {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader: 1,
        leader_epoch: 0,
        partition_epoch,
        ..Default::default()
    };
    let state = Arc::new(LeaderPartition::new(Uuid::nil(), partition, 1, &registration, 30_000));
    partition.set_observer(Some(state.clone()));
    state
}

/// Appends `batches` batches of two records as the leader in `epoch`.
fn produce(leader: &Arc<Partition>, epoch: i32, batches: usize) {
    {
        let mut log = leader.log();
        if log.leader_epoch() < epoch {
            log.become_leader(epoch).expect("epoch");
        }
    }
    for i in 0..batches {
        let mut batch = encode_batch(2, 1000 + i as i64, Compression::None).to_vec();
        leader.append_now(&mut batch).expect("append");
    }
}

/// One fetch by `follower` (id `id`) from `leader`, answered as the Fetch
/// handler answers a replica and handled by the fetcher.
fn fetch(
    leader: &Partition,
    state: Option<&LeaderPartition>,
    follower: &Arc<Partition>,
    id: i32,
) -> Option<(Uuid, i32)> {
    let (fetch_offset, last_epoch) = {
        let log = follower.log();
        (log.log_end_offset(), log.epochs().latest().map_or(-1, |e| e.epoch))
    };
    let mut data = PartitionData::default().with_partition_index(0);
    let diverged = diverging(&leader.log(), last_epoch, fetch_offset);
    if let Some((epoch, end_offset)) = diverged {
        data.diverging_epoch = EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset);
    } else {
        if let Some(state) = state {
            state.follower_fetched(leader, id, fetch_offset, |_| true);
        }
        let mut log = leader.log();
        data.high_watermark = log.high_watermark();
        data.log_start_offset = log.log_start_offset();
        let end = log.log_end_offset();
        match log.plan_read(fetch_offset, end) {
            Ok(Some(plan)) => data.records = Some(plan.read(1 << 20, true).expect("read")),
            Ok(None) => {}
            Err(LogError::OffsetOutOfRange { .. }) => data.error_code = ResponseError::OffsetOutOfRange.code(),
            Err(e) => panic!("{e}"),
        }
    }
    let asked = Asked {
        followed: Followed::new(Uuid::nil(), follower.clone(), 0),
        fetch_offset,
        throttled: false,
    };
    handle_answer(asked, data)
}

/// Everything a log holds, as bytes (batch by batch from its start).
fn contents(p: &Partition) -> Vec<u8> {
    let mut log = p.log();
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    let mut out = Vec::new();
    while offset < end {
        let Some(plan) = log.plan_read(offset, end).expect("plan") else {
            break;
        };
        let bytes = plan.read(1 << 24, true).expect("read");
        assert!(!bytes.is_empty(), "nothing read at {offset} of {end}");
        let mut position = 0;
        while let Ok(h) = BatchHeader::parse(&bytes[position..]) {
            offset = h.next_offset();
            position += h.total_size();
            if position >= bytes.len() {
                break;
            }
        }
        out.extend_from_slice(&bytes);
    }
    out
}

#[test]
fn a_diverged_follower_truncates_to_the_new_leaders_history() {
    let (a, b) = (replica(true), replica(true));
    // A leads epoch 0; B copies the first three batches, then A writes two more.
    produce(&a.partition, 0, 3);
    assert_eq!(fetch(&a.partition, None, &b.partition, 2), None);
    produce(&a.partition, 0, 2);
    assert_eq!(
        (a.partition.log().log_end_offset(), b.partition.log().log_end_offset()),
        (10, 6)
    );
    // A dies; B leads epoch 1 and writes two batches at 6..9 — other records than A's.
    produce(&b.partition, 1, 2);
    // A comes back as B's follower: epoch 0 ends at 6 on B, so A drops 6..9 and takes B's.
    assert_eq!(fetch(&b.partition, None, &a.partition, 1), None);
    assert_eq!(
        a.partition.log().log_end_offset(),
        6,
        "truncated to where the histories agree"
    );
    assert_eq!(fetch(&b.partition, None, &a.partition, 1), None);
    assert_eq!(a.partition.log().log_end_offset(), 10);
    assert_eq!(
        contents(&a.partition),
        contents(&b.partition),
        "not the new leader's log"
    );
    assert_eq!(
        a.partition.log().epochs().entries(),
        b.partition.log().epochs().entries()
    );
    assert_eq!(a.partition.log().end_offset_for_epoch(0), (0, 6));
}

#[test]
fn the_high_watermark_follows_the_slowest_in_sync_follower_and_reaches_the_followers() {
    let (a, b, c) = (replica(true), replica(true), replica(true));
    let state = leading(&a.partition, &[1, 2, 3], &[1, 2, 3], 0);
    produce(&a.partition, 0, 2);
    assert_eq!(a.partition.log().high_watermark(), 0, "no follower has it yet");
    assert_eq!(state.acks_all(3, 2), AcksAll::Waiting);
    fetch(&a.partition, Some(&state), &b.partition, 2);
    fetch(&a.partition, Some(&state), &b.partition, 2);
    assert_eq!(a.partition.log().high_watermark(), 0, "follower 3 has not fetched");
    fetch(&a.partition, Some(&state), &c.partition, 3);
    fetch(&a.partition, Some(&state), &c.partition, 3);
    assert_eq!(a.partition.log().high_watermark(), 4);
    assert_eq!(state.acks_all(3, 2), AcksAll::Done);
    // Followers learn it on their next fetch, never past their own log.
    assert_eq!(b.partition.log().high_watermark(), 0);
    fetch(&a.partition, Some(&state), &b.partition, 2);
    assert_eq!(b.partition.log().high_watermark(), 4);
    // A write acknowledged to nobody yet leaves the followers' high watermarks alone.
    produce(&a.partition, 0, 1);
    fetch(&a.partition, Some(&state), &b.partition, 2);
    let log = b.partition.log();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (6, 4));
}

#[test]
fn a_follower_behind_the_leaders_log_start_starts_over_there() {
    let (a, c) = (replica(false), replica(true));
    produce(&a.partition, 0, 5);
    a.partition.delete_records_before(6).expect("delete records");
    // C never fetched: offset 0 is gone from A.
    assert_eq!(fetch(&a.partition, None, &c.partition, 3), None);
    {
        let log = c.partition.log();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
    }
    assert_eq!(fetch(&a.partition, None, &c.partition, 3), None);
    assert_eq!(c.partition.log().log_end_offset(), 10);
    assert_eq!(contents(&c.partition), contents(&a.partition));
}

#[test]
fn a_caught_up_follower_is_asked_into_the_isr_only_while_unfenced() {
    let a = replica(true);
    let state = leading(&a.partition, &[1, 2], &[1], 4);
    produce(&a.partition, 0, 1);
    let end = a.partition.log().log_end_offset();
    assert_eq!(
        state.follower_fetched(&a.partition, 2, end, |id| id != 2),
        None,
        "a fenced follower is not asked for"
    );
    let change = state
        .follower_fetched(&a.partition, 2, end, |_| true)
        .expect("unfenced and caught up: asked for");
    assert_eq!((change.new_isr, change.partition_epoch), (vec![1, 2], 4));
    assert_eq!(
        state.follower_fetched(&a.partition, 2, end, |_| true),
        None,
        "one change at a time"
    );
}
