//! Controller registrations (KIP-919's RegisterControllerRecord, KIP-1312's
//! UnregisterController): every controller process registers its endpoints
//! once an active controller answers; the registration stays after the
//! controller leaves the voter set until an operator removes it.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::records::{BrokerEndpoint, ControllerRegistration, MetadataRecord};
use crate::quorum::rpc::{ControllerOp, ControllerOpReply};
use uuid::Uuid;

impl Controller {
    /// Registers this controller process with the active controller.
    pub async fn register_controller(
        &self,
        controller_id: i32,
        endpoints: Vec<BrokerEndpoint>,
        incarnation_id: Uuid,
    ) -> Result<(), ControllerError> {
        let op = ControllerOp::RegisterController(ControllerRegistration {
            controller_id,
            incarnation_id,
            endpoints,
        });
        self.run(op).await.map(|_| ())
    }

    pub(super) async fn register_controller_here(
        &self,
        registration: ControllerRegistration,
    ) -> Result<ControllerOpReply, ControllerError> {
        self.write(move |image, _| {
            if image.controllers.get(&registration.controller_id) == Some(&registration) {
                return ControllerResult::none(Ok(ControllerOpReply::RegisterController));
            }
            ControllerResult::of(
                vec![MetadataRecord::RegisterController(registration)],
                Ok(ControllerOpReply::RegisterController),
            )
        })
        .await?
    }

    /// Removes a controller's registration (Kafka's UnregisterController, run
    /// on the active controller: the API is forwarded there). The active
    /// controller cannot remove its own.
    pub async fn unregister_controller(&self, controller_id: i32) -> Result<(), ControllerError> {
        let active = self.active_id();
        self.write(move |image, _| {
            if active == Some(controller_id) {
                return ControllerResult::none(Err(ControllerError::InvalidRequest(
                    "Controller cannot unregister itself while it is active.".to_string(),
                )));
            }
            if !image.controllers.contains_key(&controller_id) {
                return ControllerResult::none(Err(ControllerError::ControllerIdNotRegistered(controller_id)));
            }
            ControllerResult::of(vec![MetadataRecord::UnregisterController { controller_id }], Ok(()))
        })
        .await?
    }
}
