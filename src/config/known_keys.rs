//! Which broker keys Sluice knows: the ones it reads (here and in each
//! config module) and Kafka's that it takes without effect, so that only
//! the rest are reported as unknown.

use super::{cluster, connection_limits, group, replication, security, topic};

/// Keys that Sluice reads.
const KNOWN_KEYS: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "node.id",
    "broker.id",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "delete.topic.enable",
    "socket.request.max.bytes",
    "queued.max.request.bytes",
    "max.incremental.fetch.session.cache.slots",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.consumer.session.timeout.ms",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.assignors",
    "group.consumer.max.size",
    "group.consumer.migration.policy",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offset.metadata.max.bytes",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "offsets.topic.segment.bytes",
    "log.retention.check.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.flush.scheduler.interval.ms",
    "log.cleaner.enable",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "quota.window.num",
    "quota.window.size.seconds",
    "producer.id.expiration.ms",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.segment.bytes",
    "transaction.max.timeout.ms",
    "transactional.id.expiration.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "share.coordinator.state.topic.num.partitions",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.segment.bytes",
    "cluster.id",
    "broker.rack",
    "metrics.prometheus.address",
    "logging.format",
    "logging.level",
];

/// Kafka keys that are accepted and have no effect here (single process, no
/// ZooKeeper, no thread pools to size). Listed so they are not called unknown.
pub(super) const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    // Every write is a snapshot here (see share::state): no updates to count.
    "share.coordinator.snapshot.update.records.per.snapshot",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "log.cleaner.threads",
    "queued.max.requests",
    // Kafka's KRaft controller does not read it either (ZooKeeper mode did).
    "leader.imbalance.per.broker.percentage",
];

pub(super) fn is_known_key(key: &str) -> bool {
    KNOWN_KEYS.contains(&key)
        || cluster::CLUSTER_KEYS.contains(&key)
        || replication::REPLICATION_KEYS.contains(&key)
        || connection_limits::is_connection_limit_key(key)
        || security::is_security_key(key)
        || group::is_broker_group_key(key)
        || topic::TOPIC_CONFIGS
            .iter()
            .any(|d| d.broker_keys.iter().any(|(k, _)| *k == key))
}
