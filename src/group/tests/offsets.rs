//! Committed offsets, transactional offsets, group deletion, and loading.

use super::*;
use crate::coordinator::TxnProducer;
use crate::group::classic_group::GroupState;
use crate::group::membership::LeavingMember;
use crate::group::shard::{GroupConfig, GroupShard};
use kafka_protocol::ResponseError as E;

#[test]
fn offsets_committed_in_a_transaction_count_once_it_commits() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |t: &str, p: i32| t == "orders" && p == 0;
    let producer = |producer_id| TxnProducer {
        producer_id,
        producer_epoch: 0,
    };
    let codes = g.exec(&mut log, |s| {
        s.commit_txn_offsets(commit("eos", -1, "", &[("orders", 0, 5)]), producer(7), &exists, 1)
    });
    assert_eq!(codes, vec![0]);
    assert!(
        matches!(&log.entries[..], [Entry::Records(_, Some(p))] if p.producer_id == 7),
        "written as transactional records only"
    );
    assert!(g.has_pending_txn_offset("eos", "orders", 0));
    assert!(g.fetch_offsets("eos", None).is_empty(), "not visible before the commit");
    g.exec_marker(&mut log, 7, true, 2);
    assert!(!g.has_pending_txn_offset("eos", "orders", 0));
    let fetched = g.fetch_offsets("eos", None);
    assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
    // An aborted transaction's offsets are dropped.
    g.exec(&mut log, |s| {
        s.commit_txn_offsets(commit("eos", -1, "", &[("orders", 0, 9)]), producer(8), &exists, 3)
    });
    g.exec_marker(&mut log, 8, false, 4);
    let fetched = g.fetch_offsets("eos", None);
    assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
    // Validated as OffsetCommit is: an unknown member is refused.
    assert_eq!(
        g.exec(&mut log, |s| s.commit_txn_offsets(
            commit("eos", 3, "ghost", &[("orders", 0, 1)]),
            producer(9),
            &exists,
            5
        )),
        vec![E::UnknownMemberId.code()]
    );
}

#[test]
fn offsets_commit_fetch_survive_a_reload_and_expire() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |t: &str, p: i32| t == "orders" && (0..3).contains(&p);
    // A simple group (no membership) commits at generation -1.
    let codes = g.exec(&mut log, |s| {
        s.commit_offsets(
            commit(
                "simple",
                -1,
                "",
                &[("orders", 0, 10), ("orders", 1, 20), ("nope", 0, 1)],
            ),
            &exists,
            0,
        )
    });
    assert_eq!(codes, vec![0, 0, E::UnknownTopicOrPartition.code()]);
    let fetched = g.fetch_offsets("simple", Some(&[("orders".to_string(), vec![0, 1, 2])]));
    let got: Vec<(i32, Option<i64>)> = fetched[0]
        .1
        .iter()
        .map(|(p, o)| (*p, o.as_ref().map(|o| o.offset)))
        .collect();
    assert_eq!(got, vec![(0, Some(10)), (1, Some(20)), (2, None)]);
    assert_eq!(fetched[0].1[0].1.as_ref().unwrap().metadata, "meta-10");
    // Membership rules for a managed group.
    let (a, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    let codes = g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", 1, &a, &[("orders", 0, 5)]), &exists, 0)
    });
    assert_eq!(codes, vec![E::RebalanceInProgress.code()], "not yet synced");
    later(g.exec(&mut log, |s| s.sync(sync_req(&a, 1, &[(&a, "x")]), 0)))
        .try_recv()
        .unwrap();
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(
            commit("g", 1, &a, &[("orders", 0, 5)]),
            &exists,
            0
        )),
        vec![0]
    );
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(
            commit("g", 0, &a, &[("orders", 0, 6)]),
            &exists,
            0
        )),
        vec![E::IllegalGeneration.code()]
    );
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(
            commit("g", -1, "", &[("orders", 0, 6)]),
            &exists,
            0
        )),
        vec![E::UnknownMemberId.code()],
        "admin commits need an inactive group"
    );
    let mut big = commit("g", 1, &a, &[("orders", 0, 7)]);
    big.offsets[0].4 = Some("x".repeat(5000));
    assert_eq!(
        g.exec(&mut log, |s| s.commit_offsets(big, &exists, 0)),
        vec![E::OffsetMetadataTooLarge.code()]
    );

    // A restart reads the same state back.
    let mut reloaded = log.reload(0, 1000);
    assert_eq!(reloaded.group("g").unwrap().state, GroupState::Stable);
    assert!(reloaded.group("g").unwrap().members.contains_key(&a));
    assert_eq!(reloaded.heartbeat("g", 1, &a, None, 1000), 0);
    let o = reloaded.fetch_offsets("g", None);
    assert_eq!((o[0].0.as_str(), o[0].1[0].1.as_ref().unwrap().offset), ("orders", 5));
    assert_eq!(reloaded.fetch_offsets("simple", None)[0].1.len(), 2);

    // Offsets of the simple group expire a retention period after their commit.
    let retention = GroupConfig::default().offsets_retention_ms;
    assert_eq!(reloaded.exec(&mut log, |s| s.expire_offsets(retention - 1)), 0);
    assert_eq!(reloaded.exec(&mut log, |s| s.expire_offsets(retention)), 2);
    assert!(reloaded.group("simple").is_none());
}

#[test]
fn delete_group_needs_an_empty_group_and_leaves_tombstones() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |_: &str, _: i32| true;
    let (a, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    assert_eq!(g.exec(&mut log, |s| s.delete_group("g")), E::NonEmptyGroup.code());
    assert_eq!(
        g.exec(&mut log, |s| s.delete_group("absent")),
        E::GroupIdNotFound.code()
    );
    g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: a,
                instance_id: None,
            }],
            0,
        )
    });
    g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", -1, "", &[("t", 0, 1)]), &exists, 0)
    });
    assert_eq!(g.exec(&mut log, |s| s.delete_group("g")), 0);
    assert!(g.group("g").is_none());
    let reloaded = log.reload(0, 0);
    assert!(reloaded.group("g").is_none(), "nothing of the group survives a reload");
}

/// What a group keeps across a restart: generation, protocol, leader,
#[test]
fn loading_replays_the_records_into_the_same_state() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let exists = |_: &str, _: i32| true;
    let (a, b) = stable_pair(&mut g, &mut log);
    g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", 2, &a, &[("orders", 0, 10), ("orders", 1, 11)]), &exists, 1)
    });
    g.exec(&mut log, |s| {
        s.commit_offsets(commit("simple", -1, "", &[("t", 0, 1), ("t", 1, 2)]), &exists, 2)
    });
    let producer = |producer_id| TxnProducer {
        producer_id,
        producer_epoch: 0,
    };
    // One transaction commits, one aborts, one stays open.
    for (pid, offset) in [(7, 20), (8, 30), (9, 40)] {
        let req = commit("eos", -1, "", &[("orders", 0, offset)]);
        g.exec(&mut log, |s| s.commit_txn_offsets(req, producer(pid), &exists, 3));
    }
    g.exec_marker(&mut log, 7, true, 4);
    g.exec_marker(&mut log, 8, false, 4);
    let (_, codes) = g.exec(&mut log, |s| s.delete_offsets("simple", &[("t".to_string(), 1)]));
    assert_eq!(codes, vec![0]);
    // b leaves; a rejoins alone and syncs: a new generation.
    g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: b.clone(),
                instance_id: None,
            }],
            5,
        )
    });
    later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 6)))
        .try_recv()
        .unwrap();
    later(g.exec(&mut log, |s| s.sync(sync_req(&a, 3, &[(&a, "everything")]), 7)))
        .try_recv()
        .unwrap();
    let live = durable(&g);
    assert!(live.iter().any(|l| l.starts_with("g Stable gen=3")), "{live:#?}");
    assert!(live.iter().any(|l| l.starts_with("pending 9")), "{live:#?}");
    assert_eq!(durable(&log.reload(0, 8)), live);
}

/// members with their assignments, committed offsets.
fn durable(g: &GroupShard) -> Vec<String> {
    let mut out: Vec<String> = g
        .groups
        .values()
        .map(|group| {
            let members: Vec<String> = group
                .members
                .values()
                .map(|m| format!("{}={:?}", m.id, m.assignment))
                .collect();
            format!(
                "{} {:?} gen={} {:?} leader={:?} members={members:?} offsets={:?}",
                group.id, group.state, group.generation, group.protocol, group.leader, group.offsets
            )
        })
        .collect();
    out.sort();
    let mut pending: Vec<String> = g
        .pending_txn
        .iter()
        .map(|(p, o)| format!("pending {p} {o:?}"))
        .collect();
    pending.sort();
    out.extend(pending);
    out
}

#[test]
fn txn_offset_commits_without_a_member_are_taken_by_an_active_group() {
    // TxnOffsetCommit v0-v2 carry no member or generation: Kafka commits them.
    let (mut g, mut log) = (groups(0), MemLog::default());
    stable_pair(&mut g, &mut log);
    let exists = |t: &str, p: i32| t == "orders" && p == 0;
    let producer = TxnProducer {
        producer_id: 3,
        producer_epoch: 0,
    };
    let txn = g.exec(&mut log, |s| {
        s.commit_txn_offsets(commit("g", -1, "", &[("orders", 0, 5)]), producer, &exists, 1)
    });
    assert_eq!(txn, vec![0]);
    // A plain OffsetCommit from outside the group is still refused.
    let plain = g.exec(&mut log, |s| {
        s.commit_offsets(commit("g", -1, "", &[("orders", 0, 5)]), &exists, 1)
    });
    assert_eq!(plain, vec![E::UnknownMemberId.code()]);
}
