//! Prometheus metrics (off unless `metrics.prometheus.address` is set):
//! per-API request counters, errors and latency through the `metrics`
//! registry, and, at each scrape, gauges read from the broker's state
//! (partitions, topics, groups and their lag, the process), so that deleted
//! topics and groups leave the output at once.

pub mod error_codes;
pub mod exposition;
pub mod http;

use kafka_protocol::messages::ApiKey;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

pub use error_codes::{error_name, ErrorCodes};

/// The recorder is process-wide: installed once, shared by every broker
/// embedded in the process.
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once) and returns its handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("sluice_request_duration_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0,
                    ],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            spawn_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The recorder keeps every histogram sample until upkeep (or a scrape)
/// folds it into its buckets: without it, a broker nobody scrapes grows by
/// every request's duration sample. One thread for the process, as long as
/// the recorder lives (the process).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("sluice-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms are folded at each scrape only");
    }
}

/// The API's name as a static label value (e.g. "Produce").
pub fn api_name(key: ApiKey) -> &'static str {
    static NAMES: OnceLock<HashMap<i16, &'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            ApiKey::iter()
                .map(|k| (k as i16, &*Box::leak(format!("{k:?}").into_boxed_str())))
                .collect()
        })
        .get(&(key as i16))
        .copied()
        .unwrap_or("Unknown")
}

/// Counts the errors a response carries, by API and Kafka error name.
pub fn record_errors<R: ErrorCodes>(api: &'static str, response: &R) {
    for code in response.error_codes() {
        metrics::counter!("sluice_request_errors_total", "api" => api, "error" => error_name(code)).increment(1);
    }
}
