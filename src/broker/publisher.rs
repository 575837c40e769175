//! The broker's metadata publisher (Kafka's BrokerMetadataPublisher): each
//! new image is acted on — partition logs created or deleted, configs
//! applied, coordinator partitions loaded or unloaded — and then served.
//! Images are published in log order, one at a time.

use super::Broker;
use crate::coordinator::{CoordinatorRuntime, Shard};
use crate::metadata::delta::MetadataChanges;
use crate::metadata::{MetadataImage, Publication};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

/// How often partition logs that could not be created (a full disk) are tried again.
const MISSING_LOGS_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn run(broker: Arc<Broker>, mut publications: UnboundedReceiver<Publication>) {
    let mut retry = tokio::time::interval(MISSING_LOGS_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let publication = tokio::select! {
            p = publications.recv() => p,
            _ = retry.tick() => {
                if broker.replicas.create_missing_logs().await {
                    follow_coordinators(&broker).await;
                }
                continue;
            }
            _ = broker.shutdown.cancelled() => None,
        };
        let Some(Publication { image, changes }) = publication else {
            return;
        };
        broker.replicas.apply(&image, &changes).await;
        broker
            .shares
            .unload_partitions(&no_longer_led(&broker, &image, &changes));
        follow(&broker, broker.groups.runtime(), &image, Some(&changes)).await;
        follow(&broker, broker.txns.runtime(), &image, Some(&changes)).await;
        follow(&broker, broker.share_states.runtime(), &image, Some(&changes)).await;
        broker.metadata.publish(image);
    }
}

/// The partitions that changed or went away and that this broker does not
/// lead now.
fn no_longer_led(broker: &Broker, image: &MetadataImage, changes: &MetadataChanges) -> BTreeSet<(Uuid, i32)> {
    let node = broker.node_id();
    let mut out: BTreeSet<(Uuid, i32)> = changes
        .deleted_topics
        .iter()
        .flat_map(|t| (0..t.partitions.len() as i32).map(move |p| (t.id, p)))
        .collect();
    for (id, partitions) in &changes.changed_partitions {
        let topic = image.topics.by_id(*id);
        for p in partitions {
            if topic
                .as_ref()
                .and_then(|t| t.partition(*p))
                .is_none_or(|r| r.leader != node)
            {
                out.insert((*id, *p));
            }
        }
    }
    out
}

/// Once this broker may lead (registered, its metadata caught up): loads
/// the coordinator partitions it leads by the current image.
pub async fn follow_coordinators(broker: &Broker) {
    let image = broker.image();
    follow(broker, broker.groups.runtime(), &image, None).await;
    follow(broker, broker.txns.runtime(), &image, None).await;
    follow(broker, broker.share_states.runtime(), &image, None).await;
}

/// Loads a coordinator's new partitions, or unloads it with its topic
/// (`changes` None: looks at every partition).
async fn follow<S: Shard>(
    broker: &Broker,
    runtime: &CoordinatorRuntime<S>,
    image: &MetadataImage,
    changes: Option<&MetadataChanges>,
) {
    let name = runtime.topic();
    if changes.is_some_and(|c| c.deleted_topics.iter().any(|t| t.name == name)) {
        runtime.unload_all();
    }
    let Some(topic) = image.topics.get(name) else {
        return;
    };
    let changed =
        changes.is_none_or(|c| c.created_topics.contains(&topic.id) || c.changed_partitions.contains_key(&topic.id));
    if changed {
        if let Some(hosted) = broker.replicas.topic(name) {
            // In a cluster a coordinator partition lives where its leader is.
            let clustered = broker.controller.is_clustered();
            let led: Vec<_> = hosted
                .partitions()
                .filter(|p| {
                    !clustered
                        || topic.partition(p.index()).is_some_and(|r| {
                            // A replicated one, once its leader state is set up here.
                            r.leader == broker.node_id()
                                && (r.replicas.len() == 1 || broker.replicas.led(topic.id, p.index()).is_some())
                        })
                })
                .cloned()
                .collect();
            let indexes: Vec<i32> = led.iter().map(|p| p.index()).collect();
            runtime.unload_except(&indexes);
            runtime.load(led, topic.partitions.len()).await;
        }
    }
}
