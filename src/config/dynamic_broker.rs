//! The broker configs Kafka 4.4 lets a user change at run time
//! (`kafka-configs --alter --entity-type brokers`): its
//! DynamicBrokerConfig.ALL_DYNAMIC_CONFIGS and their update modes, taken
//! from the 4.4.0 jars. Sluice accepts every one of them; those it
//! implements take effect, the rest are stored and described.

/// Settable for one broker only (`--entity-name 1`), never as the cluster default.
const PER_BROKER: &[&str] = &[
    "cordoned.log.dirs",
    "listener.security.protocol.map",
    "listeners",
    "principal.builder.class",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.mechanism.inter.broker.protocol",
    "ssl.cipher.suites",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.factory.class",
    "ssl.key.password",
    "ssl.keymanager.algorithm",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.protocol",
    "ssl.provider",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

/// Settable for one broker or as the cluster default (`--entity-default`).
const CLUSTER_WIDE: &[&str] = &[
    "background.threads",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "config.providers",
    "errors.deadletterqueue.auto.create.topics.enable",
    "errors.deadletterqueue.topic.name.prefix",
    "follower.fetch.last.tiered.offset.enable",
    "follower.replication.throttled.rate",
    "group.consumer.assignment.interval.ms",
    "group.consumer.assignor.offload.enable",
    "group.coordinator.cached.buffer.max.bytes",
    "group.share.assignment.interval.ms",
    "group.share.assignor.offload.enable",
    "group.streams.assignment.interval.ms",
    "group.streams.assignor.offload.enable",
    "leader.replication.throttled.rate",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.threads",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.local.retention.bytes",
    "log.local.retention.ms",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.preallocate",
    "log.remote.copy.lag.bytes",
    "log.remote.copy.lag.ms",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.jitter.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "max.connection.creation.rate",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.decompressed.message.bytes",
    "message.max.bytes",
    "metric.reporters",
    "min.insync.replicas",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "producer.id.expiration.ms",
    "remote.fetch.max.wait.ms",
    "remote.list.offsets.request.timeout.ms",
    "remote.log.index.file.cache.total.size.bytes",
    "remote.log.manager.copier.thread.pool.size",
    "remote.log.manager.copy.max.bytes.per.second",
    "remote.log.manager.expiration.thread.pool.size",
    "remote.log.manager.fetch.max.bytes.per.second",
    "remote.log.manager.follower.thread.pool.size",
    "remote.log.reader.threads",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "share.coordinator.cached.buffer.max.bytes",
    "transaction.partition.verification.enable",
    "unclean.leader.election.enable",
];

/// Passwords and keys: described with a null value, as Kafka does.
const SENSITIVE: &[&str] = &[
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

/// Where a dynamic broker config may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    PerBroker,
    ClusterWide,
}

/// The key without a `listener.name.<listener>.` prefix, which Kafka allows
/// on the SSL and SASL keys (`listener.name.sasl_ssl.plain.sasl.jaas.config`).
fn unprefixed(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("listener.name.")?;
    let (_, key) = rest.split_once('.')?;
    // A mechanism may sit between the listener and the key: `plain.sasl.jaas.config`.
    if key.starts_with("ssl.") || key.starts_with("sasl.") {
        return Some(key);
    }
    key.split_once('.').map(|(_, k)| k).filter(|k| k.starts_with("sasl."))
}

/// How a key may be changed at run time, if it may.
pub fn update_mode(key: &str) -> Option<UpdateMode> {
    if PER_BROKER.contains(&key) {
        return Some(UpdateMode::PerBroker);
    }
    if CLUSTER_WIDE.contains(&key) {
        return Some(UpdateMode::ClusterWide);
    }
    // Listener-prefixed security keys are per broker, like the keys they prefix.
    unprefixed(key).and_then(|k| PER_BROKER.contains(&k).then_some(UpdateMode::PerBroker))
}

/// A keystore or truststore key given without a listener prefix: Kafka
/// takes these per listener only.
pub fn is_listener_security_key(key: &str) -> bool {
    SENSITIVE.contains(&key)
}

/// Whether the value must not be shown.
pub fn is_sensitive(key: &str) -> bool {
    let key = unprefixed(key).unwrap_or(key);
    SENSITIVE.contains(&key)
        || key.ends_with(".password")
        || key == "sasl.jaas.config"
        || key.starts_with("delegation.token.") && key.ends_with(".key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_kafka_has_them() {
        assert_eq!(
            update_mode("sasl.kerberos.min.time.before.relogin"),
            Some(UpdateMode::PerBroker)
        );
        assert_eq!(update_mode("log.cleaner.threads"), Some(UpdateMode::ClusterWide));
        assert_eq!(
            update_mode("listener.name.ssl.ssl.keystore.location"),
            Some(UpdateMode::PerBroker)
        );
        assert_eq!(
            update_mode("listener.name.sasl_plaintext.plain.sasl.jaas.config"),
            Some(UpdateMode::PerBroker)
        );
        assert_eq!(update_mode("broker.id"), None);
        assert_eq!(update_mode("log.dirs"), None);
        assert!(is_sensitive("listener.name.ssl.ssl.key.password"));
        assert!(!is_sensitive("ssl.client.auth"));
    }
}
