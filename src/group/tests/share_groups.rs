//! Share groups in `__consumer_offsets`: a share group and its epoch are
//! written (Kafka's ShareGroupMetadata), so it is still there after the
//! coordinator reloads its partition; its members are not, as they rejoin.

use super::*;
use crate::group::consumer_heartbeat::TopicView;
use crate::group::share_group::ShareHeartbeat;
use uuid::Uuid;

fn join(member: &str) -> ShareHeartbeat {
    ShareHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rack_id: None,
        subscribed_topic_names: Some(vec!["t".into()]),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5000,
        max_size: 200,
    }
}

#[test]
fn a_share_group_is_there_after_a_reload_until_deleted() {
    let mut view = TopicView::default();
    view.topics.insert("t".into(), (Uuid::from_u128(7), 2));
    let mut log = MemLog::default();
    let mut g = groups(0);
    let answer = g.exec(&mut log, |s| s.share_heartbeat(join("m"), &view, 0));
    assert_eq!(answer.error_code, 0);
    let epoch = g.describe_share("g").expect("a share group").group_epoch;

    let reloaded = log.reload(0, 1);
    let back = reloaded.describe_share("g").expect("still a share group");
    assert_eq!((back.group_epoch, back.members.len()), (epoch, 0));

    // Its member's session runs out: a new epoch, written too.
    assert_eq!(
        g.exec(&mut log, |s| s.tick(45_000)),
        vec![("g".to_string(), "m".to_string())]
    );
    let after = g.describe_share("g").expect("share group").group_epoch;
    assert!(after > epoch);
    assert_eq!(log.reload(0, 2).describe_share("g").map(|sg| sg.group_epoch), Ok(after));

    assert_eq!(g.exec(&mut log, |s| s.delete_group("g")), 0);
    assert_eq!(
        log.reload(0, 3).describe_share("g").map(|_| ()),
        Err((E::GroupIdNotFound.code(), "Group g not found.".to_string()))
    );
}
