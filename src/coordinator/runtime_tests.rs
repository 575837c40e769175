//! The runtime over a real partition log: what operations write is what a
//! load reads back, the records asked to be replayed change the state, and a
//! failed write puts the shard back to what its log holds.

use super::*;
use crate::config::topic::LogConfig;
use crate::storage::LogManager;
use std::collections::BTreeMap;

/// A key-value shard: the latest value of each key, and the values written
/// in transactions still open, by producer.
#[derive(Default, Debug, PartialEq)]
struct Kv {
    values: BTreeMap<String, String>,
    pending: BTreeMap<i64, Vec<(String, String)>>,
    /// Changed by operations directly, never by records.
    touched: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct KvRecord(String, Option<String>);

impl Shard for Kv {
    type Record = KvRecord;

    fn replay(&mut self, r: &KvRecord, producer: Option<TxnProducer>, _now: i64) {
        match (producer, &r.1) {
            (Some(p), Some(v)) => self
                .pending
                .entry(p.producer_id)
                .or_default()
                .push((r.0.clone(), v.clone())),
            (None, Some(v)) => {
                self.values.insert(r.0.clone(), v.clone());
            }
            (_, None) => {
                self.values.remove(&r.0);
            }
        }
    }

    fn replay_marker(&mut self, producer_id: i64, commit: bool, _now: i64) {
        let done = self.pending.remove(&producer_id).unwrap_or_default();
        if commit {
            self.values.extend(done);
        }
    }

    fn encode(r: &KvRecord) -> (Bytes, Option<Bytes>) {
        (Bytes::from(r.0.clone()), r.1.clone().map(Bytes::from))
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<KvRecord, String> {
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
        Ok(KvRecord(text(key)?, value.map(text).transpose()?))
    }
}

fn set(key: &str, value: &str) -> KvRecord {
    KvRecord(key.into(), Some(value.into()))
}

#[tokio::test]
async fn what_operations_write_a_load_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogManager::open(&[dir.path().to_path_buf()]).unwrap();
    let (partition, _) = logs
        .open_partition("__state", 0, uuid::Uuid::new_v4(), LogConfig::default())
        .unwrap();
    let runtime = CoordinatorRuntime::new("__state", Kv::default);
    runtime.load(vec![partition.clone()], 1).await;
    assert_eq!(runtime.loaded(), vec![0]);
    assert_eq!(
        runtime.write(1, |_| CoordinatorResult::answer(())).await,
        Err(E::NotCoordinator.code())
    );

    // Replayed records change the state once written; persisted ones do not.
    let answer = runtime
        .write(0, |kv| {
            CoordinatorResult::replayed(vec![set("a", "1"), set("b", "2")], kv.values.len())
        })
        .await;
    assert_eq!(answer, Ok(0));
    runtime
        .write(0, |kv| {
            kv.touched += 1;
            kv.values.insert("c".into(), "3".into());
            CoordinatorResult::persisted(vec![set("c", "3")], ())
        })
        .await
        .unwrap();
    runtime
        .write(0, |_| CoordinatorResult::replayed(vec![KvRecord("b".into(), None)], ()))
        .await
        .unwrap();
    // Two transactions: one commits, one stays open.
    for (pid, key) in [(7, "t7"), (8, "t8")] {
        let producer = TxnProducer {
            producer_id: pid,
            producer_epoch: 0,
        };
        runtime
            .write(0, |_| CoordinatorResult {
                producer: Some(producer),
                ..CoordinatorResult::replayed(vec![set(key, "x")], ())
            })
            .await
            .unwrap();
    }
    let committed = TxnProducer {
        producer_id: 7,
        producer_epoch: 0,
    };
    runtime.write_marker(0, committed, true).await.unwrap();

    let live = runtime
        .read(0, |kv| (kv.values.clone(), kv.pending.clone()))
        .await
        .unwrap();
    assert_eq!(
        live.0.into_iter().collect::<Vec<_>>(),
        vec![
            ("a".into(), "1".into()),
            ("c".into(), "3".into()),
            ("t7".into(), "x".into())
        ]
    );
    assert_eq!(live.1.keys().copied().collect::<Vec<_>>(), vec![8]);

    // A second runtime loading the same partition gets the same state.
    let reloaded = CoordinatorRuntime::new("__state", Kv::default);
    reloaded.load_blocking(std::slice::from_ref(&partition), 1);
    let again = reloaded
        .read(0, |kv| (kv.values.clone(), kv.pending.clone()))
        .await
        .unwrap();
    let live = runtime
        .read(0, |kv| (kv.values.clone(), kv.pending.clone()))
        .await
        .unwrap();
    assert_eq!(again, live);

    // A write that cannot be appended (the log is gone) answers an error and
    // puts the shard back to what its log held.
    partition.log().mark_deleted();
    let failed = runtime
        .write(0, |kv| {
            kv.touched += 10;
            CoordinatorResult::persisted(vec![set("lost", "1")], ())
        })
        .await;
    assert_eq!(failed, Err(E::CoordinatorNotAvailable.code()));
    assert_eq!(runtime.read(0, |kv| kv.touched).await, Ok(0), "reloaded from the log");
    runtime.unload_all();
    assert!(runtime.loaded().is_empty() && runtime.partition_count() == 0);
}
