//! The broker's metadata publisher (Kafka's BrokerMetadataPublisher): each
//! new image is acted on — partition logs created or deleted, configs
//! applied, coordinator partitions loaded or unloaded — and then served.
//! Images are published in log order, one at a time.

use super::Broker;
use crate::coordinator::{CoordinatorRuntime, Shard};
use crate::metadata::delta::MetadataChanges;
use crate::metadata::{MetadataImage, Publication};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

pub async fn run(broker: Arc<Broker>, mut publications: UnboundedReceiver<Publication>) {
    loop {
        let publication = tokio::select! {
            p = publications.recv() => p,
            _ = broker.shutdown.cancelled() => None,
        };
        let Some(Publication { image, changes }) = publication else {
            return;
        };
        broker.replicas.apply(&image, &changes).await;
        follow(&broker, broker.groups.runtime(), &image, Some(&changes)).await;
        follow(&broker, broker.txns.runtime(), &image, Some(&changes)).await;
        follow(&broker, broker.share_states.runtime(), &image, Some(&changes)).await;
        broker.metadata.publish(image);
    }
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
