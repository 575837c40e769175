use super::*;
use crate::auth::acl::AclBinding;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::metadata::records::PartitionRecord;
use uuid::Uuid;

fn topic(name: &str, id: Uuid) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: id,
    }
}

fn partition(id: Uuid, p: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id: id,
        partition: p,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        ..Default::default()
    })
}

fn config(resource: ConfigResource, name: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config {
        resource,
        name: name.into(),
        value: value.map(String::from),
    }
}

fn acl(name: &str) -> AclBinding {
    AclBinding {
        resource_type: 2,
        resource_name: name.into(),
        pattern_type: 3,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: 3,
        permission: 3,
    }
}

fn apply(image: &MetadataImage, first_offset: i64, records: &[MetadataRecord]) -> (MetadataImage, MetadataChanges) {
    let mut delta = MetadataDelta::new(image);
    delta.replay_all(first_offset, records);
    delta.apply()
}

#[test]
fn a_new_topic_and_its_partitions_make_a_new_image_and_leave_the_old_one_alone() {
    let empty = MetadataImage::default();
    let id = Uuid::new_v4();
    let records = [
        topic("orders", id),
        partition(id, 0),
        partition(id, 1),
        config(ConfigResource::Topic("orders".into()), "retention.ms", Some("1000")),
    ];
    let (image, changes) = apply(&empty, 0, &records);
    assert_eq!(image.offset, 3);
    let orders = image.topics.get("orders").expect("created");
    assert_eq!((orders.id, orders.partitions.len()), (id, 2));
    assert_eq!(image.topics.by_id(id).map(|t| t.name.as_str()), Some("orders"));
    assert_eq!(
        image.topic_configs("orders").get("retention.ms").map(String::as_str),
        Some("1000")
    );
    assert_eq!(changes.created_topics.iter().copied().collect::<Vec<_>>(), vec![id]);
    assert!(
        changes.changed_partitions.is_empty(),
        "a new topic's partitions come with it"
    );
    assert!(changes.topic_configs.contains("orders"));
    assert!(
        empty.topics.is_empty() && empty.offset == -1,
        "the base image is immutable"
    );

    // Growing it: only the new partition is a change; untouched parts are shared.
    let (bigger, changes) = apply(&image, 4, &[partition(id, 2)]);
    assert_eq!(bigger.topics.get("orders").unwrap().partitions.len(), 3);
    assert_eq!(image.topics.get("orders").unwrap().partitions.len(), 2);
    assert_eq!(
        changes.changed_partitions[&id].iter().copied().collect::<Vec<_>>(),
        vec![2]
    );
    assert!(changes.created_topics.is_empty());
    assert!(Arc::ptr_eq(&image.configs, &bigger.configs));
    assert!(Arc::ptr_eq(&image.acls, &bigger.acls));

    // A partition out of sequence, or of an unknown topic, changes nothing.
    let (same, changes) = apply(&bigger, 5, &[partition(id, 9), partition(Uuid::new_v4(), 0)]);
    assert_eq!(same.topics, bigger.topics);
    assert!(changes.is_empty());
}

#[test]
fn removing_a_topic_takes_its_partitions_and_configs() {
    let id = Uuid::new_v4();
    let (image, _) = apply(
        &MetadataImage::default(),
        0,
        &[
            topic("orders", id),
            partition(id, 0),
            config(
                ConfigResource::Topic("orders".into()),
                "cleanup.policy",
                Some("compact"),
            ),
        ],
    );
    let (after, changes) = apply(&image, 3, &[MetadataRecord::RemoveTopic { topic_id: id }]);
    assert!(after.topics.get("orders").is_none() && after.topics.by_id(id).is_none());
    assert!(after.topic_configs("orders").is_empty());
    assert_eq!(changes.deleted_topics.len(), 1);
    assert_eq!(changes.deleted_topics[0].name, "orders");
    // A topic created and removed in one delta never reaches the broker.
    let other = Uuid::new_v4();
    let (_, changes) = apply(
        &after,
        4,
        &[
            topic("brief", other),
            partition(other, 0),
            MetadataRecord::RemoveTopic { topic_id: other },
        ],
    );
    assert!(changes.created_topics.is_empty() && changes.deleted_topics.is_empty());
    // The name can be used again, with a new id.
    let again = Uuid::new_v4();
    let (image, changes) = apply(&after, 7, &[topic("orders", again), partition(again, 0)]);
    assert_eq!(image.topics.get("orders").unwrap().id, again);
    assert!(changes.created_topics.contains(&again));
}

#[test]
fn configs_credentials_acls_quotas_and_producer_ids() {
    let credential = ScramCredential {
        salt: vec![1],
        iterations: 4096,
        stored_key: vec![2],
        server_key: vec![3],
    };
    let entity = vec![("user".to_string(), Some("alice".to_string()))];
    let records = [
        config(ConfigResource::Broker(None), "min.insync.replicas", Some("2")),
        config(ConfigResource::Broker(Some(1)), "log.retention.ms", Some("5")),
        MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha256,
            credential: credential.clone(),
        },
        MetadataRecord::Acl(acl("a")),
        MetadataRecord::Acl(acl("a")),
        MetadataRecord::Acl(acl("b")),
        MetadataRecord::ClientQuota {
            entity: entity.clone(),
            key: "producer_byte_rate".into(),
            value: Some(1024.0),
        },
        MetadataRecord::ProducerIds { next_producer_id: 1000 },
    ];
    let (image, changes) = apply(&MetadataImage::default(), 0, &records);
    assert!(changes.broker_configs);
    assert_eq!(
        image.configs_of(&ConfigResource::Broker(None))["min.insync.replicas"],
        "2"
    );
    assert_eq!(
        image.scram_credential("alice", ScramMechanism::Sha256),
        Some(&credential)
    );
    assert_eq!(image.acls.len(), 2, "an ACL is stored once");
    assert_eq!(image.client_quotas[0].values["producer_byte_rate"], 1024.0);
    assert_eq!(image.next_producer_id, 1000);

    let removals = [
        config(ConfigResource::Broker(None), "min.insync.replicas", None),
        MetadataRecord::RemoveUserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha256,
        },
        MetadataRecord::RemoveAcl(acl("a")),
        MetadataRecord::ClientQuota {
            entity,
            key: "producer_byte_rate".into(),
            value: None,
        },
        // Blocks are never handed out twice: the mark only moves up.
        MetadataRecord::ProducerIds { next_producer_id: 10 },
    ];
    let (image, _) = apply(&image, 8, &removals);
    assert!(image.configs_of(&ConfigResource::Broker(None)).is_empty());
    assert!(image.scram.is_empty(), "a user without credentials is forgotten");
    assert_eq!(image.acls.as_slice(), &[acl("b")]);
    assert!(image.client_quotas.is_empty(), "an entity without values is forgotten");
    assert_eq!(image.next_producer_id, 1000);
}

#[test]
fn a_snapshot_of_an_image_replays_into_the_same_image() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let records = [
        MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level: 7,
        },
        topic("a", a),
        partition(a, 0),
        partition(a, 1),
        topic("b", b),
        partition(b, 0),
        config(ConfigResource::Topic("b".into()), "retention.ms", Some("1")),
        config(ConfigResource::Broker(None), "min.insync.replicas", Some("1")),
        MetadataRecord::Acl(acl("x")),
        MetadataRecord::ProducerIds { next_producer_id: 2000 },
    ];
    let (image, _) = apply(&MetadataImage::default(), 0, &records);
    let snapshot = image.to_records();
    let mut delta = MetadataDelta::new(&MetadataImage::default());
    delta.replay_snapshot(image.offset, &snapshot);
    let (restored, _) = delta.apply();
    assert_eq!(restored, image);
    // Through the records' bytes as well.
    let decoded: Vec<MetadataRecord> = snapshot
        .iter()
        .map(|r| MetadataRecord::decode(&r.encode()).unwrap())
        .collect();
    assert_eq!(decoded, snapshot);
}

#[test]
fn unregistering_removes_only_the_registration_it_names() {
    let registration = |epoch: i64| {
        MetadataRecord::RegisterBroker(crate::metadata::records::BrokerRegistration {
            broker_id: 4,
            epoch,
            incarnation_id: Uuid::nil(),
            endpoints: Vec::new(),
            rack: None,
            fenced: false,
            directory_id: None,
        })
    };
    let unregister = |epoch: i64| MetadataRecord::UnregisterBroker { broker_id: 4, epoch };
    let mut delta = MetadataDelta::new(&MetadataImage::default());
    // Registered at 10, registered again at 20: a removal of the first is stale.
    delta.replay_all(0, &[registration(10), registration(20), unregister(10)]);
    let (image, _) = delta.apply();
    assert_eq!(image.brokers[&4].epoch, 20);
    let mut delta = MetadataDelta::new(&image);
    delta.replay_all(image.offset + 1, &[unregister(20)]);
    assert!(!delta.apply().0.brokers.contains_key(&4));
}
