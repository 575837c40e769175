//! Broker registration: a broker's endpoints and rack, recorded when they
//! change (Kafka's RegisterBrokerRecord). The epoch is the offset of the
//! registration.

use super::{Controller, ControllerConfig, ControllerError, ControllerResult};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::{BrokerEndpoint, BrokerRegistration, MetadataRecord};
use crate::quorum::rpc::ControllerOp;
use tracing::info;
use uuid::Uuid;

impl Controller {
    /// Registers a broker; nothing is written when it is registered already
    /// with the same endpoints and rack, unfenced, by the same process
    /// (`incarnation_id`, new at every start).
    pub async fn register_broker(
        &self,
        broker_id: i32,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        directory_id: Option<Uuid>,
        incarnation_id: Uuid,
    ) -> Result<(), ControllerError> {
        let op = ControllerOp::RegisterBroker {
            broker_id,
            endpoints,
            rack,
            directory_id,
            incarnation_id: Some(incarnation_id),
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
            ControllerResult::non_atomic(records, Ok(()))
        })
        .await?
    }

    pub(super) async fn register_broker_here(
        &self,
        broker_id: i32,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        directory_id: Option<Uuid>,
        incarnation_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        // A single node has no sessions and no one to hand leadership to.
        let session_valid = self.is_clustered().then(|| self.has_valid_session(broker_id));
        self.registered(broker_id);
        let registering = Registering {
            broker_id,
            endpoints,
            rack,
            directory_id,
            incarnation_id,
        };
        let result = self
            .write(move |image, config| registration(image, config, registering, session_valid))
            .await?;
        if result.is_ok() {
            self.session_started(broker_id);
        }
        result
    }
}

/// What a broker registers with.
pub(super) struct Registering {
    pub broker_id: i32,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub directory_id: Option<Uuid>,
    /// The broker's process; None from a node that does not send it.
    pub incarnation_id: Option<Uuid>,
}

/// The records of a registration. `session_valid`: in a cluster, whether
/// the broker's current registration still has a live session here.
pub(super) fn registration(
    image: &MetadataImage,
    config: &ControllerConfig,
    r: Registering,
    session_valid: Option<bool>,
) -> ControllerResult<Result<(), ControllerError>> {
    let existing = image.brokers.get(&r.broker_id);
    // A new process for a broker still registered and unfenced: it was
    // killed (a clean shutdown fences it first). As Kafka: refused while
    // the old session lasts; after that the old incarnation is fenced in
    // the same write (out of every ISR, its leaderships moved), since the
    // new process lost whatever the old one held in memory.
    let restarted = session_valid.is_some()
        && existing.is_some_and(|b| !b.fenced && r.incarnation_id.is_some_and(|i| i != b.incarnation_id));
    if restarted && session_valid == Some(true) {
        return ControllerResult::none(Err(ControllerError::DuplicateBrokerRegistration));
    }
    let same = existing.is_some_and(|b| {
        b.endpoints == r.endpoints
            && b.rack == r.rack
            && b.directory_id == r.directory_id
            && !b.fenced
            && r.incarnation_id.is_none_or(|i| i == b.incarnation_id)
    });
    if same {
        return ControllerResult::none(Ok(()));
    }
    let mut records = Vec::new();
    if restarted {
        info!(
            broker = r.broker_id,
            "a restarted broker registers: fencing its old incarnation"
        );
        let unclean = super::fencing::unclean_allowed(image, config);
        records.extend(super::fencing::leave_isrs(image, r.broker_id, &unclean));
    }
    // The epoch is the registration's own offset.
    let epoch = image.offset + 1 + records.len() as i64;
    records.push(MetadataRecord::RegisterBroker(BrokerRegistration {
        broker_id: r.broker_id,
        epoch,
        incarnation_id: r.incarnation_id.unwrap_or_else(Uuid::new_v4),
        endpoints: r.endpoints,
        rack: r.rack,
        // A fenced broker stays fenced until it heartbeats (which also
        // gives it back the partitions left without a leader).
        fenced: restarted || existing.is_some_and(|b| b.fenced),
        directory_id: r.directory_id,
    }));
    // Not atomic: a restarted broker may leave more than 10,000 ISRs; the
    // registration goes last, so an interrupted one is done again in full.
    ControllerResult::non_atomic(records, Ok(()))
}
