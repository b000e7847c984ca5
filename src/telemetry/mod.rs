//! Metrics and request timings. One set of metrics through the `metrics` facade (`names`),
//! sent where `sink` says; every recording function here is a no-op when metrics are off.
//!
//! Timings: a request's time in the tokenizer, the model and the store, summed in a
//! task-local by the code that spends it, read by the adapter that answers (the
//! `Server-Timing` header, the per-route histograms). Nothing here knows HTTP.

pub mod drift;
pub mod logging;
pub mod names;
mod shops;
mod sink;

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::conversation::TagScore;
pub use shops::{exposed, exposure_lost, outcome_recorded, profile_read};
pub use sink::{flush_emf, install, render_prometheus, MetricsError, MetricsMode};
use sink::{Sink, SINK};

static MODEL_VERSION: OnceLock<String> = OnceLock::new();

/// Where a request's time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Tokenize,
    Inference,
    Store,
}

/// A request's time per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub tokenize: Duration,
    pub inference: Duration,
    pub store: Duration,
}

tokio::task_local! {
    static TIMINGS: RefCell<Timings>;
}

/// Run `work`, collecting the time it spends per phase (in this task, across its awaits).
pub async fn measured<F: Future>(work: F) -> (F::Output, Timings) {
    TIMINGS
        .scope(RefCell::new(Timings::default()), async move {
            let out = work.await;
            (out, TIMINGS.with(|t| *t.borrow()))
        })
        .await
}

/// Charge `spent` to `phase` of the current request (nothing outside `measured`).
pub fn add(phase: Phase, spent: Duration) {
    let _ = TIMINGS.try_with(|t| {
        let mut t = t.borrow_mut();
        match phase {
            Phase::Tokenize => t.tokenize += spent,
            Phase::Inference => t.inference += spent,
            Phase::Store => t.store += spent,
        }
    });
}

/// Recording paused (`pause`): the installed recorder stays, nothing reaches it.
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Stop (`true`) or resume recording. A recorder cannot be uninstalled, so this is how one
/// process measures the cost of its metrics on and off side by side (`benches/features.rs`);
/// `METRICS=off` installs none at all.
pub fn pause(paused: bool) {
    PAUSED.store(paused, Ordering::Relaxed);
}

fn on() -> bool {
    SINK.get().is_some() && !PAUSED.load(Ordering::Relaxed)
}

fn emf() -> bool {
    matches!(SINK.get(), Some(Sink::Emf(_)))
}

fn version() -> String {
    MODEL_VERSION.get().cloned().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One answered request: `route` is the matched route template, or `direct:<operation>`.
pub fn request(route: &str, status: u16, elapsed: Duration, timings: &Timings) {
    if !on() {
        return;
    }
    let (route, v) = (route.to_owned(), version());
    let status_label = status.to_string();
    metrics::counter!(names::REQUESTS, "route" => route.clone(), "status" => status_label, "model_version" => v.clone()).increment(1);
    metrics::histogram!(names::REQUEST_LATENCY_MS, "route" => route.clone(), "model_version" => v.clone()).record(ms(elapsed));
    let server_error = status >= 500;
    if server_error {
        metrics::counter!(names::SERVER_ERRORS, "route" => route.clone(), "model_version" => v.clone()).increment(1);
    }
    for (name, spent) in [
        (names::TOKENIZE_MS, timings.tokenize),
        (names::INFERENCE_MS, timings.inference),
        (names::STORE_MS, timings.store),
    ] {
        if !spent.is_zero() {
            metrics::histogram!(name, "route" => route.clone(), "model_version" => v.clone())
                .record(ms(spent));
        }
    }
    if emf() {
        metrics::counter!(names::REQUESTS).increment(1);
        metrics::histogram!(names::REQUEST_LATENCY_MS).record(ms(elapsed));
        // A counter still at zero is not written: the error-rate alarm fills a missing
        // `tagbeez_server_errors` with 0 (`FILL`).
        if server_error {
            metrics::counter!(names::SERVER_ERRORS).increment(1);
        }
    }
}

pub fn tags_selected(selected: &[TagScore]) {
    if on() {
        for s in selected {
            metrics::counter!(names::TAGS_SELECTED, "tag" => s.tag.clone(), "model_version" => version()).increment(1);
        }
    }
}

pub fn batch_size(messages: usize) {
    if on() {
        metrics::histogram!(names::BATCH_SIZE, "model_version" => version())
            .record(messages as f64);
    }
}

pub fn conversation_switched() {
    if on() {
        metrics::counter!(names::CONVERSATION_SWITCHES, "model_version" => version()).increment(1);
    }
}

/// `kind`: `unavailable`, `timeout` or `contention`.
pub fn store_error(kind: &'static str) {
    if on() {
        metrics::counter!(names::STORE_ERRORS, "kind" => kind, "model_version" => version())
            .increment(1);
        if emf() {
            metrics::counter!(names::STORE_ERRORS).increment(1);
        }
    }
}

pub fn store_retried() {
    if on() {
        metrics::counter!(names::STORE_RETRIES, "model_version" => version()).increment(1);
    }
}

pub fn overloaded() {
    if on() {
        metrics::counter!(names::OVERLOAD_REJECTIONS, "model_version" => version()).increment(1);
        if emf() {
            metrics::counter!(names::OVERLOAD_REJECTIONS).increment(1);
        }
    }
}

/// An event put on the bus.
pub fn event_published(kind: &'static str) {
    if on() {
        metrics::counter!(names::EVENTS_PUBLISHED, "kind" => kind, "model_version" => version())
            .increment(1);
    }
}

/// `n` events not delivered with their answer (HTTP, direct) or dropped from a full outbox.
pub fn events_lost(n: usize) {
    if on() {
        metrics::counter!(names::EVENTS_LOST, "model_version" => version()).increment(n as u64);
        if emf() {
            metrics::counter!(names::EVENTS_LOST).increment(n as u64);
        }
    }
}

/// A queue record reported failed, `reason` its error code.
pub fn queue_failure(reason: &'static str) {
    if on() {
        metrics::counter!(names::QUEUE_FAILURES, "reason" => reason, "model_version" => version())
            .increment(1);
        if emf() {
            metrics::counter!(names::QUEUE_FAILURES).increment(1);
        }
    }
}

/// Personal data replaced in one message, `counts` per kind.
pub fn redacted(counts: &[(&'static str, usize)]) {
    if on() {
        for &(kind, n) in counts.iter().filter(|(_, n)| *n > 0) {
            metrics::counter!(names::REDACTIONS, "kind" => kind).increment(n as u64);
        }
    }
}

pub fn feedback_received() {
    if on() {
        metrics::counter!(names::FEEDBACK, "model_version" => version()).increment(1);
    }
}

/// The process started `init` ago and is now ready to serve.
pub fn cold_start(init: Duration) {
    if on() {
        metrics::counter!(names::COLD_STARTS, "model_version" => version()).increment(1);
        metrics::gauge!(names::INIT_MS, "model_version" => version()).set(ms(init));
    }
}

/// The `Server-Timing` header's value (milliseconds, W3C Server Timing syntax).
pub fn server_timing(timings: &Timings, total: Duration) -> String {
    format!(
        "tokenize;dur={:.3}, inference;dur={:.3}, store;dur={:.3}, total;dur={:.3}",
        ms(timings.tokenize),
        ms(timings.inference),
        ms(timings.store),
        ms(total)
    )
}
