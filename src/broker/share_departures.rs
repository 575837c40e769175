//! Share group members whose session ran out (told by the group
//! coordinator's timers): what they held in share-partitions led here goes
//! back at once, as Kafka's share-partition manager does when the group
//! coordinator drops a member, rather than when each acquisition lock ends.

use super::Broker;
use crate::share::durable;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

pub async fn run(broker: Arc<Broker>, mut departures: UnboundedReceiver<Vec<(String, String)>>) {
    loop {
        let gone = tokio::select! {
            g = departures.recv() => g,
            _ = broker.shutdown.cancelled() => None,
        };
        let Some(gone) = gone else {
            return;
        };
        for (group, member) in gone {
            let limits = crate::api::share_groups::share_settings(&broker, &group).limits;
            let touched = broker.shares.release_member_everywhere(&group, &member, &limits);
            broker.shares.lock_sessions().drop_member(&group, &member);
            durable::persist_all(&broker.shares, &broker.persister(), &touched).await;
        }
    }
}
