//! As the active controller: every `delegation.token.expiry.check.interval.ms`,
//! expired delegation tokens are removed from the metadata (Kafka's
//! sweepExpiredDelegationTokens).

use super::Broker;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

pub async fn sweep_expired_tokens(broker: Arc<Broker>) {
    let settings = &broker.config.security.delegation_tokens;
    if !settings.enabled() {
        return;
    }
    let every = Duration::from_millis(settings.expiry_check_interval_ms.max(1) as u64);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if !broker.controller.is_active() || broker.image().delegation_tokens.is_empty() {
            continue;
        }
        match broker
            .controller
            .sweep_expired_delegation_tokens(crate::storage::now_ms())
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(tokens = n, "expired delegation tokens removed"),
            Err(e) => debug!(error = %e, "could not remove expired delegation tokens"),
        }
    }
}
