//! The group coordinator at the byte level: a member's whole life (join with
//! the member-id round trip, sync, heartbeat, commit, leave), bad requests
//! that get Kafka's errors while the group keeps working, and offsets that
//! survive a restart.

use crate::harness::msgs::*;
use crate::harness::*;
use crate::hostile::produce;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::protocol::StrBytes;

fn st(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn join(group: &str, member: &str, protocol_type: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(st(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(st(member))
        .with_group_instance_id(None)
        .with_protocol_type(st(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(st("range"))
            .with_metadata(bytes::Bytes::from_static(
                b"\x00\x00\x00\x00\x00\x01\x00\x05topic\xff\xff\xff\xff",
            ))])
}

fn sync(group: &str, member: &str, generation: i32, assignment: &[u8]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(st(group)))
        .with_generation_id(generation)
        .with_member_id(st(member))
        .with_protocol_type(Some(st("consumer")))
        .with_protocol_name(Some(st("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(st(member))
            .with_assignment(bytes::Bytes::copy_from_slice(assignment))])
}

fn commit(group: &str, member: &str, generation: i32, topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(st(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(st(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(st(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(st("note")))])])
}

fn fetch_offset(client: &mut Client, group: &str, topic: &str) -> (i64, String) {
    let r: OffsetFetchResponse = client.request(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(st(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(st(topic)))
                .with_partition_indexes(vec![0])])),
    );
    let p = &r.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata.as_deref().map(|m| m.to_string()).unwrap_or_default(),
    )
}

fn heartbeat(client: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let r: HeartbeatResponse = client.request(
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(st(group)))
            .with_generation_id(generation)
            .with_member_id(st(member)),
    );
    r.error_code
}

#[test]
fn a_member_lives_and_bad_requests_get_kafka_errors() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    let created: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(st("events")))
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    c.request::<_, ProduceResponse>(ApiKey::Produce, 9, &produce("events", record_batch(5, 0)));

    // v4+: a new member is given an id and asked to come back with it.
    let first: JoinGroupResponse = c.request(ApiKey::JoinGroup, 9, &join("grp", "", "consumer"));
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.to_string();
    assert!(member.starts_with("protocol-tests-"), "{member}");
    let joined: JoinGroupResponse = c.request(ApiKey::JoinGroup, 9, &join("grp", &member, "consumer"));
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let synced: SyncGroupResponse = c.request(ApiKey::SyncGroup, 5, &sync("grp", &member, 1, b"the-assignment"));
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"the-assignment"[..]));
    assert_eq!(heartbeat(&mut c, "grp", &member, 1), 0);

    // Another protocol type for a live group: INCONSISTENT_GROUP_PROTOCOL (23).
    let other: JoinGroupResponse = c.request(ApiKey::JoinGroup, 9, &join("grp", "", "connect"));
    assert_eq!(other.error_code, 23);
    // A stale generation: ILLEGAL_GENERATION (22), for sync, heartbeat and commit.
    let stale: SyncGroupResponse = c.request(ApiKey::SyncGroup, 5, &sync("grp", &member, 0, b""));
    assert_eq!(stale.error_code, 22);
    assert_eq!(heartbeat(&mut c, "grp", &member, 7), 22);
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("grp", &member, 0, "events", 1));
    assert_eq!(r.topics[0].partitions[0].error_code, 22);
    // An unknown member: UNKNOWN_MEMBER_ID (25).
    assert_eq!(heartbeat(&mut c, "grp", "nobody", 1), 25);
    // An unknown topic: UNKNOWN_TOPIC_OR_PARTITION (3).
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("grp", &member, 1, "nowhere", 1));
    assert_eq!(r.topics[0].partitions[0].error_code, 3);

    // The group still works.
    assert_eq!(heartbeat(&mut c, "grp", &member, 1), 0);
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("grp", &member, 1, "events", 4));
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "grp", "events"), (4, "note".to_string()));
    let described: DescribeGroupsResponse = c.request(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(st("grp")), GroupId(st("absent"))]),
    );
    let g = &described.groups[0];
    assert_eq!(
        (
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        ("Stable", "consumer", "range")
    );
    assert_eq!(&g.members[0].member_assignment[..], b"the-assignment");
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");

    // Deleting a live group is refused; after the member leaves it works.
    let r: DeleteGroupsResponse = c.request(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(st("grp"))]),
    );
    assert_eq!(r.results[0].error_code, 68, "NON_EMPTY_GROUP");
    let left: LeaveGroupResponse = c.request(
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(st("grp")))
            .with_members(vec![
                kafka_protocol::messages::leave_group_request::MemberIdentity::default().with_member_id(st(&member)),
            ]),
    );
    assert_eq!((left.error_code, left.members[0].error_code), (0, 0));
    let listed: ListGroupsResponse = c.request(ApiKey::ListGroups, 5, &ListGroupsRequest::default());
    assert_eq!(listed.groups[0].group_state.as_str(), "Empty");
    let r: DeleteGroupsResponse = c.request(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(st("grp"))]),
    );
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "grp", "events"), (-1, String::new()));
}

#[test]
fn committed_offsets_and_groups_survive_a_restart() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    let _: MetadataResponse = c.request(
        ApiKey::Metadata,
        4,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(st("kept"))))
            ]))
            .with_allow_auto_topic_creation(true),
    );
    // A simple group: commits without membership.
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("simple", "", -1, "kept", 1));
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    drop(c);
    let (code, dir) = broker.terminate();
    assert_eq!(code, Some(0));
    let broker = Broker::start_in(dir, &[]);
    let mut c = broker.client();
    assert_eq!(fetch_offset(&mut c, "simple", "kept"), (1, "note".to_string()));
    let listed: ListGroupsResponse = c.request(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_id.as_str(), "simple");
}

#[test]
fn the_offsets_log_is_compacted_and_does_not_grow_without_bound() {
    // The log cleaner compacts __consumer_offsets as any compacted topic; here it looks often.
    let overrides = [
        "offsets.topic.num.partitions=1",
        "offsets.topic.segment.bytes=4096",
        "log.cleaner.backoff.ms=50",
    ];
    let broker = Broker::start(&overrides);
    let mut c = broker.client();
    let _: MetadataResponse = c.request(
        ApiKey::Metadata,
        4,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(st("busy"))))
            ]))
            .with_allow_auto_topic_creation(true),
    );
    // 2000 commits of the same few keys: ~200 KB of records, a few hundred bytes live.
    for i in 0..2000 {
        let group = format!("g{}", i % 4);
        let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit(&group, "", -1, "busy", i));
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    let dir = broker.dir.path().join("data/__consumer_offsets-0");
    let on_disk = || -> u64 {
        // The cleaner swaps and deletes segments while we look: a file gone between the
        // listing and its stat counts as empty.
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    // The active segment, and the closed ones cleaned down to the live records.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while on_disk() >= 3 * 4096 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        on_disk() < 3 * 4096,
        "{} bytes of offsets log for 4 live keys",
        on_disk()
    );
    for g in 0..4 {
        assert_eq!(fetch_offset(&mut c, &format!("g{g}"), "busy").0, 1996 + g);
    }
    drop(c);
    let (_, dir) = broker.terminate();
    let broker = Broker::start_in(dir, &overrides);
    let mut c = broker.client();
    for g in 0..4 {
        assert_eq!(
            fetch_offset(&mut c, &format!("g{g}"), "busy").0,
            1996 + g,
            "after restart"
        );
    }
}
