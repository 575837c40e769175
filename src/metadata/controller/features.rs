//! UpdateFeatures: finalized feature levels changed as one (every update is
//! checked first; one refused, none is written).

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::features::{check_update, UpgradeType};
use crate::metadata::records::MetadataRecord;
use tracing::info;

/// One feature's requested level.
#[derive(Debug, Clone)]
pub struct FeatureUpdate {
    pub name: String,
    /// 0: the feature is turned off (`kafka-features disable`).
    pub level: i16,
    pub how: UpgradeType,
}

impl Controller {
    pub async fn update_features(
        &self,
        updates: Vec<FeatureUpdate>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        self.write(move |image, config| {
            let mut records = Vec::with_capacity(updates.len());
            for u in &updates {
                if let Err(message) = check_update(image, config.node_id, &u.name, u.level, u.how) {
                    // Kafka's QuorumController wording: one refusal fails them all.
                    return ControllerResult::none(Err(ControllerError::InvalidFeatureUpdate(format!(
                        "The update failed for all features since the following feature had an error: {message}"
                    ))));
                }
                records.push(MetadataRecord::FeatureLevel {
                    name: u.name.clone(),
                    level: u.level,
                });
            }
            if validate_only {
                return ControllerResult::none(Ok(()));
            }
            for u in &updates {
                info!(feature = %u.name, level = u.level, "finalized feature level changed");
            }
            ControllerResult::of(records, Ok(()))
        })
        .await?
    }
}
