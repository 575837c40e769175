//! A log shaped like `__consumer_offsets`: plain commits, transactional
//! commits ended by commit and abort markers, deletes, an open transaction.
//! Cleaning must leave what a coordinator loads (by replaying the records
//! and applying markers) unchanged.

use super::*;
use std::collections::BTreeMap;

/// What a coordinator loads: records applied in order, a transaction's
/// records held until its marker (applied on commit, dropped on abort).
fn replay(log: &mut Log) -> BTreeMap<String, String> {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let mut state = BTreeMap::new();
    let mut pending: BTreeMap<i64, Vec<(String, Option<String>)>> = BTreeMap::new();
    let apply = |state: &mut BTreeMap<String, String>, key: String, value: Option<String>| match value {
        Some(v) => state.insert(key, v),
        None => state.remove(&key),
    };
    let mut offset = log.log_start_offset();
    while let Some(plan) = log.plan_read(offset, log.high_watermark()).expect("plan") {
        let mut bytes = plan.read(usize::MAX, true).expect("read");
        if bytes.is_empty() {
            break;
        }
        while !bytes.is_empty() {
            let header = BatchHeader::parse_and_verify(&bytes).expect("valid batch");
            offset = header.next_offset();
            let mut batch = bytes.split_to(header.total_size());
            for r in RecordBatchDecoder::decode(&mut batch).expect("decode").records {
                let key = text(&r.key).unwrap_or_default();
                if r.control {
                    let commit = r.key.as_deref().is_some_and(|k| k.get(2..4) == Some(&[0, 1][..]));
                    for (k, v) in pending.remove(&r.producer_id).unwrap_or_default() {
                        if commit {
                            apply(&mut state, k, v);
                        }
                    }
                } else if r.transactional {
                    pending.entry(r.producer_id).or_default().push((key, text(&r.value)));
                } else {
                    apply(&mut state, key, text(&r.value));
                }
            }
        }
    }
    state
}

/// Control batches' offsets.
fn markers(log: &mut Log) -> Vec<i64> {
    let mut found = vec![];
    let mut offset = log.log_start_offset();
    while let Some(plan) = log.plan_read(offset, log.high_watermark()).expect("plan") {
        let bytes = plan.read(usize::MAX, true).expect("read");
        let mut at = 0;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).expect("batch");
            if h.is_control() {
                found.push(h.base_offset);
            }
            offset = h.next_offset();
            at += h.total_size();
        }
    }
    found
}

#[test]
fn the_internal_topics_records_load_the_same_after_cleaning() {
    let retention = 1000;
    let cfg = LogConfig {
        delete_retention_ms: retention,
        ..config()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(dir.path(), cfg.clone(), NOW).expect("log");
    let commit = |log: &mut Log, records: &[(&str, Option<&str>)]| append(log, records, NOW, Compression::None);
    let txn = |log: &mut Log, pid: i64, seq: i32, records: &[(&str, Option<&str>)]| {
        append_from(log, records, NOW, Compression::None, Some((pid, seq)))
    };
    commit(&mut log, &[("g1/t/0", Some("10")), ("g2/t/0", Some("5"))]); // 0, 1
    txn(&mut log, 5, 0, &[("g1/t/1", Some("30"))]); // 2, aborted below
    commit(&mut log, &[("g1/t/0", Some("20"))]); // 3
    append_marker(&mut log, 5, ControlType::Abort); // 4
    log.roll(NOW).expect("roll");
    txn(&mut log, 6, 0, &[("g1/t/1", Some("40")), ("g1/t/0", Some("50"))]); // 5, 6
    commit(&mut log, &[("g2/t/0", None)]); // 7: group g2 deleted
    append_marker(&mut log, 6, ControlType::Commit); // 8
    txn(&mut log, 5, 1, &[("g1/t/1", Some("60"))]); // 9, aborted below
    append_marker(&mut log, 5, ControlType::Abort); // 10
    log.roll(NOW).expect("roll");
    txn(&mut log, 7, 0, &[("g1/t/0", Some("open"))]); // 11: still open
    log.roll(NOW).expect("roll");
    commit(&mut log, &[("g3/t/0", Some("1"))]); // 12, active
    let p = partition(log);
    let loaded = replay(&mut p.log());
    assert_eq!(
        loaded,
        BTreeMap::from([
            ("g1/t/0".to_string(), "50".to_string()),
            ("g1/t/1".to_string(), "40".to_string()),
            ("g3/t/0".to_string(), "1".to_string()),
        ])
    );
    assert_eq!(p.log().last_stable_offset(), 11);

    // Aborted records (2, 9) and replaced ones (0, 3 by 6; 1 by the delete
    // at 7) go; the segment with the open transaction waits; markers stay.
    let report = clean(&p, NOW + 1).expect("clean").expect("work done");
    assert_eq!((report.segments_rewritten, report.records_removed), (2, 5));
    assert_eq!(replay(&mut p.log()), loaded);
    assert_eq!(
        keys_at(&seen(&p)),
        vec![
            (5, "g1/t/1"),
            (6, "g1/t/0"),
            (7, "g2/t/0"),
            (11, "g1/t/0"),
            (12, "g3/t/0")
        ]
    );
    assert_eq!(markers(&mut p.log()), vec![4, 8, 10]);
    assert_eq!(p.log().aborted_transactions(0, 13), vec![(5, 2), (5, 9)]);

    // After a restart (the aborted-transaction index of the merged segment
    // read back), and delete.retention.ms later, the delete goes too.
    let p = restart(p, cfg);
    assert_eq!(p.log().aborted_transactions(0, 13), vec![(5, 2), (5, 9)]);
    clean(&p, NOW + retention + 1).expect("clean").expect("work done");
    assert_eq!(replay(&mut p.log()), loaded);
    assert_eq!(
        keys_at(&seen(&p)),
        vec![(5, "g1/t/1"), (6, "g1/t/0"), (11, "g1/t/0"), (12, "g3/t/0")]
    );
    assert_eq!(markers(&mut p.log()), vec![4, 8, 10]);
}

fn keys_at(of: &[(i64, String, Option<String>)]) -> Vec<(i64, &str)> {
    of.iter().map(|(o, k, _)| (*o, k.as_str())).collect()
}
