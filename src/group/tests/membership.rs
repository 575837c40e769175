//! Joining, syncing, heartbeats, leaving and the timeouts of the classic protocol.

use super::*;
use crate::group::classic_group::GroupState;
use crate::group::membership::LeavingMember;
use kafka_protocol::ResponseError as E;

#[test]
fn a_lone_member_joins_syncs_and_heartbeats_without_waiting() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (id, reply) = join_new(&mut g, &mut log, 0);
    let joined = later(reply).try_recv().expect("answered at once with no initial delay");
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.as_str(), id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(state(&g), GroupState::CompletingRebalance);
    let synced = later(g.exec(&mut log, |s| s.sync(sync_req(&id, 1, &[(&id, "all")]), 10)))
        .try_recv()
        .unwrap();
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"all"[..]));
    assert_eq!(state(&g), GroupState::Stable);
    assert_eq!(g.heartbeat("g", 1, &id, None, 20), 0);
    assert_eq!(g.heartbeat("g", 0, &id, None, 20), E::IllegalGeneration.code());
    assert_eq!(g.heartbeat("g", 1, "nobody", None, 20), E::UnknownMemberId.code());
    // The assignment is persisted with the group: a reload has it.
    let reloaded = log.reload(0, 20);
    let group = reloaded.group("g").expect("the group is persisted");
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(&group.members[&id].assignment[..], b"all");
}

#[test]
fn a_second_member_triggers_a_rebalance_that_both_complete() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    later(g.exec(&mut log, |s| s.sync(sync_req(&a, 1, &[(&a, "p0-p5")]), 0)))
        .try_recv()
        .unwrap();

    let (b, b_join) = join_new(&mut g, &mut log, 100);
    let mut b_join = later(b_join);
    assert!(b_join.try_recv().is_err(), "B waits for A to rejoin");
    assert_eq!(state(&g), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat("g", 1, &a, None, 200), E::RebalanceInProgress.code());
    let a_join = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 300)))
        .try_recv()
        .unwrap();
    let b_join = b_join.try_recv().unwrap();
    assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
    assert_eq!(a_join.leader.as_str(), a);
    assert_eq!(a_join.members.len(), 2, "the leader sees every member");
    assert!(b_join.members.is_empty(), "followers see none");

    let mut b_sync = later(g.exec(&mut log, |s| s.sync(sync_req(&b, 2, &[]), 400)));
    assert!(b_sync.try_recv().is_err(), "B waits for the leader's assignment");
    let a_sync = later(g.exec(&mut log, |s| {
        s.sync(sync_req(&a, 2, &[(&a, "p0-p2"), (&b, "p3-p5")]), 500)
    }))
    .try_recv()
    .unwrap();
    assert_eq!(&a_sync.assignment[..], b"p0-p2");
    assert_eq!(&b_sync.try_recv().unwrap().assignment[..], b"p3-p5");
    assert_eq!(state(&g), GroupState::Stable);
    // A stale generation is refused.
    let stale = now_reply(g.exec(&mut log, |s| s.sync(sync_req(&b, 1, &[]), 600)));
    assert_eq!(stale.error_code, E::IllegalGeneration.code());
}

/// Two members, stable at generation 2; returns their ids.
#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, b) = stable_pair(&mut g, &mut log);
    assert_eq!(g.heartbeat("g", 2, &a, None, 9_000), 0);
    g.exec(&mut log, |s| s.tick(9_500));
    assert_eq!(g.group("g").unwrap().members.len(), 2, "B is within its session");
    g.exec(&mut log, |s| s.tick(SESSION as i64 + 1));
    assert!(!g.group("g").unwrap().members.contains_key(&b));
    assert_eq!(state(&g), GroupState::PreparingRebalance);
    let joined = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 10_100)))
        .try_recv()
        .unwrap();
    assert_eq!((joined.generation_id, joined.members.len()), (3, 1));
}

#[test]
fn leaving_rebalances_the_rest_at_once() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, b) = stable_pair(&mut g, &mut log);
    let (top, per) = g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: b.clone(),
                instance_id: None,
            }],
            100,
        )
    });
    assert_eq!((top, per), (0, vec![0]));
    assert_eq!(state(&g), GroupState::PreparingRebalance);
    let joined = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 200)))
        .try_recv()
        .unwrap();
    assert_eq!(joined.members.len(), 1);
    let (_, per) = g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: "ghost".into(),
                instance_id: None,
            }],
            300,
        )
    });
    assert_eq!(per, vec![E::UnknownMemberId.code()]);
    // The last member leaving empties the group.
    g.exec(&mut log, |s| {
        s.leave(
            "g",
            &[LeavingMember {
                member_id: a,
                instance_id: None,
            }],
            400,
        )
    });
    assert_eq!(state(&g), GroupState::Empty);
}

#[test]
fn the_initial_delay_waits_for_more_members() {
    let (mut g, mut log) = (groups(3000), MemLog::default());
    let (_, a) = join_new(&mut g, &mut log, 0);
    let mut a = later(a);
    let (_, b) = join_new(&mut g, &mut log, 1000);
    let mut b = later(b);
    g.exec(&mut log, |s| s.tick(2999));
    assert!(a.try_recv().is_err());
    // A member joined during the delay: it is extended once more.
    g.exec(&mut log, |s| s.tick(3000));
    assert!(a.try_recv().is_err());
    g.exec(&mut log, |s| s.tick(6000));
    let (a, b) = (a.try_recv().unwrap(), b.try_recv().unwrap());
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
}

#[test]
fn members_that_do_not_rejoin_or_sync_in_time_are_dropped() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let (a, b) = stable_pair(&mut g, &mut log);
    // A new member forces a rebalance; B never rejoins.
    let (_, c) = join_new(&mut g, &mut log, 1000);
    let mut c = later(c);
    let mut a_join = later(g.exec(&mut log, |s| s.join(join_req(&a, None, &["range"]), 1000)));
    g.heartbeat("g", 2, &b, None, 1000);
    g.exec(&mut log, |s| s.tick(1000 + REBALANCE as i64));
    assert_eq!(a_join.try_recv().unwrap().members.len(), 2, "A and C, without B");
    assert_eq!(c.try_recv().unwrap().generation_id, 3);
    assert!(!g.group("g").unwrap().members.contains_key(&b));
    // Nobody syncs: after the rebalance timeout the laggards go.
    g.exec(&mut log, |s| s.tick(1000 + 2 * REBALANCE as i64 + 1));
    assert!(g.group("g").unwrap().members.is_empty());
    assert_eq!(state(&g), GroupState::Empty);
}

#[test]
fn a_static_member_restarting_takes_its_place_without_a_rebalance() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let first = later(g.exec(&mut log, |s| s.join(join_req("", Some("pod-1"), &["range"]), 0)))
        .try_recv()
        .unwrap();
    let old = first.member_id.to_string();
    later(g.exec(&mut log, |s| s.sync(sync_req(&old, 1, &[(&old, "mine")]), 0)))
        .try_recv()
        .unwrap();
    // Restart: a new member id, same instance id, same generation, same assignment.
    let again = now_reply(g.exec(&mut log, |s| s.join(join_req("", Some("pod-1"), &["range"]), 5000)));
    assert_eq!((again.error_code, again.generation_id), (0, 1));
    let new = again.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(state(&g), GroupState::Stable);
    let mut sync = sync_req(&new, 1, &[]);
    sync.instance_id = Some("pod-1".into());
    assert_eq!(
        &now_reply(g.exec(&mut log, |s| s.sync(sync, 5100))).assignment[..],
        b"mine"
    );
    // The old incarnation is fenced.
    assert_eq!(
        g.heartbeat("g", 1, &old, Some("pod-1"), 5200),
        E::FencedInstanceId.code()
    );
    assert_eq!(g.heartbeat("g", 1, &new, Some("pod-1"), 5200), 0);
}

#[test]
fn bad_joins_get_kafka_errors() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let mut short = join_req("", None, &["range"]);
    short.session_timeout_ms = 100;
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(short, 0))).error_code,
        E::InvalidSessionTimeout.code()
    );
    let mut no_group = join_req("", None, &["range"]);
    no_group.group_id = String::new();
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(no_group, 0))).error_code,
        E::InvalidGroupId.code()
    );
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(join_req("stranger", None, &["range"]), 0))).error_code,
        E::UnknownMemberId.code()
    );
    let (_, reply) = join_new(&mut g, &mut log, 0);
    later(reply).try_recv().unwrap();
    let mut other_type = join_req("", None, &["range"]);
    other_type.protocol_type = "connect".into();
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(other_type, 0))).error_code,
        E::InconsistentGroupProtocol.code()
    );
    assert_eq!(
        now_reply(g.exec(&mut log, |s| s.join(join_req("", None, &["roundrobin"]), 0))).error_code,
        E::InconsistentGroupProtocol.code()
    );
}

#[test]
fn the_protocol_most_members_prefer_wins() {
    let (mut g, mut log) = (groups(0), MemLog::default());
    let mut a = join_req("", None, &["sticky", "range"]);
    a.require_known_member_id = false;
    let a = later(g.exec(&mut log, |s| s.join(a, 0))).try_recv().unwrap();
    assert_eq!(a.protocol_name.as_deref(), Some("sticky"));
    later(g.exec(&mut log, |s| {
        s.sync(
            {
                let mut s = sync_req(&a.member_id, 1, &[]);
                s.protocol_name = Some("sticky".into());
                s
            },
            0,
        )
    }))
    .try_recv()
    .unwrap();
    let mut b = join_req("", None, &["range", "sticky"]);
    b.require_known_member_id = false;
    let mut c = join_req("", None, &["range"]);
    c.require_known_member_id = false;
    let _b = later(g.exec(&mut log, |s| s.join(b, 1)));
    // "sticky" is not supported by C: only "range" is common.
    let _c = later(g.exec(&mut log, |s| s.join(c, 1)));
    let mut a_again = join_req(&a.member_id, None, &["sticky", "range"]);
    a_again.require_known_member_id = false;
    let joined = later(g.exec(&mut log, |s| s.join(a_again, 2))).try_recv().unwrap();
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
}
