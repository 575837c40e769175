//! Placement as an operator sees it. The `kafka_*` expectations were printed
//! by Kafka 4.4.0's own StripedReplicaPlacer (kafka-metadata-4.4.0.jar) given
//! `new java.util.Random(seed)` and the same brokers.

use super::*;
use crate::metadata::records::BrokerRegistration;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

fn broker(id: i32, rack: Option<&str>) -> UsableBroker {
    UsableBroker {
        id,
        rack: rack.map(String::from),
        fenced: false,
    }
}

fn fenced(id: i32) -> UsableBroker {
    UsableBroker {
        id,
        rack: None,
        fenced: true,
    }
}

fn unracked(ids: impl IntoIterator<Item = i32>) -> Vec<UsableBroker> {
    ids.into_iter().map(|id| broker(id, None)).collect()
}

fn place_with(
    placer: &mut StripedReplicaPlacer,
    partitions: i32,
    rf: i16,
    brokers: &[UsableBroker],
) -> Result<Vec<Vec<i32>>, String> {
    let spec = PlacementSpec {
        start_partition: 0,
        num_partitions: partitions,
        num_replicas: rf,
    };
    placer
        .place(&spec, brokers.to_vec())
        .map(TopicAssignment::into_replicas)
        .map_err(|e| e.0)
}

fn place_seeded(seed: i64, partitions: i32, rf: i16, brokers: &[UsableBroker]) -> Vec<Vec<i32>> {
    place_with(&mut StripedReplicaPlacer::with_seed(seed), partitions, rf, brokers).unwrap()
}

/// Kafka's printout: `[4,3,5][1,5,2]...`.
fn kafka(printed: &str) -> Vec<Vec<i32>> {
    printed
        .trim_matches(|c| c == '[' || c == ']')
        .split("][")
        .map(|p| p.split(',').map(|b| b.parse().unwrap()).collect())
        .collect()
}

fn rack_of(brokers: &[UsableBroker]) -> HashMap<i32, Option<String>> {
    brokers.iter().map(|b| (b.id, b.rack.clone())).collect()
}

fn distinct<T: Ord>(items: impl IntoIterator<Item = T>) -> usize {
    items.into_iter().collect::<BTreeSet<_>>().len()
}

/// How many partitions each broker leads.
fn leaders(placement: &[Vec<i32>]) -> BTreeMap<i32, usize> {
    let mut n = BTreeMap::new();
    for replicas in placement {
        *n.entry(replicas[0]).or_default() += 1;
    }
    n
}

/// How many replicas each broker holds.
fn replica_counts(placement: &[Vec<i32>]) -> BTreeMap<i32, usize> {
    let mut n = BTreeMap::new();
    for b in placement.iter().flatten() {
        *n.entry(*b).or_default() += 1;
    }
    n
}

fn spread(counts: &BTreeMap<i32, usize>) -> usize {
    counts.values().max().unwrap() - counts.values().min().unwrap()
}

fn two_uneven_racks() -> Vec<UsableBroker> {
    vec![
        broker(1, Some("a")),
        broker(2, Some("a")),
        broker(3, Some("a")),
        broker(4, Some("b")),
        broker(5, Some("b")),
    ]
}

#[test]
fn two_racks_every_partition_spans_both_racks_like_kafka() {
    let brokers = two_uneven_racks();
    let rack = rack_of(&brokers);
    assert_eq!(
        place_seeded(42, 10, 3, &brokers),
        kafka("[4,3,5][1,5,2][4,2,5][3,5,1][4,1,5][4,2,5][1,5,3][4,3,5][2,5,1][4,1,5]")
    );
    for seed in 0..200 {
        let placement = place_seeded(seed, 10, 3, &brokers);
        assert_eq!(placement.len(), 10);
        for replicas in &placement {
            assert_eq!(distinct(replicas), 3, "a broker twice in {replicas:?}");
            assert_eq!(distinct(replicas.iter().map(|b| &rack[b])), 2, "{replicas:?}");
        }
        // The racks take turns to lead, and so share the replicas. Within
        // the two-broker rack Kafka does not even leaders out: it puts
        // rack spread first (uneven racks are "a user error").
        let led_from_a = placement.iter().filter(|r| rack[&r[0]].as_deref() == Some("a")).count();
        assert!((4..=6).contains(&led_from_a), "seed {seed}: rack a leads {led_from_a}");
    }
    // So one broker can lead most of rack b's partitions, as with Kafka.
    let placement = place_seeded(42, 10, 3, &brokers);
    assert_eq!(leaders(&placement)[&4], 6);
    assert_eq!(
        replica_counts(&placement),
        BTreeMap::from([(1, 6), (2, 4), (3, 4), (4, 6), (5, 10)])
    );
}

#[test]
fn three_even_racks_every_partition_in_three_racks() {
    let brokers: Vec<UsableBroker> = (1..=6)
        .map(|id| broker(id, Some(["r1", "r2", "r3"][(id as usize - 1) / 2])))
        .collect();
    let rack = rack_of(&brokers);
    assert_eq!(
        place_seeded(1, 12, 3, &brokers),
        kafka("[1,4,5][3,6,2][5,1,4][2,3,6][4,5,1][6,2,3][3,1,5][2,6,4][5,3,1][4,2,6][1,5,3][6,4,2]")
    );
    for seed in 0..200 {
        let placement = place_seeded(seed, 12, 3, &brokers);
        for replicas in &placement {
            assert_eq!(distinct(replicas.iter().map(|b| &rack[b])), 3, "{replicas:?}");
        }
        // Even racks: leaders and replicas even over the brokers too.
        assert!(leaders(&placement).values().all(|&n| n == 2), "seed {seed}");
        assert_eq!(spread(&replica_counts(&placement)), 0, "seed {seed}");
    }
}

#[test]
fn without_racks_replicas_are_striped_over_the_brokers() {
    let brokers = unracked(0..5);
    assert_eq!(
        place_seeded(3, 10, 3, &brokers),
        kafka("[4,0,1][0,1,2][1,2,3][2,3,4][3,4,0][0,2,1][2,1,4][1,4,3][4,3,0][3,0,2]")
    );
    for seed in 0..200 {
        let placement = place_seeded(seed, 10, 3, &brokers);
        assert!(placement.iter().all(|r| distinct(r) == 3));
        assert!(leaders(&placement).values().all(|&n| n == 2), "seed {seed}");
        assert_eq!(spread(&replica_counts(&placement)), 0, "seed {seed}");
    }
}

#[test]
fn fenced_brokers_get_replicas_only_when_they_must_and_never_lead() {
    let mut brokers = unracked([0, 1, 3, 4]);
    brokers.extend([fenced(2), fenced(5)]);
    brokers.sort_by_key(|b| b.id);
    // Four unfenced brokers are enough for three replicas.
    let placement = place_seeded(5, 8, 3, &brokers);
    assert_eq!(
        placement,
        kafka("[0,1,3][1,3,4][3,4,0][4,0,1][4,0,3][0,3,1][3,1,4][1,4,0]")
    );
    assert!(!placement.iter().flatten().any(|b| [2, 5].contains(b)));
    // Five replicas need one of them: as the last replica, never the leader.
    let placement = place_seeded(5, 8, 5, &brokers);
    assert_eq!(
        placement,
        kafka("[0,1,3,4,5][1,3,4,0,2][3,4,0,1,5][4,0,1,3,2][4,0,3,1,5][0,3,1,4,2][3,1,4,0,5][1,4,0,3,2]")
    );
    assert!(placement
        .iter()
        .all(|r| ![2, 5].contains(&r[0]) && [2, 5].contains(&r[4])));
}

#[test]
fn all_brokers_fenced_is_refused() {
    let mut placer = StripedReplicaPlacer::with_seed(0);
    assert_eq!(
        place_with(&mut placer, 1, 1, &[fenced(1), fenced(2)]),
        Err("All brokers are currently fenced, or have all their log directories cordoned.".into())
    );
    // Kafka says so before it counts the brokers.
    assert_eq!(
        place_with(&mut placer, 1, 3, &[fenced(1), fenced(2)]),
        Err("All brokers are currently fenced, or have all their log directories cordoned.".into())
    );
}

#[test]
fn replication_factor_beyond_the_registered_brokers_is_refused() {
    let mut placer = StripedReplicaPlacer::with_seed(0);
    let brokers = [broker(1, None), broker(2, None), fenced(3)];
    assert_eq!(
        place_with(&mut placer, 1, 4, &brokers),
        Err("The target replication factor of 4 cannot be reached because only 3 broker(s) are registered or some brokers have all their log directories cordoned.".into())
    );
    // Fenced brokers count as registered: three replicas fit.
    assert!(place_with(&mut placer, 1, 3, &brokers).is_ok());
    assert_eq!(
        place_with(&mut placer, 1, 0, &brokers),
        Err("Invalid replication factor 0: the replication factor must be positive.".into())
    );
}

#[test]
fn the_controller_answers_with_kafkas_words_and_code() {
    let mut image = MetadataImage::default();
    let registered = |id| BrokerRegistration {
        broker_id: id,
        epoch: 0,
        incarnation_id: uuid::Uuid::nil(),
        endpoints: Vec::new(),
        rack: None,
        fenced: false,
        directory_id: None,
    };
    image.brokers = Arc::new((1..=3).map(|id| (id, registered(id))).collect());
    let mut placer = StripedReplicaPlacer::with_seed(0);
    let e = place(&mut placer, &image, 1, 0, 1, 4).unwrap_err();
    // CreatePartitions answers with the placer's words; CreateTopics wraps them.
    assert_eq!(
        ControllerError::from(e.clone()).to_string(),
        "The target replication factor of 4 cannot be reached because only 3 broker(s) are registered or some brokers have all their log directories cordoned."
    );
    let e = unable_to_replicate(4, e);
    assert_eq!(e.code(), 38, "INVALID_REPLICATION_FACTOR");
    assert_eq!(
        e.to_string(),
        "Unable to replicate the partition 4 time(s): The target replication factor of 4 cannot be reached because only 3 broker(s) are registered or some brokers have all their log directories cordoned."
    );
}

#[test]
fn a_node_not_registered_yet_stands_alone() {
    let image = MetadataImage::default();
    let mut placer = StripedReplicaPlacer::with_seed(0);
    assert_eq!(place(&mut placer, &image, 7, 0, 3, 1).unwrap(), vec![vec![7]; 3]);
    assert!(place(&mut placer, &image, 7, 0, 1, 2).is_err());
    assert!(check_assignments(&image, 7, 0, None, &[vec![7]]).is_ok());
}

#[test]
fn same_seed_same_placement_and_seeds_vary() {
    let brokers = unracked(0..6);
    assert_eq!(place_seeded(9, 20, 3, &brokers), place_seeded(9, 20, 3, &brokers));
    let placements: BTreeSet<_> = (0..10).map(|seed| place_seeded(seed, 20, 3, &brokers)).collect();
    assert!(placements.len() > 5, "only {} different placements", placements.len());
}

#[test]
fn one_placer_keeps_drawing_from_its_random_source() {
    let brokers = unracked(1..=3);
    let mut placer = StripedReplicaPlacer::with_seed(7);
    assert_eq!(
        place_with(&mut placer, 4, 2, &brokers).unwrap(),
        kafka("[2,3][3,1][1,2][3,1]")
    );
    assert_eq!(
        place_with(&mut placer, 4, 2, &brokers).unwrap(),
        kafka("[2,3][3,1][1,2][3,2]")
    );
    assert_eq!(place_seeded(-8, 5, 2, &brokers), kafka("[1,2][2,3][3,1][2,3][3,1]"));
}

#[test]
fn racks_are_drawn_for_in_the_order_of_kafkas_hash_map() {
    // Inserted x, b, a; Kafka's HashMap of racks iterates a, b, x.
    let brokers: Vec<UsableBroker> = (0..6)
        .map(|id| broker(id, Some(["x", "b", "a"][id as usize % 3])))
        .collect();
    assert_eq!(
        place_seeded(13, 6, 3, &brokers),
        kafka("[1,0,5][3,2,4][5,1,0][4,3,2][0,5,1][2,4,3]")
    );
    // "Aa" and "BB" have the same Java hash: one bucket, in insertion order.
    let brokers: Vec<UsableBroker> = (0..6)
        .map(|id| broker(id, Some(["Aa", "BB", "x"][id as usize % 3])))
        .collect();
    assert_eq!(
        place_seeded(11, 6, 3, &brokers),
        kafka("[3,4,2][1,5,0][2,3,4][0,1,5][4,2,3][5,0,1]")
    );
}

#[test]
fn java_random_is_java_util_random() {
    // What Java printed for these draws.
    let mut r = JavaRandom::new(42);
    let mut draws: Vec<i32> = (0..5).map(|_| r.next_int(10)).collect();
    draws.push(r.next_int(16));
    draws.push(r.next_int((1 << 30) + 1));
    assert_eq!(draws, [0, 3, 8, 4, 0, 15, 595021505]);
    let mut r = JavaRandom::new(-1);
    let draws: Vec<i32> = (0..3).map(|_| r.next_int(i32::MAX)).collect();
    assert_eq!(draws, [577549913, 943952225, 26349579]);
}

#[test]
fn manual_assignments_are_checked_as_kafka_checks_them() {
    let mut image = MetadataImage::default();
    let registered = |id, fenced| BrokerRegistration {
        broker_id: id,
        epoch: 0,
        incarnation_id: uuid::Uuid::nil(),
        endpoints: Vec::new(),
        rack: None,
        fenced,
        directory_id: None,
    };
    image.brokers = Arc::new(BTreeMap::from([(1, registered(1, false)), (2, registered(2, true))]));
    let check = |first, rf, a: &[Vec<i32>]| check_assignments(&image, 1, first, rf, a).map_err(|e| e.to_string());
    assert!(check(0, None, &[vec![2, 1]]).is_ok());
    assert_eq!(
        check(0, None, &[vec![1, 3]]),
        Err("The manual partition assignment includes broker 3, but no such broker is registered.".into())
    );
    assert_eq!(
        check(0, None, &[vec![1], vec![1, 2]]),
        Err("The manual partition assignment includes a partition with 2 replica(s), but this is not consistent with previous partitions, which have 1 replica(s).".into())
    );
    assert_eq!(
        check(4, Some(2), &[vec![1]]),
        Err("The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s).".into())
    );
    assert_eq!(
        check(4, None, &[vec![1], vec![2]]),
        Err("All brokers specified in the manual partition assignment for partition 5 are fenced or in controlled shutdown.".into())
    );
}
