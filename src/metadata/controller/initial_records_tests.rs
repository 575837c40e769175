//! A new cluster's bootstrap records (the format step's SCRAM credentials)
//! come first in its metadata log even when something else is written first
//! (a broker registering as soon as there is a leader), and only once.

use super::*;
use crate::metadata::records::ConfigResource;
use crate::quorum::{Quorum, QuorumConfig};

fn config(value: &str) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::Broker(None),
        name: "k".into(),
        value: Some(value.into()),
    }
}

/// A controller over a one-voter quorum in `dir` (it leads without a
/// network), whose publications count as published at once.
pub(super) async fn one_voter_controller(
    dir: &std::path::Path,
    initial: Vec<MetadataRecord>,
) -> (Controller, Arc<Quorum>) {
    let (publications, mut received) = mpsc::unbounded_channel::<Publication>();
    let (published, watching) = watch::channel(-1i64);
    tokio::spawn(async move {
        while let Some(p) = received.recv().await {
            published.send_replace(p.image.offset);
        }
    });
    let quorum = Quorum::start(
        QuorumConfig {
            node_id: 1,
            voters: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
            directories: BTreeMap::new(),
            election_timeout: Duration::from_millis(200),
            snapshot_after_bytes: u64::MAX,
            snapshot_interval: None,
        },
        dir,
        Arc::new(MetadataImage::default()),
        publications.clone(),
    )
    .await
    .expect("quorum");
    let quorum = Arc::new(quorum);
    quorum.wait_for_leader(Duration::from_secs(10)).await.expect("a leader");
    let controller_config = ControllerConfig {
        node_id: 1,
        delete_topic_enable: true,
        default_partitions: 1,
        default_replication_factor: 1,
        static_configs: BTreeMap::new(),
    };
    let controller = Controller::over_quorum(controller_config, quorum.clone(), initial, publications, watching);
    (controller, quorum)
}

#[tokio::test]
async fn the_first_write_to_an_empty_log_writes_the_bootstrap_records_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (controller, quorum) = one_voter_controller(dir.path(), vec![config("bootstrap")]).await;
    controller
        .write(|image, _| {
            assert_eq!(image.offset, 0, "the op sees the bootstrap records written");
            ControllerResult::of(vec![config("asked")], ())
        })
        .await
        .expect("write");
    let image = quorum.image();
    assert_eq!(image.offset, 1, "bootstrap at 0, the op's record at 1");
    assert_eq!(
        image
            .configs_of(&ConfigResource::Broker(None))
            .get("k")
            .map(String::as_str),
        Some("asked")
    );

    controller
        .write(|_, _| ControllerResult::of(Vec::new(), ()))
        .await
        .expect("write");
    assert_eq!(quorum.image().offset, 1, "written once");
}
