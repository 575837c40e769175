use super::*;
use crate::group::shard::GroupConfig;
use crate::group::streams_group::Subtopology;
use std::collections::BTreeSet;
use uuid::Uuid;

fn topics(with_internal: bool) -> TopicView {
    let mut topics = BTreeMap::from([("input".to_string(), (Uuid::from_u128(1), 2))]);
    if with_internal {
        topics.insert("app-repartition".into(), (Uuid::from_u128(2), 2));
        topics.insert("app-changelog".into(), (Uuid::from_u128(3), 2));
    }
    TopicView {
        topics,
        internal: BTreeSet::new(),
    }
}

fn topology() -> Topology {
    let internal = |name: &str| TopicInfo {
        name: name.into(),
        ..TopicInfo::default()
    };
    Topology {
        epoch: 0,
        subtopologies: vec![
            Subtopology {
                id: "0".into(),
                source_topics: vec!["input".into()],
                repartition_sink_topics: vec!["app-repartition".into()],
                ..Subtopology::default()
            },
            Subtopology {
                id: "1".into(),
                repartition_source_topics: vec![internal("app-repartition")],
                changelog_topics: vec![internal("app-changelog")],
                ..Subtopology::default()
            },
        ],
    }
}

fn join(member: &str) -> StreamsHeartbeat {
    StreamsHeartbeat {
        group_id: "app".into(),
        member_id: member.into(),
        rebalance_timeout_ms: 30_000,
        topology: Some(topology()),
        active: Some(Tasks::new()),
        standby: Some(Tasks::new()),
        warmup: Some(Tasks::new()),
        process_id: Some(format!("process-{member}")),
        settings: StreamsSettings {
            initial_rebalance_delay_ms: 0,
            ..StreamsSettings::default()
        },
        ..Default::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<&Tasks>) -> StreamsHeartbeat {
    StreamsHeartbeat {
        member_epoch: epoch,
        topology: None,
        rebalance_timeout_ms: -1,
        active: owned.cloned(),
        standby: owned.map(|_| Tasks::new()),
        warmup: owned.map(|_| Tasks::new()),
        process_id: None,
        ..join(member)
    }
}

fn count(t: &Tasks) -> usize {
    t.values().map(BTreeSet::len).sum()
}

#[test]
fn internal_topics_are_asked_for_and_tasks_move_only_once_revoked() {
    let mut s = GroupShard::new(GroupConfig::default());
    let first = s.streams_heartbeat(join("a"), &topics(false), 0).response;
    assert_eq!(first.error_code, 0);
    assert_eq!(
        first
            .topics_to_create
            .iter()
            .map(|t| (t.name.as_str(), t.partitions))
            .collect::<Vec<_>>(),
        vec![("app-changelog", 2), ("app-repartition", 2)]
    );
    assert_eq!(first.status.first().map(|s| s.0), Some(status::MISSING_INTERNAL_TOPICS));
    assert_eq!(
        first.tasks.as_ref().map(|t| count(&t.active)),
        Some(0),
        "nothing before the topics exist"
    );

    // The topics are there: a gets all four tasks (2 subtopologies x 2 partitions).
    let a = s
        .streams_heartbeat(beat("a", first.member_epoch, None), &topics(true), 10)
        .response;
    assert!(a.status.is_empty(), "{:?}", a.status);
    let a_tasks = a.tasks.expect("changed").active;
    assert_eq!(count(&a_tasks), 4);

    // b joins: it gets nothing until a gives up half.
    let b = s.streams_heartbeat(join("b"), &topics(true), 20).response;
    assert_eq!(count(&b.tasks.expect("on join").active), 0);
    let a2 = s
        .streams_heartbeat(beat("a", a.member_epoch, Some(&a_tasks)), &topics(true), 30)
        .response;
    let a_kept = a2.tasks.expect("revocation").active;
    assert_eq!(count(&a_kept), 2);
    assert_eq!(a2.member_epoch, a.member_epoch, "a stays at its epoch until it revoked");
    let b2 = s
        .streams_heartbeat(beat("b", b.member_epoch, Some(&Tasks::new())), &topics(true), 40)
        .response;
    assert!(b2.tasks.is_none_or(|t| count(&t.active) == 0), "a still holds them");
    let a3 = s
        .streams_heartbeat(beat("a", a2.member_epoch, Some(&a_kept)), &topics(true), 50)
        .response;
    assert!(a3.member_epoch > a.member_epoch);
    let b3 = s
        .streams_heartbeat(beat("b", b2.member_epoch, Some(&Tasks::new())), &topics(true), 60)
        .response;
    assert_eq!(count(&b3.tasks.expect("released").active), 2);

    // An epoch from the future is fenced; a session that runs out frees the tasks.
    let fenced = s
        .streams_heartbeat(beat("a", a3.member_epoch + 5, None), &topics(true), 70)
        .response;
    assert_eq!(fenced.error_code, E::FencedMemberEpoch.code());
    s.expire_streams_members(50 + StreamsSettings::default().session_timeout_ms as i64);
    let group = s.group("app").and_then(|g| g.streams.as_deref()).expect("group");
    assert_eq!(group.members.keys().collect::<Vec<_>>(), vec!["b"]);
}

#[test]
fn requests_kafka_refuses() {
    let mut no_topology = join("a");
    no_topology.topology = None;
    assert_eq!(
        validate(&no_topology),
        Err((
            E::InvalidRequest.code(),
            "Topology must be non-null when (re-)joining.".into()
        ))
    );
    let mut partial = beat("a", 3, None);
    partial.active = Some(Tasks::new());
    assert_eq!(
        validate(&partial).map_err(|e| e.1),
        Err("If one task-type is non-null, all must be non-null.".into())
    );
    let mut s = GroupShard::new(GroupConfig::default());
    let unknown = s.streams_heartbeat(beat("x", 1, None), &topics(true), 0).response;
    assert_eq!(unknown.error_code, E::GroupIdNotFound.code());
}

#[test]
fn a_reloaded_group_keeps_its_topology_members_and_tasks() {
    use crate::group::tests::{Exec, MemLog};
    let mut log = MemLog::default();
    let mut s = GroupShard::new(GroupConfig::default());
    let a = s.exec(&mut log, |s| s.streams_heartbeat(join("a"), &topics(true), 0));
    let a_tasks = a.tasks.expect("on join").active;
    assert_eq!(count(&a_tasks), 4);
    let b = s.exec(&mut log, |s| s.streams_heartbeat(join("b"), &topics(true), 10));
    // a is asked to give two tasks up: the group is reloaded while it does.
    let a2 = s.exec(&mut log, |s| {
        s.streams_heartbeat(beat("a", a.member_epoch, Some(&a_tasks)), &topics(true), 20)
    });
    let a_kept = a2.tasks.expect("revocation").active;
    assert_eq!(count(&a_kept), 2);

    let mut r = log.reload(0, 30);
    let live = s.group("app").and_then(|g| g.streams.as_deref()).expect("live");
    let loaded = r.group("app").and_then(|g| g.streams.as_deref()).expect("loaded");
    assert_eq!(loaded.topology, live.topology);
    assert_eq!(
        (loaded.group_epoch, loaded.assignment_epoch),
        (live.group_epoch, live.assignment_epoch)
    );
    assert_eq!(loaded.target, live.target);
    for (id, m) in &live.members {
        let l = &loaded.members[id];
        assert_eq!(
            (
                l.member_epoch,
                l.previous_member_epoch,
                l.state,
                &l.active,
                &l.pending_revocation,
                &l.process_id
            ),
            (
                m.member_epoch,
                m.previous_member_epoch,
                m.state,
                &m.active,
                &m.pending_revocation,
                &m.process_id
            ),
            "member {id}"
        );
    }

    // The reloaded coordinator carries on: the same topics start no new
    // assignment, a finishes revoking and b gets its two tasks.
    let epoch = loaded.group_epoch;
    let a3 = r.exec(&mut log, |s| {
        s.streams_heartbeat(beat("a", a2.member_epoch, Some(&a_kept)), &topics(true), 40)
    });
    assert_eq!(a3.error_code, 0);
    assert!(a3.member_epoch > a.member_epoch);
    let b2 = r.exec(&mut log, |s| {
        s.streams_heartbeat(beat("b", b.member_epoch, Some(&Tasks::new())), &topics(true), 50)
    });
    assert_eq!(count(&b2.tasks.expect("released").active), 2);
    let group = r.group("app").and_then(|g| g.streams.as_deref()).expect("group");
    assert_eq!(group.group_epoch, epoch, "no new assignment for unchanged topics");

    // A member that leaves is gone after a reload too; so is a deleted group.
    let mut leave = beat("b", b2.member_epoch, None);
    leave.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
    r.exec(&mut log, |s| s.streams_heartbeat(leave, &topics(true), 60));
    let members = |s: &GroupShard| {
        s.group("app")
            .and_then(|g| g.streams.as_deref())
            .map(|sg| sg.members.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(members(&log.reload(0, 70)), Some(vec!["a".to_string()]));
    let mut leave = beat("a", a3.member_epoch, None);
    leave.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
    r.exec(&mut log, |s| s.streams_heartbeat(leave, &topics(true), 80));
    assert_eq!(r.exec(&mut log, |s| s.delete_group("app")), 0);
    assert!(log.reload(0, 90).group("app").is_none());
}
