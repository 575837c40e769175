use super::*;
use crate::group::shard::GroupConfig;

const T: Uuid = Uuid::from_u128(7);

fn topics() -> TopicView {
    TopicView {
        topics: BTreeMap::from([
            ("orders".to_string(), (T, 4)),
            ("orders-eu".to_string(), (Uuid::from_u128(8), 2)),
            ("__consumer_offsets".to_string(), (Uuid::from_u128(9), 50)),
        ]),
        internal: BTreeSet::from(["__consumer_offsets".to_string()]),
    }
}

fn shard() -> GroupShard {
    GroupShard::new(GroupConfig::default())
}

fn join(member: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["orders".into()]),
        owned: Some(Assignment::new()),
        version: 1,
        ..Default::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<&Assignment>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owned.cloned(),
        version: 1,
        ..Default::default()
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(|p| p.len()).sum()
}

fn hb(s: &mut GroupShard, req: ConsumerHeartbeat, now: i64) -> HeartbeatAnswer {
    s.consumer_heartbeat(req, &topics(), now).response
}

#[test]
fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
    let mut s = shard();
    let a = hb(&mut s, join("a"), 0);
    assert_eq!(a.error_code, 0);
    assert_eq!(a.member_epoch, 2);
    let a_parts = a.assignment.expect("assignment on join");
    assert_eq!(count(&a_parts), 4);

    let b = hb(&mut s, join("b"), 10);
    assert_eq!(b.member_epoch, 3);
    // Everything b is due is still a's.
    assert_eq!(b.assignment.map(|x| count(&x)), Some(0));

    // a is told to keep only two partitions; its epoch stays until it lets go.
    let a2 = hb(&mut s, beat("a", 2, Some(&a_parts)), 20);
    assert_eq!(a2.member_epoch, 2);
    let kept = a2.assignment.expect("revocation");
    assert_eq!(count(&kept), 2);
    assert_eq!(
        s.group("g").unwrap().consumer.as_ref().unwrap().state_name(),
        "Reconciling"
    );

    // a acknowledges: it moves to epoch 3.
    let a3 = hb(&mut s, beat("a", 2, Some(&kept)), 30);
    assert_eq!(a3.member_epoch, 3);
    // b now gets the two released partitions.
    let b2 = hb(&mut s, beat("b", 3, Some(&Assignment::new())), 40);
    let b_parts = b2.assignment.expect("released partitions");
    assert_eq!(count(&b_parts), 2);
    assert!(b_parts[&T].is_disjoint(&kept[&T]));
    let b3 = hb(&mut s, beat("b", 3, Some(&b_parts)), 50);
    assert_eq!(b3.assignment, None);
    assert_eq!(s.group("g").unwrap().consumer.as_ref().unwrap().state_name(), "Stable");
}

#[test]
fn wrong_epochs_are_fenced_and_unknown_members_refused() {
    let mut s = shard();
    let a = hb(&mut s, join("a"), 0);
    assert_eq!(
        hb(&mut s, beat("a", 5, None), 1).error_code,
        E::FencedMemberEpoch.code()
    );
    assert_eq!(hb(&mut s, beat("zz", 2, None), 1).error_code, E::UnknownMemberId.code());
    // Repeating the previous epoch with what it was given is fine.
    let parts = a.assignment.unwrap();
    assert_eq!(hb(&mut s, beat("a", 2, Some(&parts)), 2).error_code, 0);
}

#[test]
fn sessions_expire_and_partitions_move() {
    let mut s = shard();
    hb(&mut s, join("a"), 0);
    hb(&mut s, join("b"), 0);
    assert!(s.next_consumer_deadline().is_some());
    // Only b keeps heartbeating.
    hb(&mut s, beat("b", 3, Some(&Assignment::new())), 40_000);
    s.expire_consumer_members(46_000);
    let cg = s.group("g").unwrap().consumer.as_ref().unwrap();
    assert!(!cg.members.contains_key("a"));
    let b = hb(&mut s, beat("b", 3, Some(&Assignment::new())), 46_001);
    assert_eq!(b.assignment.map(|x| count(&x)), Some(4));
    assert_eq!(b.member_epoch, 4);
}

#[test]
fn a_static_member_returns_to_its_partitions() {
    let mut s = shard();
    let mut j = join("a");
    j.instance_id = Some("i-1".into());
    let first = hb(&mut s, j.clone(), 0).assignment.unwrap();
    let mut leave = beat("a", LEAVE_GROUP_STATIC_MEMBER_EPOCH, None);
    leave.instance_id = Some("i-1".into());
    assert_eq!(hb(&mut s, leave, 1).member_epoch, LEAVE_GROUP_STATIC_MEMBER_EPOCH);
    // A new process with the same instance id takes the place back.
    j.member_id = "a2".into();
    let back = hb(&mut s, j.clone(), 2);
    assert_eq!(back.error_code, 0);
    assert_eq!(back.member_epoch, 2);
    assert_eq!(back.assignment.unwrap(), first);
    // While it is there, another process with that instance id is refused.
    j.member_id = "a3".into();
    assert_eq!(hb(&mut s, j, 3).error_code, E::UnreleasedInstanceId.code());
}

#[test]
fn regex_subscriptions_match_whole_names_and_skip_internal_topics() {
    let mut s = shard();
    let mut j = join("a");
    j.subscribed_topic_names = None;
    j.subscribed_topic_regex = Some("orders.*".into());
    let a = hb(&mut s, j.clone(), 0).assignment.unwrap();
    assert_eq!(count(&a), 6);
    j.member_id = "b".into();
    j.subscribed_topic_regex = Some("(".into());
    assert_eq!(hb(&mut s, j.clone(), 0).error_code, E::InvalidRegularExpression.code());
    j.subscribed_topic_regex = Some(".*offsets".into());
    assert_eq!(hb(&mut s, j, 0).assignment.map(|x| count(&x)), Some(0));
}

#[test]
fn leaving_frees_the_partitions_and_bad_requests_are_refused() {
    let mut s = shard();
    hb(&mut s, join("a"), 0);
    let left = hb(&mut s, beat("a", LEAVE_GROUP_MEMBER_EPOCH, None), 1);
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    assert_eq!(s.group("g").unwrap().consumer.as_ref().unwrap().state_name(), "Empty");

    let mut bad = join("");
    assert_eq!(hb(&mut s, bad.clone(), 0).error_code, E::InvalidRequest.code());
    bad.member_id = "x".into();
    bad.server_assignor = Some("sticky".into());
    assert_eq!(hb(&mut s, bad.clone(), 0).error_code, E::UnsupportedAssignor.code());
    bad.server_assignor = None;
    bad.subscribed_topic_names = None;
    assert_eq!(hb(&mut s, bad, 0).error_code, E::InvalidRequest.code());
    assert_eq!(hb(&mut s, beat("x", 3, None), 0).error_code, E::UnknownMemberId.code());
}

#[test]
fn classic_members_join_a_consumer_group_with_members_in_it() {
    use crate::group::tests::join_req;
    let mut s = shard();
    hb(&mut s, join("a"), 0);
    // A new classic member first learns its id, as in a classic group...
    let reply = s.join(join_req("", None, &["range"]), 1).response;
    let crate::group::shard::Reply::Now(answer) = reply else {
        panic!("answered at once")
    };
    assert_eq!(answer.error_code, E::MemberIdRequired.code());
    // ...and its subscription must be the consumer protocol's (here it is not).
    let id = answer.member_id.to_string();
    let reply = s.join(join_req(&id, None, &["range"]), 1).response;
    let crate::group::shard::Reply::Now(answer) = reply else {
        panic!("answered at once")
    };
    assert_eq!(answer.error_code, E::UnknownServerError.code());
    // A group of another protocol type is refused.
    let mut other = join_req(&id, None, &["range"]);
    other.protocol_type = "connect".into();
    let crate::group::shard::Reply::Now(answer) = s.join(other, 1).response else {
        panic!("answered at once")
    };
    assert_eq!(answer.error_code, E::InconsistentGroupProtocol.code());
    // Once the consumer members are gone the group becomes classic again.
    hb(&mut s, beat("a", LEAVE_GROUP_MEMBER_EPOCH, None), 2);
    let reply = s.join(join_req("", None, &["range"]), 3).response;
    let crate::group::shard::Reply::Now(answer) = reply else {
        panic!("answered at once")
    };
    assert_eq!(answer.error_code, E::MemberIdRequired.code());
    assert!(s.group("g").unwrap().consumer.is_none());
}

/// Every record a shard writes, as the log would give them back.
fn through_the_log(records: &[GroupRecord]) -> Vec<GroupRecord> {
    use crate::coordinator::Shard;
    records
        .iter()
        .map(|r| {
            let (key, value) = GroupShard::encode(r);
            GroupShard::decode(&key, value.as_deref()).expect("decodes")
        })
        .collect()
}

#[test]
fn a_consumer_group_comes_back_from_its_records() {
    use crate::coordinator::Shard;
    let mut s = shard();
    let mut log = Vec::new();
    let mut beat_logged = |s: &mut GroupShard, req: ConsumerHeartbeat, now: i64| {
        let result = s.consumer_heartbeat(req, &topics(), now);
        log.extend(through_the_log(&result.records));
        result.response
    };
    let a = beat_logged(&mut s, join("a"), 0);
    let b = beat_logged(&mut s, join("b"), 10);
    let a_parts = a.assignment.expect("on join");
    // a is revoking two partitions for b when the coordinator moves.
    let a2 = beat_logged(&mut s, beat("a", a.member_epoch, Some(&a_parts)), 20);
    assert_eq!(count(&a2.assignment.clone().expect("revocation")), 2);
    let before = s.group("g").unwrap().consumer.as_deref().unwrap().clone();

    let mut loaded = shard();
    for r in &log {
        loaded.replay(r, None, 100);
    }
    let after = loaded.group("g").unwrap().consumer.as_deref().unwrap();
    assert_eq!(
        (after.group_epoch, after.assignment_epoch),
        (before.group_epoch, before.assignment_epoch)
    );
    assert_eq!(after.target, before.target);
    for (id, m) in &before.members {
        let l = &after.members[id];
        assert_eq!(
            (
                l.member_epoch,
                l.previous_member_epoch,
                l.state,
                &l.assigned,
                &l.pending_revocation
            ),
            (
                m.member_epoch,
                m.previous_member_epoch,
                m.state,
                &m.assigned,
                &m.pending_revocation
            ),
            "{id}"
        );
        assert_eq!(l.subscribed_topic_names, m.subscribed_topic_names);
    }
    // The members carry on where they were, with no rejoin.
    let kept = a2.assignment.unwrap();
    let a3 = hb(&mut loaded, beat("a", a2.member_epoch, Some(&kept)), 110);
    assert_eq!((a3.error_code, a3.member_epoch), (0, b.member_epoch));
    let b2 = hb(&mut loaded, beat("b", b.member_epoch, Some(&Assignment::new())), 120);
    assert_eq!(b2.error_code, 0);

    // A member whose session ran out is tombstoned.
    let mut tick = loaded.tick(120 + 45_001);
    let gone = through_the_log(&std::mem::take(&mut tick.records));
    assert!(
        gone.iter().any(|r| r.value.is_none()),
        "tombstones for the expired members"
    );
    let mut again = shard();
    for r in log.iter().chain(&gone) {
        again.replay(r, None, 200);
    }
    assert!(again
        .group("g")
        .unwrap()
        .consumer
        .as_deref()
        .unwrap()
        .members
        .is_empty());
}
