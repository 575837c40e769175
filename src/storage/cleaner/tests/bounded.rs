//! A key map too small for the dirty section: each round cleans what fits
//! and the next carries on, until the log is as a big map would leave it.

use super::*;
use crate::storage::cleaner::offset_map::SLOT_BYTES;

/// A map of `slots` slots: 90% of them (rounded down) hold keys.
fn clean_with_slots(p: &Partition, now_ms: i64, slots: usize) -> CleanReport {
    super::super::clean(p, now_ms, slots * SLOT_BYTES)
        .expect("clean")
        .expect("work done")
}

fn keys(of: &[(i64, String, Option<String>)]) -> Vec<(i64, &str)> {
    of.iter().map(|(o, k, _)| (*o, k.as_str())).collect()
}

fn eager() -> LogConfig {
    LogConfig {
        min_cleanable_dirty_ratio: 0.01,
        ..config()
    }
}

#[test]
fn a_full_map_cleans_up_to_the_last_whole_segment_and_the_next_round_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(dir.path(), eager(), NOW).expect("log");
    let batch = |log: &mut Log, names: &[&str]| {
        let records: Vec<(&str, Option<&str>)> = names.iter().map(|k| (*k, Some("v"))).collect();
        append(log, &records, NOW, Compression::None);
        log.roll(NOW).expect("roll");
    };
    let first = ["k0", "k1", "k2", "k3", "k4", "k5"];
    let second = ["k6", "k7", "k8", "k9", "k10", "k11"];
    batch(&mut log, &first); // segment 0: 0..6
    batch(&mut log, &first); // segment 6: 6..12, replaces segment 0
    batch(&mut log, &second); // segment 12: 12..18, new keys
    batch(&mut log, &first); // segment 18: 18..24, replaces segment 6
    append(&mut log, &[("z", Some("z"))], NOW, Compression::None); // 24, active
    let p = partition(log);

    // 10 slots hold 9 keys: segments 0 and 6 (6 keys) fit whole, segment 12
    // does not. The two cleaned segments become one.
    let r = clean_with_slots(&p, NOW + 1, 10);
    assert_eq!((r.cleaned_to, r.segments_rewritten, r.records_removed), (12, 2, 6));
    assert_eq!(p.log().segment_base_offsets(), vec![0, 12, 18, 24]);
    assert_eq!(p.log().first_dirty_offset(), 12);
    assert_eq!(seen(&p).len(), 19);

    // From 12: segment 12 (6 keys) fits, segment 18 does not; segment 6 loses
    // the keys mapped from segment 18 so far.
    let r = clean_with_slots(&p, NOW + 2, 10);
    assert_eq!((r.cleaned_to, r.segments_rewritten, r.records_removed), (18, 2, 3));
    assert_eq!(p.log().segment_base_offsets(), vec![0, 18, 24]);

    // From 18: the rest fits.
    let r = clean_with_slots(&p, NOW + 3, 10);
    assert_eq!((r.cleaned_to, r.records_removed), (24, 3));
    assert_eq!(p.log().segment_base_offsets(), vec![0, 24]);
    let mut want: Vec<(i64, &str)> = second.iter().enumerate().map(|(i, k)| (12 + i as i64, *k)).collect();
    want.extend(first.iter().enumerate().map(|(i, k)| (18 + i as i64, *k)));
    want.push((24, "z"));
    assert_eq!(keys(&seen(&p)), want);
    // As one big map would have left it.
    assert_eq!(clean(&p, NOW + 4).expect("clean"), None, "nothing dirty is left");
}

#[test]
fn when_not_even_one_segment_fits_the_round_stops_mid_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = 1000;
    let mut log = Log::create(
        dir.path(),
        LogConfig {
            delete_retention_ms: retention,
            ..eager()
        },
        NOW,
    )
    .expect("log");
    let one = |log: &mut Log, key: &str, value: Option<&str>| append(log, &[(key, value)], NOW, Compression::None);
    one(&mut log, "a", Some("a0")); // 0
    one(&mut log, "b", Some("b1")); // 1
    one(&mut log, "a", Some("a2")); // 2
    one(&mut log, "c", Some("c3")); // 3
    one(&mut log, "d", None); // 4: a delete, old enough to go
    one(&mut log, "a", Some("a5")); // 5
    log.roll(NOW).expect("roll");
    one(&mut log, "z", Some("z")); // 6, active
    let p = partition(log);
    let late = NOW + retention + 1;

    // 3 slots hold 2 keys: a and b, then c does not fit at offset 3. Below 3
    // a0 goes; from 3 on nothing is touched, not even the expired delete.
    let r = clean_with_slots(&p, late, 3);
    assert_eq!((r.cleaned_to, r.records_removed), (3, 1));
    assert_eq!(
        keys(&seen(&p)),
        vec![(1, "b"), (2, "a"), (3, "c"), (4, "d"), (5, "a"), (6, "z")]
    );

    // From 3: c and d, then a does not fit at 5. d is the latest of its key
    // and expired: it goes. a2 stays (a5 was not mapped).
    let r = clean_with_slots(&p, late, 3);
    assert_eq!((r.cleaned_to, r.records_removed), (5, 1));
    assert_eq!(keys(&seen(&p)), vec![(1, "b"), (2, "a"), (3, "c"), (5, "a"), (6, "z")]);

    // From 5: a5 replaces a2.
    let r = clean_with_slots(&p, late, 3);
    assert_eq!((r.cleaned_to, r.records_removed), (6, 1));
    assert_eq!(keys(&seen(&p)), vec![(1, "b"), (3, "c"), (5, "a"), (6, "z")]);
}
