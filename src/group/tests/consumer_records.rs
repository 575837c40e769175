use super::*;

#[test]
fn values_read_back_as_written() {
    let t = Uuid::from_u128(5);
    let values = [
        ConsumerValue::Group {
            epoch: 7,
            metadata_hash: -5,
        },
        ConsumerValue::AssignmentEpoch(6),
        ConsumerValue::Member(MemberMetadata {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: Some("x.*".into()),
            rebalance_timeout_ms: 30_000,
            server_assignor: Some("range".into()),
            classic: None,
        }),
        ConsumerValue::Member(MemberMetadata {
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 30_000,
            server_assignor: None,
            classic: Some(ClassicMember {
                session_timeout_ms: 45_000,
                protocols: vec![("range".into(), Bytes::from_static(&[0, 3, 1, 2]))],
            }),
        }),
        ConsumerValue::Target(Assignment::from([(t, BTreeSet::from([0, 2]))])),
        ConsumerValue::Current(CurrentAssignment {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: MemberState::UnrevokedPartitions,
            assigned: Assignment::from([(t, BTreeSet::from([1]))]),
            pending_revocation: Assignment::from([(t, BTreeSet::from([3]))]),
        }),
    ];
    for (kind, v) in [
        GROUP_METADATA,
        TARGET_METADATA,
        MEMBER_METADATA,
        MEMBER_METADATA,
        TARGET_MEMBER,
        CURRENT_ASSIGNMENT,
    ]
    .into_iter()
    .zip(values)
    {
        let bytes = v.encode();
        assert_eq!(ConsumerValue::decode(kind, &bytes), Ok(v.clone()));
        assert!(
            ConsumerValue::decode(kind, &bytes[..bytes.len() - 2]).is_err(),
            "{v:?} cut short"
        );
    }
}
