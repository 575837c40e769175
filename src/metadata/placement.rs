//! Where a new partition's replicas go: a port of Kafka's KRaft controller
//! placer (org.apache.kafka.metadata.placement: StripedReplicaPlacer,
//! ClusterDescriber/UsableBroker, PlacementSpec, TopicAssignment,
//! PartitionAssignment), and Kafka's checks on a manual assignment.
//!
//! The striped placer groups brokers by rack; each rack keeps its unfenced
//! and its fenced brokers apart. A partition's replicas are taken from the
//! racks round robin, starting one rack further on for each partition, and
//! within a rack round robin from a random start: replicas spread over as
//! many racks as there are, and leaders over the brokers. A leader is always
//! unfenced; fenced brokers take followers only once a rack's unfenced
//! brokers are used up (so when the replication factor needs them). After as
//! many partitions as there are unfenced brokers, racks and brokers are
//! shuffled so the same sets do not come round again.
//!
//! The randomness is Kafka's: [`JavaRandom`] is java.util.Random, and the
//! order the placer draws from it is Kafka's (including the iteration order
//! of the Java HashMap of racks), so a placer seeded like Kafka's places
//! exactly as Kafka's does. The controller seeds one from a real random
//! source; tests give a seed.

use super::controller::ControllerError;
use super::image::MetadataImage;
use std::cmp::Ordering;
use std::fmt;

#[cfg(test)]
mod tests;

/// java.util.Random: the 48-bit linear congruential generator, and its
/// `nextInt(bound)`.
#[derive(Debug, Clone)]
pub struct JavaRandom {
    seed: i64,
}

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    /// `new Random(seed)`.
    pub fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    /// `new Random()`: seeded from the operating system's random source.
    pub fn from_entropy() -> JavaRandom {
        JavaRandom::new(rand::random::<i64>())
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.seed >> (48 - bits)) as i32
    }

    /// `nextInt(bound)`: uniform in `0..bound`; `bound` must be positive.
    pub fn next_int(&mut self, bound: i32) -> i32 {
        assert!(bound > 0, "bound must be positive");
        let r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((bound as i64 * r as i64) >> 31) as i32;
        }
        let mut u = r;
        loop {
            let r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }

    /// `Collections.shuffle(list, random)` of a random-access list.
    fn shuffle<T>(&mut self, list: &mut [T]) {
        for i in (2..=list.len()).rev() {
            let j = self.next_int(i as i32) as usize;
            list.swap(i - 1, j);
        }
    }
}

/// A broker that may take replicas (Kafka's UsableBroker): registered and
/// not shutting down, fenced or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// What to place (Kafka's PlacementSpec). The placer does not look at the
/// first partition's index; it is there for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementSpec {
    pub start_partition: i32,
    pub num_partitions: i32,
    pub num_replicas: i16,
}

/// One partition's replicas, its leader first (Kafka's PartitionAssignment,
/// without log directories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub replicas: Vec<i32>,
}

/// The replicas of each partition placed (Kafka's TopicAssignment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAssignment {
    pub assignments: Vec<PartitionAssignment>,
}

impl TopicAssignment {
    pub fn into_replicas(self) -> Vec<Vec<i32>> {
        self.assignments.into_iter().map(|a| a.replicas).collect()
    }
}

/// Kafka's InvalidReplicationFactorException from the placer, with its
/// message. CreatePartitions answers with it as it is; CreateTopics wraps it
/// (see [`unable_to_replicate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReplicationFactor(pub String);

impl fmt::Display for InvalidReplicationFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<InvalidReplicationFactor> for ControllerError {
    fn from(e: InvalidReplicationFactor) -> ControllerError {
        ControllerError::InvalidReplicationFactor(e.0)
    }
}

/// How ReplicationControlManager.createTopic answers a placement error.
pub fn unable_to_replicate(replication_factor: i16, e: InvalidReplicationFactor) -> ControllerError {
    ControllerError::InvalidReplicationFactor(format!(
        "Unable to replicate the partition {replication_factor} time(s): {e}"
    ))
}

fn check_positive(replication_factor: i32) -> Result<(), InvalidReplicationFactor> {
    if replication_factor <= 0 {
        return Err(InvalidReplicationFactor(format!(
            "Invalid replication factor {replication_factor}: the replication factor must be positive."
        )));
    }
    Ok(())
}

fn check_some_unfenced(num_unfenced: i32) -> Result<(), InvalidReplicationFactor> {
    if num_unfenced == 0 {
        return Err(InvalidReplicationFactor(
            "All brokers are currently fenced, or have all their log directories cordoned.".into(),
        ));
    }
    Ok(())
}

fn check_enough_brokers(replication_factor: i32, num_total: i32) -> Result<(), InvalidReplicationFactor> {
    if replication_factor > num_total {
        return Err(InvalidReplicationFactor(format!(
            "The target replication factor of {replication_factor} cannot be reached because only {num_total} broker(s) are registered or some brokers have all their log directories cordoned."
        )));
    }
    Ok(())
}

/// Brokers iterated round robin from an offset; each epoch (partition)
/// starts one further on.
#[derive(Debug, Default)]
struct BrokerList {
    brokers: Vec<i32>,
    /// How many brokers were taken in the current epoch.
    index: usize,
    offset: usize,
    epoch: i32,
}

impl BrokerList {
    /// Sorts the brokers and picks a random start.
    fn initialize(&mut self, random: &mut JavaRandom) {
        if !self.brokers.is_empty() {
            self.brokers.sort_unstable();
            self.offset = random.next_int(self.brokers.len() as i32) as usize;
        }
    }

    fn shuffle(&mut self, random: &mut JavaRandom) {
        random.shuffle(&mut self.brokers);
    }

    /// The next broker of this epoch, or None when all were taken.
    fn next(&mut self, epoch: i32) -> Option<i32> {
        if self.brokers.is_empty() {
            return None;
        }
        if self.epoch != epoch {
            self.epoch = epoch;
            self.index = 0;
            self.offset = (self.offset + 1) % self.brokers.len();
        }
        if self.index >= self.brokers.len() {
            return None;
        }
        let broker = self.brokers[(self.index + self.offset) % self.brokers.len()];
        self.index += 1;
        Some(broker)
    }
}

#[derive(Debug)]
struct Rack {
    name: Option<String>,
    fenced: BrokerList,
    unfenced: BrokerList,
}

impl Rack {
    fn initialize(&mut self, random: &mut JavaRandom) {
        self.fenced.initialize(random);
        self.unfenced.initialize(random);
    }

    fn shuffle(&mut self, random: &mut JavaRandom) {
        self.fenced.shuffle(random);
        self.unfenced.shuffle(random);
    }

    /// An unfenced broker first, then a fenced one.
    fn next(&mut self, epoch: i32) -> Option<i32> {
        self.unfenced.next(epoch).or_else(|| self.fenced.next(epoch))
    }
}

/// Java's String.hashCode, over UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's OptionalStringComparator: no rack first, then Java's
/// String.compareTo (UTF-16 code units).
fn compare_racks(a: &Option<String>, b: &Option<String>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// The order a java.util.HashMap<Optional<String>, _> with these keys,
/// inserted in this order, iterates its values: by bucket of the final
/// table, then by insertion. Kafka draws from its Random in this order.
/// (Exact unless nine or more rack names share a bucket of a table of 64
/// or more, where Java turns the bucket into a tree.)
fn java_hash_map_order(keys: &[Option<String>]) -> Vec<usize> {
    let spread = |k: &Option<String>| {
        let h = k.as_deref().map_or(0, java_string_hash);
        (h ^ ((h as u32) >> 16) as i32) as u32 as usize
    };
    let mut capacity = 16usize;
    for (n, key) in keys.iter().enumerate() {
        let bucket = spread(key) & (capacity - 1);
        let in_bucket = keys[..n]
            .iter()
            .filter(|k| spread(k) & (capacity - 1) == bucket)
            .count();
        // treeifyBin resizes a small table whose bucket reached eight.
        if in_bucket >= 8 && capacity < 64 {
            capacity *= 2;
        }
        if n + 1 > capacity * 3 / 4 {
            capacity *= 2;
        }
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (spread(&keys[i]) & (capacity - 1), i));
    order
}

/// Kafka's RackList: the racks, their sorted names, and where the next
/// partition starts.
#[derive(Debug)]
struct RackList {
    /// In the order their first broker came.
    racks: Vec<Rack>,
    /// Kafka's rackNames: indexes into `racks`, sorted by name.
    names: Vec<usize>,
    /// The order Kafka's HashMap of racks iterates them.
    map_order: Vec<usize>,
    num_total: i32,
    num_unfenced: i32,
    epoch: i32,
    offset: usize,
}

impl RackList {
    fn new(random: &mut JavaRandom, brokers: impl IntoIterator<Item = UsableBroker>) -> RackList {
        let mut racks: Vec<Rack> = Vec::new();
        let (mut num_total, mut num_unfenced) = (0, 0);
        for broker in brokers {
            let i = match racks.iter().position(|r| r.name == broker.rack) {
                Some(i) => i,
                None => {
                    racks.push(Rack {
                        name: broker.rack,
                        fenced: BrokerList::default(),
                        unfenced: BrokerList::default(),
                    });
                    racks.len() - 1
                }
            };
            if broker.fenced {
                racks[i].fenced.brokers.push(broker.id);
            } else {
                num_unfenced += 1;
                racks[i].unfenced.brokers.push(broker.id);
            }
            num_total += 1;
        }
        let keys: Vec<Option<String>> = racks.iter().map(|r| r.name.clone()).collect();
        let map_order = java_hash_map_order(&keys);
        for &i in &map_order {
            racks[i].initialize(random);
        }
        let mut names: Vec<usize> = (0..racks.len()).collect();
        names.sort_by(|&a, &b| compare_racks(&racks[a].name, &racks[b].name));
        let offset = if names.is_empty() {
            0
        } else {
            random.next_int(names.len() as i32) as usize
        };
        RackList {
            racks,
            names,
            map_order,
            num_total,
            num_unfenced,
            epoch: 0,
            offset,
        }
    }

    /// One partition's replicas.
    fn place(
        &mut self,
        random: &mut JavaRandom,
        replication_factor: i32,
    ) -> Result<Vec<i32>, InvalidReplicationFactor> {
        check_positive(replication_factor)?;
        check_enough_brokers(replication_factor, self.num_total)?;
        check_some_unfenced(self.num_unfenced)?;
        // After as many partitions as there are unfenced brokers, shuffle
        // so the same sets do not come round again (not with one broker:
        // that would loop for ever).
        if self.epoch == self.num_unfenced && self.num_unfenced > 1 {
            self.shuffle(random);
            self.epoch = 0;
        }
        if self.offset == self.names.len() {
            self.offset = 0;
        }
        let n = self.names.len();
        let stuck = || InvalidReplicationFactor("Unable to find enough brokers for the partition's replicas.".into());
        let mut brokers = Vec::with_capacity(replication_factor as usize);
        // The leader: the first unfenced broker from the starting rack on.
        let mut first_rack = self.offset;
        let mut tries = 0;
        loop {
            if let Some(b) = self.racks[self.names[first_rack]].unfenced.next(self.epoch) {
                brokers.push(b);
                break;
            }
            first_rack = (first_rack + 1) % n;
            tries += 1;
            // Kafka would spin here for ever; it cannot happen with an
            // unfenced broker, but a controller must not hang.
            if tries > 2 * n {
                return Err(stuck());
            }
        }
        // The followers: one from each rack in turn, the leader's skipped once.
        let mut first_rack = Some(first_rack);
        let mut rack = self.offset;
        for _ in 1..replication_factor {
            let mut tries = 0;
            let broker = loop {
                let result = if first_rack == Some(rack) {
                    first_rack = None;
                    None
                } else {
                    self.racks[self.names[rack]].next(self.epoch)
                };
                rack = (rack + 1) % n;
                if let Some(b) = result {
                    break b;
                }
                tries += 1;
                if tries > 2 * n + 1 {
                    return Err(stuck());
                }
            };
            brokers.push(broker);
        }
        self.epoch += 1;
        self.offset += 1;
        Ok(brokers)
    }

    fn shuffle(&mut self, random: &mut JavaRandom) {
        random.shuffle(&mut self.names);
        for &i in &self.map_order {
            self.racks[i].shuffle(random);
        }
    }
}

/// Kafka's StripedReplicaPlacer: one random source for all placements.
#[derive(Debug, Clone)]
pub struct StripedReplicaPlacer {
    random: JavaRandom,
}

impl StripedReplicaPlacer {
    pub fn new(random: JavaRandom) -> StripedReplicaPlacer {
        StripedReplicaPlacer { random }
    }

    /// A placer drawing from `new Random(seed)`, as a test wants.
    pub fn with_seed(seed: i64) -> StripedReplicaPlacer {
        StripedReplicaPlacer::new(JavaRandom::new(seed))
    }

    /// A placer drawing from a real random source, as the controller's does.
    pub fn from_entropy() -> StripedReplicaPlacer {
        StripedReplicaPlacer::new(JavaRandom::from_entropy())
    }

    /// Places `spec.num_partitions` partitions of `spec.num_replicas`
    /// replicas on these brokers.
    pub fn place(
        &mut self,
        spec: &PlacementSpec,
        brokers: impl IntoIterator<Item = UsableBroker>,
    ) -> Result<TopicAssignment, InvalidReplicationFactor> {
        let random = &mut self.random;
        let mut racks = RackList::new(random, brokers);
        let replication_factor = spec.num_replicas as i32;
        check_positive(replication_factor)?;
        check_some_unfenced(racks.num_unfenced)?;
        check_enough_brokers(replication_factor, racks.num_total)?;
        let assignments = (0..spec.num_partitions.max(0))
            .map(|_| {
                racks
                    .place(random, replication_factor)
                    .map(|replicas| PartitionAssignment { replicas })
            })
            .collect::<Result<_, _>>()?;
        Ok(TopicAssignment { assignments })
    }
}

impl Default for StripedReplicaPlacer {
    fn default() -> Self {
        StripedReplicaPlacer::from_entropy()
    }
}

/// The brokers placement may use (Kafka's ClusterDescriber.usableBrokers):
/// every registered broker, fenced or not, in id order. A node that has not
/// registered yet (an empty registry) stands alone, unfenced. (Kafka leaves
/// out brokers in controlled shutdown or with every log directory cordoned;
/// Sluice has neither. Kafka lists brokers in its heartbeat manager's
/// HashMap order, which is id order for ids below the table's size; the
/// order only matters for rack names sharing a hash bucket.)
pub fn usable_brokers(image: &MetadataImage, self_id: i32) -> Vec<UsableBroker> {
    if image.brokers.is_empty() {
        return vec![UsableBroker {
            id: self_id,
            rack: None,
            fenced: false,
        }];
    }
    image
        .brokers
        .values()
        .map(|b| UsableBroker {
            id: b.broker_id,
            rack: b.rack.clone(),
            fenced: b.fenced,
        })
        .collect()
}

fn is_registered(image: &MetadataImage, self_id: i32, broker: i32) -> bool {
    image.brokers.contains_key(&broker) || (image.brokers.is_empty() && broker == self_id)
}

/// Whether a replica may be in a new partition's ISR (Kafka's
/// ClusterControlManager.isActive): registered and unfenced.
pub fn is_active(image: &MetadataImage, self_id: i32, broker: i32) -> bool {
    match image.brokers.get(&broker) {
        Some(b) => !b.fenced,
        None => image.brokers.is_empty() && broker == self_id,
    }
}

/// Replicas for partitions `first..first + count` on the image's brokers.
pub fn place(
    placer: &mut StripedReplicaPlacer,
    image: &MetadataImage,
    self_id: i32,
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, InvalidReplicationFactor> {
    let spec = PlacementSpec {
        start_partition: first,
        num_partitions: count,
        num_replicas: replication_factor,
    };
    Ok(placer.place(&spec, usable_brokers(image, self_id))?.into_replicas())
}

/// One partition's replicas as an operator gives them: not empty, each a
/// registered broker, none twice (the replica checks of Kafka's
/// validateManualPartitionAssignment).
pub fn check_replica_list(image: &MetadataImage, self_id: i32, replicas: &[i32]) -> Result<(), ControllerError> {
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    if replicas.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    for (i, b) in sorted.iter().enumerate() {
        if !is_registered(image, self_id, *b) {
            return invalid(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
        if i > 0 && sorted[i - 1] == *b {
            return invalid(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
    }
    Ok(())
}

/// Kafka's checks on a manual assignment of partitions `first..`
/// (validateManualPartitionAssignment, then that some replica of each
/// partition is active). `replication_factor` is the topic's when it exists
/// already (CreatePartitions); otherwise the first partition sets it.
pub fn check_assignments(
    image: &MetadataImage,
    self_id: i32,
    first: i32,
    replication_factor: Option<usize>,
    assignments: &[Vec<i32>],
) -> Result<(), ControllerError> {
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let mut replication_factor = replication_factor;
    for (i, replicas) in assignments.iter().enumerate() {
        check_replica_list(image, self_id, replicas)?;
        match replication_factor {
            Some(rf) if rf != replicas.len() => {
                return invalid(format!(
                    "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                    replicas.len()
                ))
            }
            _ => replication_factor = Some(replicas.len()),
        }
        if !replicas.iter().any(|b| is_active(image, self_id, *b)) {
            return invalid(format!(
                "All brokers specified in the manual partition assignment for partition {} are fenced or in controlled shutdown.",
                first.saturating_add(i as i32)
            ));
        }
    }
    Ok(())
}
