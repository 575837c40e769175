use super::*;
use crate::storage::batch::tests::encode_batch;
use crate::storage::batch::{assign_offsets, BatchHeader, ControlType};
use crate::storage::loader::LogLoader;
use crate::storage::segment::file_name;
use kafka_protocol::records::Compression;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn append(log: &mut Log, count: usize, ts: i64) -> AppendInfo {
    let mut batch = encode_batch(count, ts, Compression::None).to_vec();
    log.append(&mut batch, ts).unwrap()
}

/// Offsets of the batches a read returns.
fn read_offsets(log: &mut Log, offset: i64, max: usize) -> Vec<i64> {
    let hw = log.high_watermark();
    read_offsets_of(log, offset, hw, max)
}

/// Offsets of the batches a read below `max_offset` returns.
fn read_offsets_below(log: &mut Log, offset: i64, max_offset: i64) -> Vec<i64> {
    read_offsets_of(log, offset, max_offset, 1 << 20)
}

fn read_offsets_of(log: &mut Log, offset: i64, max_offset: i64, max: usize) -> Vec<i64> {
    let Some(plan) = log.plan_read(offset, max_offset).unwrap() else {
        return vec![];
    };
    let bytes = plan.read(max, true).unwrap();
    let mut out = vec![];
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse_and_verify(&bytes[pos..]).unwrap();
        out.push(h.base_offset);
        pos += h.total_size();
    }
    out
}

fn load(dir: &Path, cfg: LogConfig, clean: bool, recovery_point: i64) -> (Log, crate::storage::loader::LoadReport) {
    LogLoader {
        dir,
        config: cfg,
        clean_shutdown: clean,
        recovery_point,
        log_start_offset: 0,
        now_ms: 0,
    }
    .load()
    .unwrap()
}

/// A transactional batch of `count` records from producer `pid`.
pub(super) fn append_txn(log: &mut Log, pid: i64, seq: i32, count: usize) -> AppendInfo {
    let mut batch = encode_batch(count, 1000, Compression::None).to_vec();
    // Producer id, epoch 0, sequence and the transactional bit, then the CRC again.
    batch[43..51].copy_from_slice(&pid.to_be_bytes());
    batch[51..53].copy_from_slice(&0i16.to_be_bytes());
    batch[53..57].copy_from_slice(&seq.to_be_bytes());
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x10;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&mut batch, 1000).unwrap()
}

pub(super) fn append_marker(log: &mut Log, pid: i64, kind: ControlType) -> AppendInfo {
    let mut batch = crate::storage::batch::control_batch(pid, 0, 0, kind, 1000);
    log.append(&mut batch, 1000).unwrap()
}

#[test]
fn open_transactions_hold_back_the_stable_offset_and_aborts_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
    append(&mut log, 2, 1000); // 0-1, plain
    append_txn(&mut log, 7, 0, 3); // 2-4, producer 7 (to be aborted)
    append(&mut log, 1, 1000); // 5, plain
    append_txn(&mut log, 8, 0, 2); // 6-7, producer 8 (to be committed)
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (8, 2));
    // read_committed stops before the open transaction.
    assert_eq!(read_offsets_below(&mut log, 0, 2), vec![0]);
    assert_eq!(append_marker(&mut log, 7, ControlType::Abort).base_offset, 8);
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(read_offsets_below(&mut log, 0, 6), vec![0, 2, 5]);
    assert_eq!(append_marker(&mut log, 8, ControlType::Commit).base_offset, 9);
    assert_eq!(log.last_stable_offset(), 10);
    assert_eq!(log.aborted_transactions(0, 10), vec![(7, 2)]);
    assert_eq!(log.aborted_transactions(9, 10), vec![], "ended before the fetch offset");
    assert_eq!(log.aborted_transactions(0, 2), vec![], "begins after the fetch's end");
    // A new transaction of producer 7 starts afresh.
    append_txn(&mut log, 7, 3, 1); // 10
    assert_eq!(log.last_stable_offset(), 10);

    // Kill -9 (no close): the index and the open transaction come back.
    drop(log);
    let (mut log, _) = load(dir.path(), config(1 << 20), false, 0);
    assert_eq!(log.aborted_transactions(0, 11), vec![(7, 2)]);
    assert_eq!(log.last_stable_offset(), 10);
    assert_eq!(read_offsets_below(&mut log, 0, 10), vec![0, 2, 5, 6, 8, 9]);
    {
        // (In a copy: the abort after an unclean restart is indexed too.)
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
        let (mut other, _) = load(copy.path(), config(1 << 20), false, 0);
        append_marker(&mut other, 7, ControlType::Abort);
        assert_eq!(other.aborted_transactions(0, 12), vec![(7, 2), (7, 10)]);
    }
    // Clean close: the snapshot carries the open transaction.
    let mut log = log;
    log.close().unwrap();
    drop(log);
    let (mut log, _) = load(dir.path(), config(1 << 20), true, 11);
    assert_eq!(log.aborted_transactions(0, 11), vec![(7, 2)]);
    assert_eq!(log.last_stable_offset(), 10);
    // The transaction left open is aborted after the restart.
    assert_eq!(append_marker(&mut log, 7, ControlType::Abort).base_offset, 11);
    assert_eq!(log.aborted_transactions(0, 12), vec![(7, 2), (7, 10)]);
    assert_eq!(log.last_stable_offset(), 12);
}

#[test]
fn append_assigns_offsets_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
    assert_eq!(append(&mut log, 3, 1000).base_offset, 0);
    assert_eq!(append(&mut log, 2, 2000).base_offset, 3);
    assert_eq!(append(&mut log, 4, 3000).base_offset, 5);
    assert_eq!(log.log_end_offset(), 9);
    // From inside a batch: that whole batch comes back first.
    assert_eq!(read_offsets(&mut log, 4, 1 << 20), vec![3, 5]);
    assert_eq!(read_offsets(&mut log, 0, 1 << 20), vec![0, 3, 5]);
    // A tiny limit still returns the first batch whole.
    assert_eq!(read_offsets(&mut log, 0, 1), vec![0]);
    assert!(log.plan_read(9, 9).unwrap().is_none());
    assert!(matches!(log.plan_read(10, 9), Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn rolls_by_size_and_finds_offsets_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), config(400), 0).unwrap();
    for i in 0..20 {
        append(&mut log, 2, 1000 + i);
    }
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    let bases = log.segment_base_offsets();
    for base in &bases {
        assert!(dir.path().join(file_name(*base, ".log")).exists());
    }
    // Sealed segments have their indexes; the active one's come with its first entry.
    for base in &bases[..bases.len() - 1] {
        assert!(dir.path().join(file_name(*base, ".index")).exists());
        assert!(dir.path().join(file_name(*base, ".timeindex")).exists());
    }
    for target in [0, 1, 7, 22, 39] {
        let first = read_offsets(&mut log, target, 1)[0];
        assert!(first <= target && target < first + 2, "target {target} got {first}");
    }
    // Batch 9 holds offsets 18 and 19, stamped 1009 and 1010.
    assert_eq!(log.offset_for_timestamp(1010).unwrap(), Some((19, 1010)));
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
    assert_eq!(log.max_timestamp_record().unwrap(), Some((39, 1020)));
}

#[test]
fn recovery_truncates_a_torn_tail_and_keeps_everything_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), config(1 << 20), 0).unwrap();
    for _ in 0..10 {
        append(&mut log, 3, 1000);
    }
    drop(log);
    let path = dir.path().join(file_name(0, ".log"));
    let good_len = std::fs::metadata(&path).unwrap().len();
    // A crash mid-write: half a batch, then garbage.
    let mut half = encode_batch(3, 1000, Compression::None).to_vec();
    half.truncate(half.len() / 2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&half);
    std::fs::write(&path, &bytes).unwrap();

    let (mut log, report) = load(dir.path(), config(1 << 20), false, 0);
    assert_eq!(report.truncated_bytes, half.len() as u64);
    assert!(report.truncation_reason.is_some());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_offsets(&mut log, 27, 1 << 20), vec![27]);
    // Appends continue at the next offset.
    assert_eq!(append(&mut log, 1, 2000).base_offset, 30);

    // Random bytes (a bad CRC) are cut as well.
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    let mut next = encode_batch(2, 3000, Compression::None).to_vec();
    assign_offsets(&mut next, 31, 0, None);
    bytes.extend_from_slice(&next);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (log, report) = load(dir.path(), config(1 << 20), false, 0);
    assert!(report.truncation_reason.unwrap().contains("CRC"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len as u64);
    assert_eq!(log.log_end_offset(), 31);
}

#[test]
fn clean_restart_reads_only_the_tail_and_keeps_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), config(600), 0).unwrap();
    for i in 0..30 {
        let mut batch = encode_batch(2, 1000 + i, Compression::None).to_vec();
        // Make it an idempotent producer's batch: producer id 42, epoch 0, sequence 2i.
        batch[43..51].copy_from_slice(&42i64.to_be_bytes());
        batch[51..53].copy_from_slice(&0i16.to_be_bytes());
        batch[53..57].copy_from_slice(&(2 * i as i32).to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(&mut batch, 0).unwrap();
    }
    let segments = log.segment_count();
    log.close().unwrap();
    drop(log);
    let (mut log, report) = load(dir.path(), config(600), true, 0);
    assert_eq!(report.recovered_segments, 0);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.producers().entry(42).unwrap().batches.back().unwrap().last_seq, 59);
    assert_eq!(read_offsets(&mut log, 59, 1 << 20), vec![58]);
    // After a crash, only segments past the recovery point are scanned.
    drop(log);
    let (log, report) = load(dir.path(), config(600), false, 50);
    assert_eq!(report.recovered_segments, 1);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.producers().entry(42).unwrap().batches.back().unwrap().last_seq, 59);
}

#[test]
fn retention_deletes_whole_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(300);
    cfg.retention_ms = 10_000;
    let mut log = Log::create(dir.path(), cfg.clone(), 0).unwrap();
    for i in 0..20 {
        append(&mut log, 1, 1000 + i * 1000);
    }
    let before = log.segment_count();
    // At 25 s, batches stamped before 15 s are past retention.
    let deleted = log.apply_retention(25_000).unwrap();
    assert!(deleted > 0 && log.segment_count() == before - deleted);
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert!(matches!(log.plan_read(0, 20), Err(LogError::OffsetOutOfRange { .. })));
    assert!(!read_offsets(&mut log, start, 1).is_empty());

    // Size-based: keep at most ~one segment.
    log.config.retention_ms = -1;
    log.config.retention_bytes = 300;
    log.apply_retention(25_000).unwrap();
    assert!(log.size_bytes() <= 600, "size {}", log.size_bytes());
    assert_eq!(log.log_end_offset(), 20);

    // Everything expired: the active segment goes too and a new one starts at the end.
    log.config.retention_ms = 1;
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(append(&mut log, 1, 1_000_000).base_offset, 20);
}

#[test]
fn rolls_when_the_first_batch_is_older_than_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.segment_ms = 1000;
    let mut log = Log::create(dir.path(), cfg, 0).unwrap();
    append(&mut log, 1, 10_000);
    append(&mut log, 1, 10_500);
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 1, 11_001);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn delete_records_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), config(300), 0).unwrap();
    for i in 0..10 {
        append(&mut log, 1, i);
    }
    assert_eq!(log.delete_records_before(6).unwrap(), 6);
    assert!(matches!(log.plan_read(5, 10), Err(LogError::OffsetOutOfRange { .. })));
    assert!(log.segment_base_offsets()[0] <= 6);
    assert!(matches!(
        log.delete_records_before(11),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn log_append_time_rewrites_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.log_append_time = true;
    let mut log = Log::create(dir.path(), cfg, 0).unwrap();
    let mut batch = encode_batch(2, 5, Compression::None).to_vec();
    let info = log.append(&mut batch, 777_000).unwrap();
    assert_eq!(info.log_append_time, Some(777_000));
    let plan = log.plan_read(0, 2).unwrap().unwrap();
    let stored = plan.read(1 << 20, true).unwrap();
    let h = BatchHeader::parse_and_verify(&stored).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 777_000);
}

#[test]
fn a_pending_batch_is_stored_as_the_same_bytes_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.log_append_time = true;
    let mut log = Log::create(dir.path(), cfg, 0).unwrap();
    let sent = encode_batch(3, 5, Compression::Gzip).freeze();
    let mut pending = crate::storage::batch::PendingBatch::new(sent.clone()).unwrap();
    assert_eq!(log.append_pending(&mut pending, 777_000).unwrap().base_offset, 0);
    let mut copy = sent.to_vec();
    assert_eq!(log.append(&mut copy, 777_000).unwrap().base_offset, 3);
    let plan = log.plan_read(0, 6).unwrap().unwrap();
    let stored = plan.read(1 << 20, true).unwrap();
    let first = BatchHeader::parse_and_verify(&stored).unwrap();
    let second = BatchHeader::parse_and_verify(&stored[first.total_size()..]).unwrap();
    assert_eq!((first.base_offset, first.max_timestamp), (0, 777_000));
    assert_eq!((second.base_offset, second.max_timestamp), (3, 777_000));
    // The records after the header are the producer's, untouched.
    assert_eq!(&stored[61..first.total_size()], &sent[61..]);
}
