use super::*;
use crate::share::state::batches::{self, StateBatch};

const LIMITS: ShareLimits = ShareLimits {
    delivery_count_limit: 2,
    record_lock_ms: 1000,
    max_in_flight: 2000,
};

fn batch(base: i64, last: i64) -> LogBatch {
    LogBatch {
        base_offset: base,
        last_offset: last,
        is_control: false,
    }
}

fn range(first: i64, last: i64, delivery_count: i16) -> AcquiredRange {
    AcquiredRange {
        first,
        last,
        delivery_count,
    }
}

#[test]
fn written_state_comes_back_with_held_records_available_again() {
    let mut p = SharePartition::new(0);
    p.acquire("a", &[batch(0, 4), batch(5, 9), batch(10, 14)], 500, &LIMITS, 0);
    assert_eq!(p.take_changes(), None, "nothing acknowledged yet");
    p.acknowledge("a", 0, 4, &[ACCEPT], &LIMITS, 0).expect("accept");
    p.acknowledge("a", 10, 14, &[RELEASE], &LIMITS, 0).expect("release");
    let state = p.take_changes().expect("changed");
    assert_eq!(p.take_changes(), None, "written once");
    let b = |first, last, state, count| StateBatch {
        first,
        last,
        state,
        count,
    };
    // 5..9 are still out with "a": written as available, delivered once.
    assert_eq!(state.start_offset, 5);
    assert_eq!(
        state.batches,
        vec![b(5, 9, batches::AVAILABLE, 1), b(10, 14, batches::AVAILABLE, 1)],
        "held and released records alike"
    );
    let mut back = SharePartition::from_state(state.start_offset, &state.batches, 0, 1);
    assert_eq!(back.next_fetch_offset(), 5);
    let again = back.acquire("b", &[batch(5, 9), batch(10, 14), batch(15, 19)], 500, &LIMITS, 0);
    assert_eq!(again, vec![range(5, 14, 2), range(15, 19, 1)]);

    // Gaps between written batches were never delivered.
    let gappy = SharePartition::from_state(
        0,
        &[b(0, 1, batches::ACKNOWLEDGED, 1), b(5, 6, batches::ARCHIVED, 2)],
        0,
        1,
    );
    assert_eq!((gappy.start_offset(), gappy.next_fetch_offset()), (2, 2));
    assert_eq!(gappy.done_above_start(), 2);
}

#[test]
fn accepted_records_move_the_start() {
    let mut p = SharePartition::new(0);
    let got = p.acquire("a", &[batch(0, 4), batch(5, 9)], 500, &LIMITS, 0);
    assert_eq!(got, vec![range(0, 9, 1)]);
    assert_eq!(p.next_fetch_offset(), 10);
    // Another member gets nothing of what a holds.
    assert!(p.acquire("b", &[batch(0, 4), batch(5, 9)], 500, &LIMITS, 0).is_empty());
    // b cannot acknowledge a's records.
    assert_eq!(
        p.acknowledge("b", 0, 4, &[ACCEPT], &LIMITS, 0),
        Err(AckError::InvalidRecordState)
    );
    p.acknowledge("a", 0, 4, &[ACCEPT], &LIMITS, 0).unwrap();
    assert_eq!(p.start_offset(), 5);
    // Accepting twice is refused.
    assert_eq!(
        p.acknowledge("a", 0, 4, &[ACCEPT], &LIMITS, 0),
        Err(AckError::InvalidRecordState)
    );
}

#[test]
fn released_and_expired_records_go_out_again_until_the_limit() {
    let mut p = SharePartition::new(0);
    p.acquire("a", &[batch(0, 9)], 500, &LIMITS, 0);
    // Per-offset types: 0-4 accepted, 5 released, 6-9 rejected.
    let types = [
        ACCEPT, ACCEPT, ACCEPT, ACCEPT, ACCEPT, RELEASE, REJECT, REJECT, REJECT, REJECT,
    ];
    p.acknowledge("a", 0, 9, &types, &LIMITS, 0).unwrap();
    assert_eq!(p.start_offset(), 5);
    assert_eq!(p.next_fetch_offset(), 5);
    assert_eq!(p.acquire("b", &[batch(0, 9)], 500, &LIMITS, 10), vec![range(5, 5, 2)]);
    // b never answers: the lock runs out, and 2 deliveries is the limit.
    assert!(p.expire_locks(10 + LIMITS.record_lock_ms, &LIMITS));
    assert_eq!(p.start_offset(), 10);
    assert_eq!(p.in_flight(), 0);
}

#[test]
fn a_member_leaving_gives_its_records_back() {
    let mut p = SharePartition::new(100);
    p.acquire("a", &[batch(100, 104)], 500, &LIMITS, 0);
    p.acquire("b", &[batch(105, 109)], 500, &LIMITS, 0);
    assert!(p.release_member("a", &LIMITS));
    assert_eq!(p.next_fetch_offset(), 100);
    assert_eq!(
        p.acquire("b", &[batch(100, 104), batch(105, 109)], 500, &LIMITS, 0),
        vec![range(100, 104, 2)]
    );
}

#[test]
fn control_batches_are_never_delivered_and_max_records_is_batch_aligned() {
    let mut p = SharePartition::new(0);
    let batches = [
        batch(0, 2),
        LogBatch {
            base_offset: 3,
            last_offset: 3,
            is_control: true,
        },
        batch(4, 9),
        batch(10, 19),
    ];
    assert_eq!(
        p.acquire("a", &batches, 5, &LIMITS, 0),
        vec![range(0, 2, 1), range(4, 9, 1)]
    );
    assert_eq!(p.next_fetch_offset(), 10);
    p.acknowledge("a", 0, 2, &[ACCEPT], &LIMITS, 0).unwrap();
    // The marker at 3 is done with, so the start moves past it.
    assert_eq!(p.start_offset(), 4);
    assert_eq!(
        p.acknowledge("a", 4, 9, &[ACCEPT, ACCEPT], &LIMITS, 0),
        Err(AckError::InvalidRequest)
    );
}
