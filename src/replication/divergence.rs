//! Where a fetcher's history and the leader's part (KIP-320): the fetcher
//! says which epoch its last fetched batch had; if the leader's log ends that
//! epoch before the fetch offset, or never had it, the fetcher diverged and
//! is told where the epoch ends here (Fetch's DivergingEpoch).

use crate::storage::Log;

/// (epoch, end offset) to send back when the fetcher diverged from `log`.
pub fn diverging(log: &Log, last_fetched_epoch: i32, fetch_offset: i64) -> Option<(i32, i64)> {
    // A log without epochs (written before they were kept) cannot tell.
    if last_fetched_epoch < 0 || log.epochs().latest().is_none() {
        return None;
    }
    let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
    (end < fetch_offset || epoch < last_fetched_epoch).then_some((epoch, end))
}
