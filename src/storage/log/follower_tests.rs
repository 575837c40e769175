//! A follower's log against its leader's: the same bytes at the same
//! offsets, the same leader epochs, across rolls and restarts.

use super::*;
use crate::storage::batch::tests::encode_batch;
use crate::storage::batch::BatchHeader;
use crate::storage::loader::LogLoader;
use kafka_protocol::records::Compression;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// Everything `log` holds from `offset`, as fetches (a segment each) return it.
fn fetch(log: &mut Log, mut offset: i64) -> Vec<u8> {
    let end = log.log_end_offset();
    let mut out = Vec::new();
    while let Some(plan) = log.plan_read(offset, end).expect("plan") {
        let bytes = plan.read(1 << 24, true).expect("read");
        if bytes.is_empty() {
            break;
        }
        let mut position = 0;
        while position < bytes.len() {
            let header = BatchHeader::parse(&bytes[position..]).expect("header");
            offset = header.next_offset();
            position += header.total_size();
        }
        out.extend_from_slice(&bytes);
        if offset >= end {
            break;
        }
    }
    out
}

/// The log in `dir` as a restart after a crash loads it.
fn reopen(dir: &Path, segment_bytes: u64) -> Log {
    let loader = LogLoader {
        dir,
        config: config(segment_bytes),
        clean_shutdown: false,
        recovery_point: 0,
        log_start_offset: 0,
        now_ms: 0,
    };
    loader.load().expect("load").0
}

fn leader_with_epochs(dir: &Path) -> Log {
    let mut leader = Log::create(dir, config(1 << 20), 0).expect("leader");
    for (epoch, batches) in [(0, 3), (2, 2), (5, 4)] {
        leader.become_leader(epoch).expect("epoch");
        for i in 0..batches {
            let mut batch = encode_batch(3, 1000 + i, Compression::None).to_vec();
            leader.append(&mut batch, 1000).expect("append");
        }
    }
    leader
}

#[test]
fn a_follower_stores_the_leaders_batches_byte_for_byte_with_their_epochs() {
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut leader = leader_with_epochs(dirs.0.path());
    // Small segments: the follower rolls on its own as it appends.
    let mut follower = Log::create(dirs.1.path(), config(300), 0).expect("follower");
    let bytes = fetch(&mut leader, 0);
    // A fetch cut in the middle of a batch: the whole batches are stored, the rest waits.
    let cut = bytes.len() - 10;
    let first = follower.append_as_follower(&bytes[..cut], 2000).expect("append");
    assert_eq!(first.offsets, Some((0, 23)));
    assert_eq!(follower.log_end_offset(), 24);
    let rest = fetch(&mut leader, follower.log_end_offset());
    let second = follower.append_as_follower(&rest, 2000).expect("append");
    assert_eq!(second.offsets, Some((24, 26)));
    assert!(follower.segment_count() > 1, "the follower rolled its own segments");
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(fetch(&mut follower, 0), fetch(&mut leader, 0), "not the leader's bytes");
    assert_eq!(follower.epochs().entries(), leader.epochs().entries());
    assert_eq!(follower.end_offset_for_epoch(2), (2, 15));
    assert_eq!(follower.end_offset_for_epoch(5), (5, 27));
    // Its high watermark is the leader's, never past its own log.
    assert_eq!(follower.high_watermark(), 0);
    follower.update_high_watermark(20);
    assert_eq!(follower.high_watermark(), 20);
    follower.update_high_watermark(100);
    assert_eq!(follower.high_watermark(), 27);

    // Restarted, it has the same log and epochs.
    let entries = follower.epochs().entries().to_vec();
    drop(follower);
    let mut again = reopen(dirs.1.path(), 300);
    assert_eq!(again.log_end_offset(), 27);
    assert_eq!(again.epochs().entries(), &entries[..]);
    assert_eq!(fetch(&mut again, 0), fetch(&mut leader, 0));
}

#[test]
fn a_follower_refuses_what_it_has_and_what_is_corrupt() {
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut leader = leader_with_epochs(dirs.0.path());
    let mut follower = Log::create(dirs.1.path(), config(1 << 20), 0).expect("follower");
    let bytes = fetch(&mut leader, 0);
    follower.append_as_follower(&bytes, 0).expect("append");
    let again = follower
        .append_as_follower(&bytes, 0)
        .expect_err("offsets below the log end");
    assert!(
        matches!(again, LogError::UnexpectedAppendOffset { first: 0, log_end: 27 }),
        "{again}"
    );

    let other_dir = tempfile::tempdir().expect("dir");
    let mut other = Log::create(other_dir.path(), config(1 << 20), 0).expect("log");
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let e = other.append_as_follower(&damaged, 0).expect_err("crc");
    assert!(matches!(e, LogError::Batch(_)), "{e}");
    // What came before the damaged batch is stored.
    assert_eq!(other.log_end_offset(), 24);
}

#[test]
fn a_leaders_appends_carry_its_epoch_and_retention_trims_the_epochs() {
    let dir = tempfile::tempdir().expect("dir");
    let mut log = leader_with_epochs(dir.path());
    assert_eq!(epochs_of(&log), vec![(0, 0), (2, 9), (5, 15)]);
    let bytes = fetch(&mut log, 15);
    let header = BatchHeader::parse(&bytes).expect("header");
    assert_eq!(header.partition_leader_epoch, 5);
    // A leader that never appended in an epoch keeps it in the cache from the log end.
    log.become_leader(6).expect("epoch");
    assert_eq!(log.end_offset_for_epoch(5), (5, 27));
    assert_eq!(log.end_offset_for_epoch(6), (6, 27));
    log.delete_records_before(10).expect("delete records");
    assert_eq!(epochs_of(&log), vec![(2, 10), (5, 15), (6, 27)]);
}

fn copy_of(leader: &mut Log, dir: &Path, segment_bytes: u64) -> Log {
    let mut follower = Log::create(dir, config(segment_bytes), 0).expect("follower");
    let bytes = fetch(leader, 0);
    follower.append_as_follower(&bytes, 0).expect("append");
    follower
}

fn epochs_of(log: &Log) -> Vec<(i32, i64)> {
    log.epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

#[test]
fn truncation_to_where_the_histories_agree_then_fetching_again() {
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut leader = leader_with_epochs(dirs.0.path());
    // Small segments: the cut falls in an earlier segment than the active one.
    let mut follower = copy_of(&mut leader, dirs.1.path(), 300);
    let segments_before = follower.segment_count();
    // Where epoch 2 ends on the leader: the follower keeps [0, 15).
    let (_, end) = leader.end_offset_for_epoch(2);
    assert_eq!(follower.truncate_to(end).expect("truncate"), 15);
    assert_eq!(follower.log_end_offset(), 15);
    assert!(follower.segment_count() < segments_before);
    assert_eq!(epochs_of(&follower), vec![(0, 0), (2, 9)]);
    let kept = fetch(&mut follower, 0);
    assert_eq!(kept, fetch(&mut leader, 0)[..kept.len()].to_vec());
    // Mid-batch: the whole batch holding the offset goes (batches hold 3 offsets).
    assert_eq!(follower.truncate_to(10).expect("truncate"), 9);
    // No batch of epoch 2 is left: its entry goes too.
    assert_eq!(epochs_of(&follower), vec![(0, 0)]);
    assert_eq!(follower.truncate_to(40).expect("past the end: nothing"), 9);
    // Fetching from the new end makes it the leader's copy again, and a restart agrees.
    let rest = fetch(&mut leader, 9);
    follower.append_as_follower(&rest, 0).expect("append");
    assert_eq!(fetch(&mut follower, 0), fetch(&mut leader, 0));
    assert_eq!(epochs_of(&follower), epochs_of(&leader));
    drop(follower);
    let mut again = reopen(dirs.1.path(), 300);
    assert_eq!(fetch(&mut again, 0), fetch(&mut leader, 0));
    assert_eq!(epochs_of(&again), epochs_of(&leader));
}

#[test]
fn truncating_an_abort_marker_reopens_its_transaction() {
    use super::tests::{append_marker, append_txn};
    use crate::storage::batch::ControlType;
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut leader = Log::create(dirs.0.path(), config(1 << 20), 0).expect("leader");
    append_txn(&mut leader, 7, 0, 2); // 0..1
    append_txn(&mut leader, 7, 2, 2); // 2..3
    append_marker(&mut leader, 7, ControlType::Abort); // 4
    let mut follower = copy_of(&mut leader, dirs.1.path(), 1 << 20);
    follower.update_high_watermark(5);
    assert_eq!(follower.aborted_transactions(0, 5), vec![(7, 0)]);
    assert_eq!(follower.last_stable_offset(), 5);
    assert_eq!(follower.truncate_to(4).expect("truncate"), 4);
    // The marker is gone: the transaction is open again and nothing is aborted.
    assert!(follower.aborted_transactions(0, 5).is_empty());
    assert_eq!(follower.last_stable_offset(), 0);
    assert_eq!(follower.high_watermark(), 4);
}

#[test]
fn a_follower_that_led_without_appending_drops_its_epoch_and_stops_diverging() {
    use crate::replication::divergence::diverging;
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut leader = leader_with_epochs(dirs.0.path());
    let mut follower = copy_of(&mut leader, dirs.1.path(), 1 << 20);
    let end = follower.log_end_offset();
    // The follower led epoch 6 briefly and wrote nothing; the other broker leads epoch 7.
    follower.become_leader(6).expect("epoch");
    leader.become_leader(7).expect("epoch");
    let last = follower.epochs().latest().map(|e| e.epoch).expect("epoch");
    assert_eq!(last, 6);
    let (epoch, leader_end) = diverging(&leader, last, end).expect("diverged");
    assert_eq!((epoch, leader_end), (5, end));
    let (_, ours) = follower.end_offset_for_epoch(epoch);
    // Nothing to cut from the records, but epoch 6 goes.
    assert_eq!(follower.truncate_to(ours.min(leader_end)).expect("truncate"), end);
    assert_eq!(epochs_of(&follower).last(), Some(&(5, 15)));
    let last = follower.epochs().latest().map(|e| e.epoch).expect("epoch");
    assert_eq!(diverging(&leader, last, end), None);
}

#[test]
fn a_restarted_replica_takes_its_checkpointed_high_watermark_a_single_node_its_log_end() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = leader_with_epochs(dir.path());
    let end = leader.log_end_offset();
    drop(leader);
    let mut replica = reopen(dir.path(), 1 << 20);
    replica.restore_high_watermark(9);
    assert_eq!(replica.high_watermark(), end, "not known to be replicated yet");
    replica.set_replicated(true);
    assert_eq!(replica.high_watermark(), 9);
    // Alone again: everything it has is committed.
    replica.set_replicated(false);
    assert_eq!(replica.high_watermark(), end);
    // A checkpoint past the log end (the tail was lost) is capped at the end.
    let mut again = reopen(dir.path(), 1 << 20);
    again.restore_high_watermark(end + 100);
    again.set_replicated(true);
    assert_eq!(again.high_watermark(), end);
}
