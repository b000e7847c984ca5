//! Where metrics go: CloudWatch Embedded Metric Format lines in Lambda (flushed after each
//! invocation), a Prometheus text page locally, or nowhere. Installed once per process, as
//! the `metrics` facade's global recorder.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use thiserror::Error;

use super::names;

/// `METRICS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// EMF in Lambda, Prometheus elsewhere.
    Auto,
    Emf,
    Prometheus,
    Off,
}

pub(super) enum Sink {
    Emf(&'static metrics_cloudwatch_embedded::Collector),
    Prometheus(PrometheusHandle),
}

pub(super) static SINK: OnceLock<Sink> = OnceLock::new();

#[derive(Debug, Error)]
#[error("metrics: {0}")]
pub struct MetricsError(String);

/// Latency buckets (ms) of the Prometheus histograms: 1 ms to 10 s.
const BUCKETS_MS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
];
const BUCKETS_BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// The 0/1 rates (`drift`): one bucket, so the page shows a histogram (`_sum / _count` is the
/// rate) rather than a summary's meaningless quantiles of zeros and ones.
const BUCKETS_RATE: &[f64] = &[0.5];

/// Install the recorder for `mode` (`Auto` resolved by `in_lambda`). A second call in one
/// process keeps the first recorder.
pub fn install(
    mode: MetricsMode,
    in_lambda: bool,
    namespace: &str,
    model_version: &str,
) -> Result<(), MetricsError> {
    let _ = super::MODEL_VERSION.set(model_version.to_owned());
    let mode = match mode {
        MetricsMode::Auto if in_lambda => MetricsMode::Emf,
        MetricsMode::Auto => MetricsMode::Prometheus,
        m => m,
    };
    // One install at a time: a second caller waits, then finds the first one's recorder.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if SINK.get().is_some() || mode == MetricsMode::Off {
        return Ok(());
    }
    let sink = match mode {
        MetricsMode::Emf => Sink::Emf(
            metrics_cloudwatch_embedded::Builder::new()
                .cloudwatch_namespace(namespace.to_owned())
                .init()
                .map_err(|e| MetricsError(e.to_string()))?,
        ),
        _ => {
            let mut builder = PrometheusBuilder::new();
            for name in [
                names::REQUEST_LATENCY_MS,
                names::TOKENIZE_MS,
                names::INFERENCE_MS,
                names::STORE_MS,
            ] {
                builder = builder
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(name.into()),
                        BUCKETS_MS,
                    )
                    .map_err(|e| MetricsError(e.to_string()))?;
            }
            builder = builder
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(names::BATCH_SIZE.into()),
                    BUCKETS_BATCH,
                )
                .map_err(|e| MetricsError(e.to_string()))?;
            for name in [names::SELECTION_RATE, names::NO_TAG_RATE] {
                builder = builder
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(name.into()),
                        BUCKETS_RATE,
                    )
                    .map_err(|e| MetricsError(e.to_string()))?;
            }
            let handle = builder
                .install_recorder()
                .map_err(|e| MetricsError(e.to_string()))?;
            drain_histograms(handle.clone());
            Sink::Prometheus(handle)
        }
    };
    describe();
    let _ = SINK.set(sink);
    Ok(())
}

/// How often the Prometheus recorder's histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The Prometheus recorder keeps each histogram sample until an upkeep folds it into its
/// buckets, and only a scrape (`render_prometheus`) runs one: a server nobody scrapes grew by
/// every sample (measured: 473 MiB/h under `make soak-short` once the drift rates recorded six
/// samples per message, 20 MiB/h with metrics off). A thread of its own runs the upkeep; it
/// holds no lock between runs and costs nothing when idle.
fn drain_histograms(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("tagbeez-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms drain only when scraped");
    }
}

/// Units (EMF reads them) and help texts (Prometheus shows them).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        Unit::Count,
        "Requests answered, by route and status"
    );
    describe_counter!(
        names::SERVER_ERRORS,
        Unit::Count,
        "Requests answered with a 5xx"
    );
    describe_histogram!(
        names::REQUEST_LATENCY_MS,
        Unit::Milliseconds,
        "Time to answer a request"
    );
    describe_histogram!(
        names::TOKENIZE_MS,
        Unit::Milliseconds,
        "Time in the tokenizer per request"
    );
    describe_histogram!(
        names::INFERENCE_MS,
        Unit::Milliseconds,
        "Time in the model per request"
    );
    describe_histogram!(
        names::STORE_MS,
        Unit::Milliseconds,
        "Time in the conversation store per request"
    );
    describe_histogram!(
        names::BATCH_SIZE,
        Unit::Count,
        "Messages per inference batch"
    );
    describe_counter!(names::TAGS_SELECTED, Unit::Count, "Tags selected, by tag");
    describe_counter!(
        names::CONVERSATION_SWITCHES,
        Unit::Count,
        "Conversation tag switches"
    );
    describe_counter!(
        names::STORE_ERRORS,
        Unit::Count,
        "Conversation store failures, by kind"
    );
    describe_counter!(
        names::STORE_RETRIES,
        Unit::Count,
        "Conditional writes retried after a conflict"
    );
    describe_counter!(
        names::OVERLOAD_REJECTIONS,
        Unit::Count,
        "Requests refused by the inference limit"
    );
    describe_counter!(names::COLD_STARTS, Unit::Count, "Process starts");
    describe_gauge!(
        names::INIT_MS,
        Unit::Milliseconds,
        "Start-up time: process start to ready"
    );
    describe_counter!(names::FEEDBACK, Unit::Count, "Corrections stored");
    super::drift::describe();
}

/// The Prometheus text page, or `None` when metrics do not go to Prometheus.
pub fn render_prometheus() -> Option<String> {
    match SINK.get()? {
        Sink::Prometheus(handle) => {
            handle.run_upkeep();
            Some(handle.render())
        }
        Sink::Emf(_) => None,
    }
}

/// Write the metrics recorded since the last flush as EMF lines, with the invocation's ids as
/// properties (searchable in CloudWatch Logs, not dimensions). A no-op unless the sink is EMF.
pub fn flush_emf(
    writer: impl std::io::Write,
    request_id: &str,
    xray_trace_id: Option<&str>,
) -> std::io::Result<()> {
    let Some(Sink::Emf(collector)) = SINK.get() else {
        return Ok(());
    };
    collector.set_property("request_id", request_id.to_owned());
    match xray_trace_id {
        Some(t) => collector.set_property("xray_trace_id", t.to_owned()),
        None => collector.remove_property("xray_trace_id"),
    };
    let flushed = collector.flush(writer);
    super::drift::flushed();
    flushed
}
