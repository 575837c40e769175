//! UpdateFeatures (KIP-584, `kafka-features upgrade|downgrade|disable`):
//! finalized feature levels changed by the controller, all or none. What
//! a cluster has finalized is read with ApiVersions.

use super::RequestContext;
use crate::auth::acl::{operation, resource, CLUSTER_NAME};
use crate::broker::Broker;
use crate::metadata::controller::FeatureUpdate;
use crate::metadata::features::UpgradeType;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub async fn handle_update_features(
    broker: &Broker,
    ctx: &RequestContext,
    req: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let names: Vec<StrBytes> = req.feature_updates.iter().map(|u| u.feature.clone()).collect();
    // v0-1 repeat the one outcome per feature; v2 has the top level only.
    let answer = |code: i16, message: Option<String>| {
        let results = if ctx.api_version < 2 {
            names
                .iter()
                .map(|name| {
                    UpdatableFeatureResult::default()
                        .with_feature(name.clone())
                        .with_error_code(code)
                        .with_error_message(message.clone().map(StrBytes::from_string))
                })
                .collect()
        } else {
            Vec::new()
        };
        UpdateFeaturesResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string))
            .with_results(results)
    };
    if !broker.authorize(ctx, operation::ALTER, resource::CLUSTER, CLUSTER_NAME) {
        return answer(ResponseError::ClusterAuthorizationFailed.code(), None);
    }
    let mut updates = Vec::with_capacity(req.feature_updates.len());
    for u in req.feature_updates {
        let how = if ctx.api_version == 0 {
            Some(if u.allow_downgrade {
                UpgradeType::SafeDowngrade
            } else {
                UpgradeType::Upgrade
            })
        } else {
            UpgradeType::from_code(u.upgrade_type)
        };
        let Some(how) = how else {
            return answer(
                ResponseError::InvalidRequest.code(),
                Some(format!(
                    "Unknown upgrade type {} for feature {}",
                    u.upgrade_type, u.feature
                )),
            );
        };
        updates.push(FeatureUpdate {
            name: u.feature.to_string(),
            level: u.max_version_level,
            how,
        });
    }
    match broker.controller.update_features(updates, req.validate_only).await {
        Ok(()) => answer(0, None),
        Err(e) => answer(e.code(), Some(e.to_string())),
    }
}
