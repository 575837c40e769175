use super::*;
use crate::group::records::RecordKey;

fn tasks(entries: &[(&str, &[i32])]) -> Tasks {
    entries
        .iter()
        .map(|(s, p)| (s.to_string(), p.iter().copied().collect()))
        .collect()
}

#[test]
fn values_read_back_as_written() {
    let topology = Topology {
        epoch: 2,
        subtopologies: vec![Subtopology {
            id: "0".into(),
            source_topics: vec!["left".into(), "right".into()],
            repartition_sink_topics: vec!["app-sink".into()],
            changelog_topics: vec![TopicInfo {
                name: "app-store-changelog".into(),
                partitions: 0,
                replication_factor: 3,
                configs: vec![("cleanup.policy".into(), "compact".into())],
            }],
            repartition_source_topics: vec![TopicInfo {
                name: "app-repartition".into(),
                partitions: 4,
                ..TopicInfo::default()
            }],
            copartition_groups: vec![vec!["left".into(), "right".into(), "app-repartition".into()]],
        }],
    };
    let values = [
        (
            GROUP_METADATA,
            StreamsValue::Group {
                epoch: 9,
                metadata_hash: -3,
            },
        ),
        (TARGET_METADATA, StreamsValue::AssignmentEpoch(8)),
        (
            MEMBER_METADATA,
            StreamsValue::Member(MemberMetadata {
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "app-StreamThread-1-consumer".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                topology_epoch: 2,
                process_id: "p-1".into(),
                user_endpoint: Some(("localhost".into(), 8080)),
                client_tags: BTreeMap::from([("zone".into(), "a".into())]),
            }),
        ),
        (
            MEMBER_METADATA,
            StreamsValue::Member(MemberMetadata {
                instance_id: None,
                rack_id: Some("r".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1,
                topology_epoch: 0,
                process_id: "p-2".into(),
                user_endpoint: None,
                client_tags: BTreeMap::new(),
            }),
        ),
        (
            TARGET_MEMBER,
            StreamsValue::Target {
                active: tasks(&[("0", &[0, 2]), ("1", &[1])]),
                standby: tasks(&[("0", &[1])]),
            },
        ),
        (
            CURRENT_ASSIGNMENT,
            StreamsValue::Current(CurrentAssignment {
                member_epoch: 5,
                previous_member_epoch: 4,
                state: MemberState::UnrevokedTasks,
                active: tasks(&[("0", &[0])]),
                standby: Tasks::new(),
                active_pending_revocation: tasks(&[("1", &[3])]),
            }),
        ),
        (TOPOLOGY, StreamsValue::Topology(topology)),
    ];
    for (kind, v) in values {
        let bytes = v.encode();
        assert_eq!(StreamsValue::decode(kind, &bytes), Ok(v.clone()));
        assert!(
            StreamsValue::decode(kind, &bytes[..bytes.len() - 2]).is_err(),
            "{v:?} cut short"
        );
    }
}

#[test]
fn member_states_have_kafkas_streams_codes() {
    // Kafka's streams MemberState: STABLE 1, UNREVOKED_TASKS 2, UNRELEASED_TASKS 3.
    for (state, code) in [
        (MemberState::Stable, 1),
        (MemberState::UnrevokedTasks, 2),
        (MemberState::UnreleasedTasks, 3),
    ] {
        assert_eq!(state_code(state), code);
        assert_eq!(state_of(code), state);
    }
}

#[test]
fn keys_name_the_group_and_the_member() {
    let key = RecordKey::Streams {
        kind: CURRENT_ASSIGNMENT,
        group: "app".into(),
        member: Some("m-1".into()),
    };
    let bytes = key.encode();
    assert_eq!(&bytes[..2], &22i16.to_be_bytes());
    assert_eq!(RecordKey::decode(&bytes), Ok(key));
    let topology = RecordKey::Streams {
        kind: TOPOLOGY,
        group: "app".into(),
        member: None,
    };
    assert_eq!(RecordKey::decode(&topology.encode()), Ok(topology));
}
