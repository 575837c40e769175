//! The cleaner's tests: here the basics; `bounded` for a full offset map,
//! `crash` for a swap interrupted, `state_topic` for the internal topics'
//! records.

mod bounded;
mod crash;
mod state_topic;

use super::*;
use crate::config::topic::LogConfig;
use crate::storage::batch::{BatchHeader, ControlType};
use crate::storage::loader::LogLoader;
use crate::storage::segment::file_name;
use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use kafka_protocol::records::{TimestampType, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE};
use std::sync::Arc;

pub(super) const NOW: i64 = 1_700_000_000_000;

pub(super) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 30,
        index_interval_bytes: 100,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 86_400_000,
        ..LogConfig::default()
    }
}

/// One batch of (key, value) records.
pub(super) fn append(log: &mut Log, records: &[(&str, Option<&str>)], ts: i64, compression: Compression) {
    append_from(log, records, ts, compression, None);
}

/// One batch, from transactional producer `(id, first sequence)` if given.
pub(super) fn append_from(
    log: &mut Log,
    records: &[(&str, Option<&str>)],
    ts: i64,
    compression: Compression,
    producer: Option<(i64, i32)>,
) {
    let (producer_id, producer_epoch, first_sequence) = match producer {
        Some((id, seq)) => (id, 0, seq),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_sequence + i as i32, // one batch: offset - sequence is the same for all
            timestamp: ts,
            key: Some(Bytes::from(k.to_string())),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut batch = crate::storage::batch::tests::encode_records(&records, compression).to_vec();
    log.append(&mut batch, ts).expect("append");
}

pub(super) fn append_marker(log: &mut Log, producer_id: i64, kind: ControlType) {
    let mut batch = crate::storage::batch::control_batch(producer_id, 0, 0, kind, NOW);
    log.append(&mut batch, NOW).expect("marker");
}

/// Every record from the start: (offset, key, value).
pub(super) fn read_all(log: &mut Log) -> Vec<(i64, String, Option<String>)> {
    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(plan) = log.plan_read(offset, log.high_watermark()).expect("plan") {
        let bytes = plan.read(usize::MAX, true).expect("read");
        if bytes.is_empty() {
            break;
        }
        let mut at = 0;
        while at < bytes.len() {
            let header = BatchHeader::parse_and_verify(&bytes[at..]).expect("valid batch");
            let mut batch = bytes.slice(at..at + header.total_size());
            let records = if header.is_control() {
                vec![]
            } else {
                RecordBatchDecoder::decode(&mut batch).expect("decode").records
            };
            for r in records {
                out.push((r.offset, text(r.key).unwrap_or_default(), text(r.value)));
            }
            offset = header.next_offset();
            at += header.total_size();
        }
    }
    out
}

pub(super) fn clean(p: &Partition, now_ms: i64) -> Result<Option<CleanReport>, LogError> {
    super::clean(p, now_ms, DEFAULT_DEDUPE_BUFFER_SIZE)
}

/// Closes the log and opens it again, as a restart does (nothing is known clean).
pub(super) fn restart(p: Partition, config: LogConfig) -> Partition {
    let dir = p.log().dir().to_path_buf();
    p.log().close().expect("close");
    drop(p);
    let (log, _) = LogLoader {
        dir: &dir,
        config,
        clean_shutdown: true,
        recovery_point: 0,
        log_start_offset: 0,
        now_ms: NOW,
    }
    .load()
    .expect("load");
    partition(log)
}

pub(super) fn partition(log: Log) -> Partition {
    Partition::new("t", 0, log, Arc::new(tokio::sync::Notify::new()))
}

pub(super) fn seen(p: &Partition) -> Vec<(i64, String, Option<String>)> {
    read_all(&mut p.log())
}

#[test]
fn keeps_the_latest_record_of_each_key_at_its_offset() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::create(dir.path(), config(), NOW).expect("log");
        append(&mut log, &[("a", Some("a1")), ("b", Some("b1"))], NOW, compression); // 0, 1
        append(&mut log, &[("a", Some("a2")), ("c", Some("c1"))], NOW, compression); // 2, 3
        log.roll(NOW).expect("roll");
        append(&mut log, &[("b", Some("b2")), ("c", None)], NOW, compression); // 4, 5
        log.roll(NOW).expect("roll");
        append(&mut log, &[("a", Some("a3"))], NOW, compression); // 6: active, not cleaned
        let p = partition(log);

        let report = clean(&p, NOW + 1).expect("clean").expect("work done");
        // Both closed segments, cleaned into one.
        assert_eq!((report.segments_rewritten, report.records_removed), (2, 3));
        assert!(report.bytes_after < report.bytes_before);
        assert_eq!(p.log().segment_base_offsets(), vec![0, 6]);
        assert_eq!(
            seen(&p),
            vec![
                (2, "a".into(), Some("a2".into())),
                (4, "b".into(), Some("b2".into())),
                (5, "c".into(), None),
                (6, "a".into(), Some("a3".into())),
            ],
            "{compression:?}"
        );
        // Nothing new is dirty: nothing to do.
        assert_eq!(clean(&p, NOW + 2).expect("clean"), None);
        assert_eq!(p.log().log_end_offset(), 7);

        // Kept across a restart on the files, indexes included.
        p.log().close().expect("close");
        drop(p);
        let (mut log, _) = LogLoader {
            dir: dir.path(),
            config: config(),
            clean_shutdown: false,
            recovery_point: 0,
            log_start_offset: 0,
            now_ms: NOW,
        }
        .load()
        .expect("load");
        assert_eq!(read_all(&mut log).len(), 4);
        assert_eq!(log.log_end_offset(), 7);
        assert!(!dir.path().join(STAGING_DIR).exists());
    }
}

#[test]
fn deletes_go_after_delete_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(
        dir.path(),
        LogConfig {
            delete_retention_ms: 1000,
            ..config()
        },
        NOW,
    )
    .expect("log");
    append(
        &mut log,
        &[("a", Some("a1")), ("b", Some("b1"))],
        NOW,
        Compression::None,
    );
    append(&mut log, &[("a", None)], NOW, Compression::None);
    log.roll(NOW).expect("roll");
    append(&mut log, &[("z", Some("z1"))], NOW, Compression::None);
    let p = partition(log);
    clean(&p, NOW + 10).expect("clean");
    assert_eq!(
        seen(&p),
        vec![
            (1, "b".into(), Some("b1".into())),
            (2, "a".into(), None),
            (3, "z".into(), Some("z1".into()))
        ]
    );
    let p = restart(
        p,
        LogConfig {
            delete_retention_ms: 1000,
            ..config()
        },
    );
    clean(&p, NOW + 5000).expect("clean");
    assert_eq!(
        seen(&p),
        vec![(1, "b".into(), Some("b1".into())), (3, "z".into(), Some("z1".into()))]
    );
}

#[test]
fn only_compacted_logs_old_enough_and_dirty_enough_are_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(
        dir.path(),
        LogConfig {
            compact: false,
            delete: true,
            ..config()
        },
        NOW,
    )
    .expect("log");
    append(
        &mut log,
        &[("a", Some("a1")), ("a", Some("a2"))],
        NOW,
        Compression::None,
    );
    log.roll(NOW).expect("roll");
    let p = partition(log);
    assert_eq!(clean(&p, NOW).expect("clean"), None, "delete policy");
    p.log().set_config(LogConfig {
        min_compaction_lag_ms: 60_000,
        ..config()
    });
    assert_eq!(clean(&p, NOW + 1000).expect("clean"), None, "younger than the lag");
    p.log().set_config(config());
    assert_eq!(
        clean(&p, NOW + 1000).expect("clean").map(|r| r.records_removed),
        Some(1)
    );
    assert_eq!(seen(&p), vec![(1, "a".into(), Some("a2".into()))]);
}

#[test]
fn a_crash_between_the_renames_leaves_a_readable_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(dir.path(), config(), NOW).expect("log");
    for i in 0..50 {
        append(
            &mut log,
            &[("a", Some(&format!("a{i}"))), ("b", Some("b"))],
            NOW + i,
            Compression::None,
        );
    }
    log.roll(NOW + 100).expect("roll");
    append(&mut log, &[("z", Some("z"))], NOW + 100, Compression::None);
    let p = partition(log);
    clean(&p, NOW + 200).expect("clean").expect("work done");
    p.log().close().expect("close");
    drop(p);
    // As if the crash came after the new log was renamed in, before its indexes were;
    // and with a staging directory left behind.
    for suffix in [".index", ".timeindex"] {
        std::fs::remove_file(dir.path().join(file_name(0, suffix))).expect("index there");
    }
    std::fs::create_dir_all(dir.path().join(STAGING_DIR)).expect("mkdir");
    std::fs::write(dir.path().join(STAGING_DIR).join(file_name(0, ".log")), b"partial").expect("write");
    let (mut log, _) = LogLoader {
        dir: dir.path(),
        config: config(),
        clean_shutdown: true,
        recovery_point: 101,
        log_start_offset: 0,
        now_ms: NOW,
    }
    .load()
    .expect("load");
    assert!(!dir.path().join(STAGING_DIR).exists());
    assert_eq!(
        read_all(&mut log),
        vec![
            (98, "a".into(), Some("a49".into())),
            (99, "b".into(), Some("b".into())),
            (100, "z".into(), Some("z".into()))
        ]
    );
    assert_eq!(
        log.offset_for_timestamp(NOW + 49).expect("lookup").map(|(o, _)| o),
        Some(98)
    );
}

#[test]
fn aborted_records_go_committed_ones_count_and_open_transactions_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(dir.path(), config(), NOW).expect("log");
    append(
        &mut log,
        &[("a", Some("a0")), ("b", Some("b0"))],
        NOW,
        Compression::None,
    ); // 0, 1
    append_from(&mut log, &[("a", Some("aborted"))], NOW, Compression::Lz4, Some((9, 0))); // 2
    append_marker(&mut log, 9, ControlType::Abort); // 3
    append_from(
        &mut log,
        &[("b", Some("committed")), ("c", Some("c0"))],
        NOW,
        Compression::None,
        Some((9, 1)),
    ); // 4, 5
    append_marker(&mut log, 9, ControlType::Commit); // 6
    log.roll(NOW).expect("roll");
    append_from(&mut log, &[("c", Some("open"))], NOW, Compression::None, Some((10, 0))); // 7
    log.roll(NOW).expect("roll");
    append(&mut log, &[("z", Some("z"))], NOW, Compression::None); // 8
    let p = partition(log);
    assert_eq!(p.log().last_stable_offset(), 7);

    let report = clean(&p, NOW + 1).expect("clean").expect("work done");
    // The segment holding the open transaction is past the last stable offset: not cleaned.
    assert_eq!((report.segments_rewritten, report.records_removed), (1, 2));
    assert_eq!(
        seen(&p),
        vec![
            (0, "a".into(), Some("a0".into())),
            (4, "b".into(), Some("committed".into())),
            (5, "c".into(), Some("c0".into())),
            (7, "c".into(), Some("open".into())),
            (8, "z".into(), Some("z".into())),
        ]
    );
    // The markers stay, so read_committed readers and producer state still see them.
    let markers: Vec<i64> = {
        let mut log = p.log();
        let plan = log.plan_read(0, 7).expect("plan").expect("data");
        let bytes = plan.read(usize::MAX, true).expect("read");
        let mut at = 0;
        let mut found = vec![];
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).expect("batch");
            if h.is_control() {
                found.push(h.base_offset);
            }
            at += h.total_size();
        }
        found
    };
    assert_eq!(markers, vec![3, 6]);
}
