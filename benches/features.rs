//! What issue 11's features cost per request, measured side by side in one run through the
//! real router and model (`tower::ServiceExt::oneshot`, no socket), one message of ~16 tokens:
//!
//! - metrics on (the Prometheus recorder, as the local server runs) against paused (the same
//!   process with recording stopped: `telemetry::pause`), and against EMF (the Lambda sink);
//! - `explain: false` against `explain: true` (one more padded batch, one variant per word).
//!
//! - the recording alone (`record/on` against `record/off`), which the whole-request numbers
//!   cannot resolve on a shared machine.
//!
//! Run with `make bench-features` (`cargo bench --profile local --bench features`); about two
//! minutes on a 2-core machine. Compare the ratios, not the absolute times, across machines.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;
use tagbeez::telemetry::{self, MetricsMode};
use tower::ServiceExt;

const MESSAGE: &str = "Is this jacket still on sale, and does it come in medium?";

fn router() -> Router {
    let classifier = Arc::new(Classifier::load(embedded::model_files()).expect("model"));
    let config = Config::from_vars(HashMap::new()).expect("config");
    tagbeez::api::router(Tagger::new(
        classifier,
        Arc::new(MemoryStore::new()),
        config,
    ))
}

async fn classify(app: &Router, body: &'static str) {
    let request = Request::post("/classify-message")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    assert!(response.status().is_success());
    black_box(response);
}

fn features(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mode = match std::env::var("BENCH_SINK").as_deref() {
        Ok("emf") => MetricsMode::Emf,
        _ => MetricsMode::Prometheus,
    };
    telemetry::install(mode, false, "tagbeez-bench", "bench").expect("recorder");
    let app = router();
    let plain: &'static str = Box::leak(format!(r#"{{"message": "{MESSAGE}"}}"#).into_boxed_str());
    let explained: &'static str =
        Box::leak(format!(r#"{{"message": "{MESSAGE}", "explain": true}}"#).into_boxed_str());

    let mut group = c.benchmark_group("metrics");
    group.measurement_time(Duration::from_secs(15));
    for (name, paused) in [("on", false), ("off", true), ("on-again", false)] {
        group.bench_function(name, |b| {
            telemetry::pause(paused);
            b.iter(|| {
                rt.block_on(classify(&app, plain));
                // As lambda::run does after each invocation (a no-op for Prometheus).
                let _ = telemetry::flush_emf(std::io::sink(), "bench", None);
            });
        });
    }
    group.finish();
    telemetry::pause(false);

    // The recording alone, what one classify request records (its request, three phases,
    // one selected tag and its batch size): the cost the whole-request numbers above hide in
    // their noise.
    let timings = telemetry::Timings {
        tokenize: Duration::from_micros(60),
        inference: Duration::from_millis(9),
        store: Duration::ZERO,
    };
    let selected = [tagbeez::conversation::TagScore {
        tag: "Hot-buyer".into(),
        confidence: 0.9,
    }];
    let mut group = c.benchmark_group("record");
    for (name, paused) in [("on", false), ("off", true)] {
        group.bench_function(name, |b| {
            telemetry::pause(paused);
            b.iter(|| {
                telemetry::batch_size(1);
                telemetry::tags_selected(black_box(&selected));
                telemetry::request(
                    "/classify-message",
                    200,
                    Duration::from_millis(10),
                    &timings,
                );
                let _ = telemetry::flush_emf(std::io::sink(), "bench", None);
            });
        });
    }
    group.finish();
    telemetry::pause(false);

    let mut group = c.benchmark_group("explain");
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("off", |b| b.iter(|| rt.block_on(classify(&app, plain))));
    group.bench_function("on", |b| b.iter(|| rt.block_on(classify(&app, explained))));
    group.finish();
}

criterion_group!(benches, features);
criterion_main!(benches);
