//! The verification keys of a JWKS endpoint: fetched at start-up (a broker
//! whose endpoint does not answer does not start, as Kafka), refreshed every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms` with retries, and sooner when
//! a token names a key id we lack (at most once a minute per id, as Kafka's
//! RefreshingHttpsJwks, so a flood of made-up ids cannot hammer the endpoint).

use crate::config::oauthbearer::{JwksSettings, JwksSource};
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::Jwk;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const MISSING_KEY_ID_CACHE_MAX_ENTRIES: usize = 16;
const MISSING_KEY_ID_WAIT: Duration = Duration::from_secs(60);
const MISSING_KEY_ID_MAX_LENGTH: usize = 1000;
/// A JWKS document larger than this is not a key set we will hold.
const MAX_JWKS_BYTES: u64 = 1 << 20;

pub struct JwksKeys {
    source: JwksSource,
    keys: ArcSwap<Vec<Jwk>>,
    missing: Mutex<HashMap<String, Instant>>,
    refresh_now: Notify,
}

fn describe(source: &JwksSource) -> String {
    match source {
        JwksSource::Http(url) => url.clone(),
        JwksSource::File(path) => format!("file:{}", path.display()),
    }
}

/// Reads the key set (blocking). Keys of a kind we cannot use are skipped.
fn fetch(source: &JwksSource) -> Result<Vec<Jwk>, String> {
    let text = match source {
        JwksSource::File(path) => std::fs::read_to_string(path).map_err(|e| e.to_string())?,
        JwksSource::Http(url) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
            response
                .body_mut()
                .with_config()
                .limit(MAX_JWKS_BYTES)
                .read_to_string()
                .map_err(|e| e.to_string())?
        }
    };
    let set: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let Some(keys) = set.get("keys").and_then(|k| k.as_array()) else {
        return Err("not a JWKS document: no \"keys\" list".into());
    };
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| k.is_supported())
        .collect())
}

async fn fetch_async(source: JwksSource) -> Result<Vec<Jwk>, String> {
    tokio::task::spawn_blocking(move || fetch(&source))
        .await
        .map_err(|e| e.to_string())?
}

impl JwksKeys {
    /// Fetches the keys once and keeps them fresh until `shutdown`.
    pub async fn start(settings: &JwksSettings, shutdown: CancellationToken) -> Result<Arc<JwksKeys>, String> {
        let keys = fetch_async(settings.source.clone())
            .await
            .map_err(|e| format!("could not fetch the JWKS keys from {}: {e}", describe(&settings.source)))?;
        info!(url = %describe(&settings.source), keys = keys.len(), "OAuth JWKS keys fetched");
        let store = Arc::new(JwksKeys {
            source: settings.source.clone(),
            keys: ArcSwap::from_pointee(keys),
            missing: Mutex::new(HashMap::new()),
            refresh_now: Notify::new(),
        });
        tokio::spawn(store.clone().refresh_loop(
            Duration::from_millis(settings.refresh_ms),
            Duration::from_millis(settings.retry_backoff_ms),
            Duration::from_millis(settings.retry_backoff_max_ms),
            shutdown,
        ));
        Ok(store)
    }

    /// Keys given directly (tests).
    pub fn fixed(keys: Vec<Jwk>) -> JwksKeys {
        JwksKeys {
            source: JwksSource::File("/dev/null".into()),
            keys: ArcSwap::from_pointee(keys),
            missing: Mutex::new(HashMap::new()),
            refresh_now: Notify::new(),
        }
    }

    pub fn keys(&self) -> Arc<Vec<Jwk>> {
        self.keys.load_full()
    }

    /// A token named a key id we lack: refresh soon, unless that id asked within the minute.
    pub fn missing_key(&self, key_id: &str) {
        if key_id.len() > MISSING_KEY_ID_MAX_LENGTH {
            return;
        }
        let now = Instant::now();
        let Ok(mut missing) = self.missing.lock() else { return };
        if missing.get(key_id).is_some_and(|next| *next > now) {
            return;
        }
        if missing.len() >= MISSING_KEY_ID_CACHE_MAX_ENTRIES {
            missing.retain(|_, next| *next > now);
            if missing.len() >= MISSING_KEY_ID_CACHE_MAX_ENTRIES {
                return;
            }
        }
        missing.insert(key_id.to_string(), now + MISSING_KEY_ID_WAIT);
        self.refresh_now.notify_one();
    }

    async fn refresh_loop(
        self: Arc<Self>,
        every: Duration,
        backoff: Duration,
        backoff_max: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
                _ = self.refresh_now.notified() => {}
            }
            let mut wait = backoff;
            let mut waited = Duration::ZERO;
            loop {
                match fetch_async(self.source.clone()).await {
                    Ok(keys) => {
                        if let Ok(mut missing) = self.missing.lock() {
                            for k in &keys {
                                if let Some(id) = &k.common.key_id {
                                    missing.remove(id);
                                }
                            }
                        }
                        info!(url = %describe(&self.source), keys = keys.len(), "OAuth JWKS keys refreshed");
                        self.keys.store(Arc::new(keys));
                        break;
                    }
                    Err(e) if waited + wait <= backoff_max => {
                        warn!(url = %describe(&self.source), error = %e, "OAuth JWKS refresh failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        waited += wait;
                        wait = (wait * 2).max(Duration::from_millis(1));
                    }
                    Err(e) => {
                        warn!(url = %describe(&self.source), error = %e, "OAuth JWKS refresh failed; keeping the keys we have");
                        break;
                    }
                }
            }
        }
    }
}
