//! Client quotas as records.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::records::{MetadataRecord, QuotaEntity};

/// A change to one entity's quotas: values to set (Some) or remove (None).
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub ops: Vec<(String, Option<f64>)>,
}

impl Controller {
    /// Sets and removes quota values; an entity left with no value is forgotten.
    pub async fn alter_client_quotas(&self, changes: Vec<QuotaChange>) -> Result<(), ControllerError> {
        self.write(move |_, _| {
            let records = changes
                .into_iter()
                .flat_map(|c| {
                    let entity = c.entity;
                    c.ops.into_iter().map(move |(key, value)| MetadataRecord::ClientQuota {
                        entity: entity.clone(),
                        key,
                        value,
                    })
                })
                .collect();
            ControllerResult::of(records, ())
        })
        .await
    }
}
