//! The in-process router over a store, for the DynamoDB test files (tests/dynamo_*.rs): the
//! real embedded model, `Tagger`s with test settings, and calls through
//! `tower::ServiceExt::oneshot` that fail on a hang instead of waiting.
//! Use from a test file with `#[path = "support/dynamo_app.rs"] mod dynamo_app;`.

#![allow(dead_code)] // each test file uses the part it needs

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::service::Tagger;
use tagbeez::store::ConversationStore;
use tower::ServiceExt;

pub static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

/// The store settings of the happy-path tests (the service's defaults).
pub const CONNECT: Duration = Duration::from_secs(1);
pub const OPERATION: Duration = Duration::from_secs(3);
/// No router call of these tests may take longer than this: a hang fails, it does not wait.
pub const HANG: Duration = Duration::from_secs(15);

/// Back-pressure settings that never refuse: for tests about the store under concurrency, where
/// a 503 `overloaded` from a busy test machine would be beside the point.
pub const ROOMY: [(&str, &str); 2] = [
    ("INFERENCE_QUEUE", "1000"),
    ("INFERENCE_QUEUE_TIMEOUT_MS", "60000"),
];

pub fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_pairs(vars).expect("a valid test configuration")
}

pub fn tagger(store: Arc<dyn ConversationStore>, vars: &[(&str, &str)]) -> Tagger {
    Tagger::new(Arc::clone(&CLASSIFIER), store, config(vars))
}

pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

pub fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub elapsed: Duration,
}

pub async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> Reply {
    let what = format!("{method} {uri}");
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(HANG, app.clone().oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let elapsed = started.elapsed();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{what} -> {status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        json,
        elapsed,
    }
}

pub async fn converse(app: &Router, id: &str, message: &str) -> Reply {
    call(
        app,
        "POST",
        "/classify-conversation",
        Some(json!({ "conversation_id": id, "message": message })),
    )
    .await
}
