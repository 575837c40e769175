//! Broker registration: a broker's endpoints and rack, recorded when they
//! change (Kafka's RegisterBrokerRecord). The epoch is the offset of the
//! registration.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::records::{BrokerEndpoint, BrokerRegistration, MetadataRecord};
use crate::quorum::rpc::ControllerOp;
use uuid::Uuid;

impl Controller {
    /// Registers a broker; nothing is written when it is registered already
    /// with the same endpoints and rack, unfenced.
    pub async fn register_broker(
        &self,
        broker_id: i32,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        directory_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        let op = ControllerOp::RegisterBroker {
            broker_id,
            endpoints,
            rack,
            directory_id,
        };
        self.run(op).await.map(|_| ())
    }

    /// Tells the active controller this broker is alive, or that it is
    /// shutting down and should be fenced (leadership moved away) first.
    pub async fn heartbeat(&self, broker_id: i32, shutting_down: bool) -> Result<(), ControllerError> {
        let op = ControllerOp::Heartbeat {
            broker_id,
            shutting_down,
        };
        self.run(op).await.map(|_| ())
    }

    /// Removes a broker's registration (Kafka's UnregisterBroker, run where
    /// the request is: the API is forwarded to the active controller). It
    /// leaves every ISR first, as when fenced; a broker still running stays
    /// out of the metadata until it restarts, as in Kafka.
    pub async fn unregister_broker(&self, broker_id: i32) -> Result<(), ControllerError> {
        self.forget_heartbeats_of(broker_id);
        self.write(move |image, config| {
            let unclean = super::fencing::unclean_allowed(image, config);
            let Some(registration) = image.brokers.get(&broker_id) else {
                return ControllerResult::none(Err(ControllerError::BrokerIdNotRegistered(broker_id)));
            };
            let mut records = super::fencing::leave_isrs(image, broker_id, &unclean);
            records.push(MetadataRecord::UnregisterBroker {
                broker_id,
                epoch: registration.epoch,
            });
            ControllerResult::of(records, Ok(()))
        })
        .await?
    }

    pub(super) async fn register_broker_here(
        &self,
        broker_id: i32,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        directory_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        self.registered(broker_id);
        self.write(move |image, _| {
            let same = image.brokers.get(&broker_id).is_some_and(|b| {
                b.endpoints == endpoints && b.rack == rack && b.directory_id == directory_id && !b.fenced
            });
            if same {
                return ControllerResult::none(());
            }
            let registration = BrokerRegistration {
                broker_id,
                epoch: image.offset + 1,
                incarnation_id: uuid::Uuid::new_v4(),
                endpoints,
                rack,
                // A fenced broker stays fenced until it heartbeats (which
                // also gives it back the partitions left without a leader).
                fenced: image.brokers.get(&broker_id).is_some_and(|b| b.fenced),
                directory_id,
            };
            ControllerResult::of(vec![MetadataRecord::RegisterBroker(registration)], ())
        })
        .await
    }
}
