//! The quorum's storage checked by openraft's own conformance suite (the
//! same checks openraft's bundled stores pass), and a reopen after writes.

use super::log_store::LogStore;
use super::state_machine::MetadataStateMachine;
use super::types::{QuorumTypes, StorageError};
use crate::metadata::image::MetadataImage;
use openraft::testing::{StoreBuilder, Suite};
use std::sync::Arc;

struct Builder;

impl StoreBuilder<QuorumTypes, LogStore, MetadataStateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, MetadataStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("log store");
        let (publications, _) = tokio::sync::mpsc::unbounded_channel();
        let machine = MetadataStateMachine::open(dir.path(), Arc::new(MetadataImage::default()), publications)
            .expect("state machine");
        Ok((dir, log, machine))
    }
}

#[test]
fn log_store_and_state_machine_pass_openraft_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

#[test]
fn election_timers_let_one_voter_stand_first_after_every_lease_ran_out() {
    use super::{ElectionTimers, QuorumConfig};
    use std::time::Duration;
    for t in [100u64, 1000, 5000] {
        for n in 1..=7u64 {
            let config = |id: u64| QuorumConfig {
                node_id: id,
                voters: (1..=n).map(|i| (i * 10, format!("127.0.0.1:{i}"))).collect(),
                directories: Default::default(),
                election_timeout: Duration::from_millis(t),
                snapshot_after_bytes: 1,
                snapshot_interval: None,
            };
            let timers: Vec<ElectionTimers> = (1..=n).map(|i| ElectionTimers::of(&config(i * 10))).collect();
            let longest_lease = timers.iter().map(|x| x.max_ms).max().unwrap_or(0);
            // When voter k stands at the earliest and latest: lease + timeout.
            let windows: Vec<(u64, u64)> = timers.iter().map(|x| (x.max_ms + x.min_ms, 2 * x.max_ms)).collect();
            for (x, (first, last)) in timers.iter().zip(&windows) {
                assert!(
                    x.heartbeat_ms < x.min_ms && x.min_ms < x.max_ms,
                    "{t} ms, {n} voters: {x:?}"
                );
                assert!(
                    *first > longest_lease,
                    "{t} ms, {n} voters: stands before a lease ran out"
                );
                assert!(
                    *first >= t * 19 / 20 && *last <= t * 3 / 2,
                    "{t} ms, {n} voters: {first}..{last}"
                );
            }
            for pair in windows.windows(2) {
                assert!(
                    pair[0].1 < pair[1].0,
                    "{t} ms, {n} voters: windows overlap: {windows:?}"
                );
            }
        }
    }
}
